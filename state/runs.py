"""Who runs a run: its process names itself on the row and renews a heartbeat there while it lives.

A run left "running" by a process that died (SIGKILL, a lost machine) is told apart from one still at work
by its heartbeat: anyone may close a run whose heartbeat is older than ``RUN_STALE``. A daemon cycle also
names the lease it runs under, so the replica that takes the lease over closes the lost holder's cycles at
once, and never a manual ``crmsync sync`` running beside the daemon.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import uuid
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from state.codec import now
from state.db import open_engine
from state.models import RunRow

RUN = RunRow.__table__  # type: ignore[attr-defined]
RUN_BEAT: Final = dt.timedelta(seconds=15)  # how often a process renews the heartbeat of its running runs
# A heartbeat this old: its process is gone. Far above RUN_BEAT, for beats held up by a busy database.
RUN_STALE: Final = dt.timedelta(minutes=2)


def process_id() -> str:
    """``host:pid:nonce``, the shape of a daemon replica's lease holder id."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def stale(heartbeat_at: dt.datetime | None, *, at: dt.datetime, older_than: dt.timedelta = RUN_STALE) -> bool:
    """Whether a running run's owner stopped beating (no heartbeat at all: a run from before owners)."""
    if heartbeat_at is None:
        return True
    if heartbeat_at.tzinfo is None:  # SQLite gives naive datetimes back: they were stored as UTC
        heartbeat_at = heartbeat_at.replace(tzinfo=dt.UTC)
    return heartbeat_at < at - older_than


def close_stale_runs(conn: Connection, *, older_than: dt.timedelta = RUN_STALE) -> int:
    """Mark interrupted the running runs whose process stopped renewing their heartbeat."""
    stamp = now()
    return int(conn.execute(
        sa.update(RUN)
        .where(RUN.c.status == "running", sa.or_(RUN.c.heartbeat_at.is_(None), RUN.c.heartbeat_at < stamp - older_than))
        .values(status="interrupted", finished_at=stamp)
    ).rowcount)


class RunBeats:
    """One thread per store renews the heartbeat of the runs this process has running; it ends when none are.

    Each beat opens its own connection and closes it (``open_engine(url, pooled=False)``): a connection left in
    the store's pool would serve the engine's work too, with a page cache of its own.
    """

    def __init__(self, url: str, period: dt.timedelta) -> None:
        self._url = url
        self._engine: Engine | None = None
        self._period = period.total_seconds()
        self._runs: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, run_id: str) -> None:
        with self._lock:
            self._runs.add(run_id)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._beat, name="run-heartbeat", daemon=True)
                self._thread.start()

    def discard(self, run_id: str) -> None:
        with self._lock:
            self._runs.discard(run_id)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout=10)
        if self._engine is not None:
            self._engine.dispose()

    def _beat(self) -> None:
        while not self._stop.wait(self._period):
            with self._lock:
                running = sorted(self._runs)
                if not running:
                    self._thread = None
                    return
            try:
                if self._engine is None:
                    self._engine = open_engine(self._url, pooled=False)
                with self._engine.begin() as conn:
                    conn.execute(sa.update(RUN).where(RUN.c.id.in_(running), RUN.c.status == "running")
                                 .values(heartbeat_at=now()))
            except sa.exc.SQLAlchemyError:
                continue  # the next beat tries again; RUN_STALE leaves room for many misses
