"""Leases in the state database: which replica may run engine work now, and when a job last ran.

A lease is a row with a holder and an expiry (renewed by a heartbeat while held), so a replica that is
SIGKILLed loses it after its TTL and another one takes over. It works the same on SQLite and
PostgreSQL; on PostgreSQL the conditional UPDATE is re-checked after a row lock wait (READ COMMITTED).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from state.db import StateError
from state.store import Store

LEASE: Final = sa.Table(  # created by state/migrations/versions/0002_daemon_leases.py
    "daemon_lease",
    sa.MetaData(),
    sa.Column("name", sa.String(160), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=True),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_done_at", sa.DateTime(timezone=True), nullable=True),
)
WRITER: Final = "writer"  # the one lease every engine cycle (poll or webhook) runs under


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite gives naive datetimes back: they were stored as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


def replica_id() -> str:
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Leases:
    def __init__(self, store: Store) -> None:
        self.store = store

    def acquire(self, name: str, holder: str, ttl: dt.timedelta) -> bool:
        """Take (or extend) the lease unless another holder has it and it has not expired."""
        now = utcnow()
        values = {"holder": holder, "acquired_at": now, "expires_at": now + ttl}
        with self.store.transaction() as conn:
            taken = conn.execute(
                sa.update(LEASE)
                .where(LEASE.c.name == name)
                .where(sa.or_(LEASE.c.holder.is_(None), LEASE.c.holder == holder, LEASE.c.expires_at < now))
                .values(**values)
            ).rowcount
            if taken:
                return True
            if conn.execute(sa.select(LEASE.c.name).where(LEASE.c.name == name)).first() is not None:
                return False
        try:
            with self.store.transaction() as conn:
                conn.execute(sa.insert(LEASE).values(name=name, **values))
        except sa.exc.IntegrityError:  # another replica created it first
            return False
        return True

    def renew(self, name: str, holder: str, ttl: dt.timedelta) -> bool:
        with self.store.transaction() as conn:
            return bool(conn.execute(
                sa.update(LEASE).where(LEASE.c.name == name, LEASE.c.holder == holder)
                .values(expires_at=utcnow() + ttl)
            ).rowcount)

    def release(self, name: str, holder: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(sa.update(LEASE).where(LEASE.c.name == name, LEASE.c.holder == holder)
                         .values(holder=None, expires_at=None))

    def clear_holders(self) -> None:
        """SQLite: the file lock proves no other daemon lives, so leases a killed one held are void."""
        with self.store.transaction() as conn:
            conn.execute(sa.update(LEASE).where(LEASE.c.holder.is_not(None)).values(holder=None, expires_at=None))

    def due(self, name: str, gap: dt.timedelta) -> bool:
        """True when the job ``name`` last finished (on any replica) longer than ``gap`` ago, or never."""
        with self.store.transaction() as conn:
            last = conn.execute(sa.select(LEASE.c.last_done_at).where(LEASE.c.name == name)).scalar()
        last = aware(last)
        return last is None or utcnow() - last >= gap

    def mark_done(self, name: str) -> None:
        now = utcnow()
        with self.store.transaction() as conn:
            if not conn.execute(sa.update(LEASE).where(LEASE.c.name == name).values(last_done_at=now)).rowcount:
                with contextlib.suppress(sa.exc.IntegrityError):
                    conn.execute(sa.insert(LEASE).values(name=name, last_done_at=now))

    def snapshot(self) -> list[dict[str, Any]]:
        """Every lease and job marker, for ``status`` and ``/healthz``."""
        now = utcnow()
        with self.store.transaction() as conn:
            rows = conn.execute(sa.select(LEASE).order_by(LEASE.c.name)).all()
        out = []
        for row in rows:
            expires = aware(row.expires_at)
            held = row.holder is not None and expires is not None and expires > now
            done = aware(row.last_done_at)
            out.append({"name": row.name, "holder": row.holder if held else None,
                        "expires_at": expires.isoformat() if held and expires else None,
                        "last_done_at": done.isoformat() if done else None})
        return out


class Heartbeat:
    """Renews a held lease every ttl/3 until stopped; ``lost`` is set if the renewal found it gone."""

    def __init__(self, leases: Leases, name: str, holder: str, ttl: dt.timedelta, *, lost: threading.Event) -> None:
        self._leases, self._name, self._holder, self._ttl = leases, name, holder, ttl
        self._stop = threading.Event()
        self.lost = lost
        lost.clear()
        self._thread = threading.Thread(target=self._run, name=f"lease-{name}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._ttl.total_seconds() / 3):
            try:
                if not self._leases.renew(self._name, self._holder, self._ttl):
                    self.lost.set()
            except sa.exc.SQLAlchemyError:
                continue  # the next beat tries again; the TTL leaves room for a few misses


@contextlib.contextmanager
def single_daemon_guard(url: str) -> Iterator[bool]:
    """SQLite: one daemon per state file (a lock file beside it); PostgreSQL: any number of replicas.

    Yields True when this daemon is alone by construction (the SQLite lock is held).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        yield False
        return
    path = Path(parsed.database)
    if not path.parent.exists():
        raise StateError(f"state.url: directory {path.parent} does not exist")
    handle: IO[str] = open(str(path) + ".daemon.lock", "a")  # noqa: SIM115 - held for the daemon's life
    try:
        os.chmod(handle.name, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateError(
                f"state.url: another crmsync daemon is already running on {path}; SQLite allows one daemon "
                "per state file (point state.url at PostgreSQL to run several replicas)"
            ) from None
        yield True
    finally:
        handle.close()
