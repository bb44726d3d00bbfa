"""insert_rows stores exactly what SQLAlchemy's own INSERT stores, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from state.bulk import insert_rows, inserted_ids
from state.store import C, Store


def _rows(prefix: str, at: dt.datetime) -> list[dict]:
    return [{"email": f"{prefix}{i}@example.com", "fields": '{"first_name":"Zoë"}', "sources": "{}",
             "consent": "subscribed", "consent_at": at if i % 2 else None, "version": 1, "updated_at": at,
             "dirty": True, "touched": 0}
            for i in range(5)]


def test_rows_read_back_as_sqlalchemys_insert_stores_them(state_url):
    store = Store(state_url)
    at = dt.datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC)
    try:
        with store.engine.begin() as conn:
            insert_rows(conn, C, _rows("fast", at))
            conn.execute(sa.insert(C), _rows("slow", at))
        with store.engine.connect() as conn:
            got = {r.email: r for r in conn.execute(sa.select(C))}
        for i in range(5):
            fast, slow = got[f"fast{i}@example.com"], got[f"slow{i}@example.com"]
            assert (fast.fields, fast.consent, fast.consent_at, fast.version, fast.updated_at) == (
                slow.fields, slow.consent, slow.consent_at, slow.version, slow.updated_at)
    finally:
        store.close()


def test_rows_must_name_every_defaulted_column(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with store.engine.begin() as conn, pytest.raises(ValueError, match="contact"):
            insert_rows(conn, C, [{"email": "a@example.com", "fields": "{}", "sources": "{}",
                                   "updated_at": dt.datetime.now(dt.UTC)}])
    finally:
        store.close()


def test_the_ids_sqlite_gave_the_rows_are_those_a_read_back_finds(state_url):
    store = Store(state_url)
    at = dt.datetime(2026, 3, 4, tzinfo=dt.UTC)
    try:
        with store.engine.begin() as conn:
            insert_rows(conn, C, _rows("first", at))
            conn.execute(sa.delete(C).where(C.c.email == "first4@example.com"))  # the largest id is free again
            rows = _rows("second", at)
            insert_rows(conn, C, rows)
            known = inserted_ids(conn, C, "email", [r["email"] for r in rows])
            stored = {r.email: r.id for r in conn.execute(sa.select(C.c.email, C.c.id))}
        if store.engine.dialect.name == "sqlite":
            assert known == {r["email"]: stored[r["email"]] for r in rows}
        else:
            assert known is None  # read back instead
    finally:
        store.close()


def test_ids_that_cannot_be_vouched_for_are_read_back_instead(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    at = dt.datetime(2026, 3, 4, tzinfo=dt.UTC)
    try:
        with store.engine.begin() as conn:
            insert_rows(conn, C, _rows("first", at))
            later = _rows("second", at)
            insert_rows(conn, C, later[:3])
            # the last insert was not these rows: their ids are not the ones last_insert_rowid() ends
            assert inserted_ids(conn, C, "email", [r["email"] for r in _rows("first", at)]) is None
            assert inserted_ids(conn, C, "email", []) is None
    finally:
        store.close()
