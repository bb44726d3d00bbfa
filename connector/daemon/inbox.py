"""The webhook inbox: events stored once per (provider, event id) before the 2xx, claimed by one replica.

Rows go new -> claimed -> done | failed. A claim uses ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite
has one writer anyway); rows claimed by a replica that died are given back by the next writer-lease
holder, since only the holder of the writer lease claims.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from adapters.base import WebhookEvent
from connector.daemon.leases import WRITER, utcnow
from state.runs import close_stale_runs
from state.store import INBOX, RUN, Store

STATUS_NEW: Final = "new"
STATUS_CLAIMED: Final = "claimed"
STATUS_DONE: Final = "done"
STATUS_FAILED: Final = "failed"
_INSERT_CHUNK: Final = 500  # rows per INSERT: 2,500 parameters, far below SQLite's and PostgreSQL's limits


@dataclass(frozen=True, slots=True, kw_only=True)
class Claimed:
    id: int
    provider: str
    kind: str
    remote_id: str | None


def _payload(event: WebhookEvent) -> str:
    """What the drain needs: a hint, no address and no record body (the record is fetched by id)."""
    return json.dumps({"kind": event.kind, "remote_id": event.remote_id,
                       "occurred_at": event.occurred_at.isoformat() if event.occurred_at else None})


class Inbox:
    def __init__(self, store: Store) -> None:
        self.store = store
        dialect = store.engine.dialect.name
        self._insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def store_events(self, provider: str, events: Sequence[WebhookEvent]) -> int:
        """Store the events in one transaction; returns how many were new (duplicates are stored once)."""
        return self.store_deliveries([(provider, events)])[0]

    def store_deliveries(self, deliveries: Sequence[tuple[str, Sequence[WebhookEvent]]]) -> list[int]:
        """Several deliveries in one transaction (group commit); per delivery, how many events were new.

        One multi-row ``INSERT .. ON CONFLICT DO NOTHING RETURNING`` per chunk: a round trip per event
        would cap intake on PostgreSQL. An event twice in the batch counts for its first delivery.
        """
        now = utcnow()
        first: dict[tuple[str, str], int] = {}
        rows: list[dict[str, Any]] = []
        for index, (provider, events) in enumerate(deliveries):
            for event in events:
                key = (provider, event.event_id[:200])
                if key not in first:
                    first[key] = index
                    rows.append({"provider": key[0], "event_id": key[1], "received_at": now,
                                 "payload": _payload(event), "status": STATUS_NEW})
        counts = [0] * len(deliveries)
        with self.store.transaction() as conn:
            for start in range(0, len(rows), _INSERT_CHUNK):
                statement = (self._insert(INBOX).values(rows[start : start + _INSERT_CHUNK])
                             .on_conflict_do_nothing(index_elements=["provider", "event_id"])
                             .returning(INBOX.c.provider, INBOX.c.event_id))
                for provider, event_id in conn.execute(statement):
                    counts[first[(provider, event_id)]] += 1
        return counts

    def has_ready(self, cutoff: dt.datetime) -> bool:
        """Is any new event older than ``cutoff`` (the debounce window)?"""
        with self.store.transaction() as conn:
            return conn.execute(
                sa.select(INBOX.c.id).where(INBOX.c.status == STATUS_NEW, INBOX.c.received_at <= cutoff).limit(1)
            ).first() is not None

    def claim(self, holder: str, *, limit: int = 1000) -> list[Claimed]:
        """Claim the oldest new events (rows another replica holds locked are skipped)."""
        with self.store.transaction() as conn:
            rows = conn.execute(
                sa.select(INBOX.c.id, INBOX.c.provider, INBOX.c.payload)
                .where(INBOX.c.status == STATUS_NEW)
                .order_by(INBOX.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if rows:
                conn.execute(sa.update(INBOX).where(INBOX.c.id.in_([r.id for r in rows]))
                             .values(status=STATUS_CLAIMED, claimed_by=holder, claimed_at=utcnow()))
        claimed = []
        for row in rows:
            payload = json.loads(row.payload)
            claimed.append(Claimed(id=row.id, provider=row.provider, kind=str(payload.get("kind")),
                                   remote_id=payload.get("remote_id")))
        return claimed

    def finish(self, ids: Sequence[int], status: str) -> None:
        if not ids:
            return
        with self.store.transaction() as conn:
            conn.execute(sa.update(INBOX).where(INBOX.c.id.in_(list(ids)))
                         .values(status=status, processed_at=utcnow()))

    def give_back(self, ids: Sequence[int], holder: str) -> None:
        """Unprocessed claims go back to new (a shutdown, or an error before the cycle finished)."""
        if not ids:
            return
        with self.store.transaction() as conn:
            conn.execute(sa.update(INBOX).where(INBOX.c.id.in_(list(ids)), INBOX.c.status == STATUS_CLAIMED,
                                                INBOX.c.claimed_by == holder)
                         .values(status=STATUS_NEW, claimed_by=None, claimed_at=None))

    def reclaim_orphans(self, holder: str) -> int:
        """Claims of other replicas go back to new; called only by the writer-lease holder, so they are dead."""
        with self.store.transaction() as conn:
            return int(conn.execute(
                sa.update(INBOX).where(INBOX.c.status == STATUS_CLAIMED,
                                       sa.or_(INBOX.c.claimed_by.is_(None), INBOX.c.claimed_by != holder))
                .values(status=STATUS_NEW, claimed_by=None, claimed_at=None)
            ).rowcount)

    def close_interrupted_runs(self, holder: str, *, lease: str = WRITER) -> int:
        """Runs the new holder of ``lease`` knows are over: the cycles of any other holder (only the holder
        runs them, so that replica died or lost the lease), and runs of any process that stopped renewing
        their heartbeat (a SIGKILLed ``crmsync sync``). A manual run beside the daemon, alive, stays running.
        """
        with self.store.transaction() as conn:
            lost = conn.execute(
                sa.update(RUN)
                .where(RUN.c.status == "running", RUN.c.lease == lease,
                       sa.or_(RUN.c.owner.is_(None), RUN.c.owner != holder))
                .values(status="interrupted", finished_at=utcnow())
            ).rowcount
            return int(lost) + close_stale_runs(conn)

    def close_own_runs(self, holder: str) -> int:
        """The cycles of ``holder`` (this replica) left "running" by a stop mid-cycle."""
        with self.store.transaction() as conn:
            return int(conn.execute(
                sa.update(RUN).where(RUN.c.status == "running", RUN.c.owner == holder)
                .values(status="interrupted", finished_at=utcnow())
            ).rowcount)

    def depth(self) -> int:
        with self.store.transaction() as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(INBOX)
                .where(INBOX.c.status.in_([STATUS_NEW, STATUS_CLAIMED]))
            ).scalar_one())

    def prune(self, before: dt.datetime) -> tuple[int, int]:
        """Housekeeping: processed inbox rows and finished runs older than the retention."""
        with self.store.transaction() as conn:
            inbox = conn.execute(sa.delete(INBOX).where(INBOX.c.status.in_([STATUS_DONE, STATUS_FAILED]),
                                                        INBOX.c.received_at < before)).rowcount
            runs = conn.execute(sa.delete(RUN).where(RUN.c.status != "running", RUN.c.started_at < before)).rowcount
        return int(inbox), int(runs)
