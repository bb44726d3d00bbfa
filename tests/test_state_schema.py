"""The state schema: created by Alembic on first use, concurrent first starts are safe, the file is private."""

from __future__ import annotations

import concurrent.futures
import os
import stat
import threading
from pathlib import Path

import sqlalchemy as sa

from state.db import current_revision, head_revision, open_engine
from state.store import Store


def test_concurrent_first_starts_all_succeed(state_url):
    def start(_: int) -> str | None:
        store = Store(state_url)
        try:
            return current_revision(store.engine)
        finally:
            store.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        revisions = list(pool.map(start, range(6)))
    assert revisions == [head_revision()] * 6
    engine = open_engine(state_url)
    with engine.connect() as conn:
        keys = conn.execute(sa.text("SELECT count(*) FROM crmsync_meta WHERE key = 'hash_key'")).scalar_one()
    engine.dispose()
    assert keys == 1  # one install key, whoever started first


def test_a_new_sqlite_file_is_private(tmp_path: Path):
    path = tmp_path / "state.db"
    Store(f"sqlite:///{path}").close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with sa.create_engine(f"sqlite:///{path}").connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar_one() == "wal"


def test_the_keyed_hash_is_stable_and_keyed(state_url):
    first = Store(state_url)
    again = Store(state_url)
    other_key = Store(state_url, hash_key="another-install-key-0123456789")
    try:
        assert first.email_key("a@example.com") == again.email_key("a@example.com")
        assert first.email_key("a@example.com") != other_key.email_key("a@example.com")
        assert "a@example.com" not in first.email_key("a@example.com")
    finally:
        for store in (first, again, other_key):
            store.close()


def test_a_new_file_opened_by_many_threads_at_once_never_reports_it_locked(tmp_path: Path):
    # Switching a file to WAL takes an exclusive lock, and SQLite does not wait for it: two connections making
    # the switch together got "database is locked" at once (1 in 20 rounds of concurrent first starts).
    barrier = threading.Barrier(8)

    def connect(url: str) -> str:
        engine = open_engine(url)
        try:
            barrier.wait()
            with engine.connect() as conn:
                return str(conn.execute(sa.text("PRAGMA journal_mode")).scalar_one())
        finally:
            engine.dispose()

    for round_ in range(40):
        url = f"sqlite:///{tmp_path / f'state-{round_}.db'}"
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            modes = list(pool.map(connect, [url] * 8))
        assert modes == ["wal"] * 8
