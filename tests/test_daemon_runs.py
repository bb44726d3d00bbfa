"""Who owns a run: a lease takeover closes the lost replica's cycles, never a manual run beside the daemon;
a run whose process died is shown interrupted once its heartbeat is stale, and closed by the next run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from test_daemon_support import wait_until

from connector.daemon.inbox import Inbox
from connector.daemon.leases import WRITER
from state.db import _alembic_config, open_engine
from state.runs import RUN, stale
from state.store import Store

REPLICA_A = "host-a:11:aaaaaa"
REPLICA_B = "host-b:22:bbbbbb"


@pytest.fixture
def stores(state_url: str) -> Iterator[Callable[..., Store]]:
    """Stores on one database, each as one process would hold it; closed at the end."""
    opened: list[Store] = []

    def open_store(**options: object) -> Store:
        opened.append(Store(state_url, **options))  # type: ignore[arg-type]
        return opened[-1]

    yield open_store
    for store in opened:
        store.close()


def _runs(store: Store) -> dict[str, tuple[str, bool]]:
    """Run id -> (status in the table, whether it has a finish time)."""
    with store.transaction() as conn:
        rows = conn.execute(sa.select(RUN.c.id, RUN.c.status, RUN.c.finished_at)).all()
    return {row.id: (row.status, row.finished_at is not None) for row in rows}


def _last_beat(store: Store, run_id: str, *, ago: dt.timedelta) -> None:
    with store.transaction() as conn:
        conn.execute(sa.update(RUN).where(RUN.c.id == run_id).values(heartbeat_at=dt.datetime.now(dt.UTC) - ago))


def test_a_takeover_closes_the_lost_replicas_cycle_and_not_a_manual_run_beside_it(
    stores: Callable[..., Store],
) -> None:
    manual = stores()  # `crmsync sync` in a shell beside the daemon
    lost = stores()
    lost.run_as(REPLICA_A, lease=WRITER)  # replica A, mid-cycle when it was SIGKILLed
    taker = stores()
    taker.run_as(REPLICA_B, lease=WRITER)
    manual.start_run("manual-run", "sync")
    lost.start_run("lost-cycle", "sync")
    lost.close()  # its process is gone: no finish_run, no heartbeat any more
    taker.start_run("own-cycle", "sync")

    assert Inbox(taker).close_interrupted_runs(REPLICA_B, lease=WRITER) == 1
    assert _runs(taker) == {"manual-run": ("running", False), "lost-cycle": ("interrupted", True),
                            "own-cycle": ("running", False)}
    manual.finish_run("manual-run", "ok", {})
    assert _runs(taker)["manual-run"] == ("ok", True)


def test_a_stop_mid_cycle_closes_only_the_stopped_replicas_own_runs(stores: Callable[..., Store]) -> None:
    manual, replica = stores(), stores()
    replica.run_as(REPLICA_B, lease=WRITER)
    manual.start_run("manual-run", "sync")
    replica.start_run("own-cycle", "sync")
    assert Inbox(replica).close_own_runs(REPLICA_B) == 1
    assert _runs(replica) == {"manual-run": ("running", False), "own-cycle": ("interrupted", True)}


def test_a_run_whose_process_died_is_shown_interrupted_then_closed_by_the_next_run(
    stores: Callable[..., Store],
) -> None:
    killed, alive, observer = stores(), stores(), stores()
    killed.start_run("killed-run", "sync")
    alive.start_run("alive-run", "sync")
    killed.close()  # SIGKILL: no finish_run, and its heartbeat stops
    _last_beat(observer, "killed-run", ago=dt.timedelta(minutes=10))

    shown = {run["id"]: run["status"] for run in observer.status()["runs"]}
    assert shown == {"killed-run": "interrupted", "alive-run": "running"}
    assert _runs(observer)["killed-run"] == ("running", False)  # status only reads
    observer.start_run("next-run", "sync")
    assert _runs(observer) == {"killed-run": ("interrupted", True), "alive-run": ("running", False),
                               "next-run": ("running", False)}
    assert Inbox(observer).close_interrupted_runs(REPLICA_B, lease=WRITER) == 0  # nobody else is over


def test_a_running_runs_heartbeat_is_renewed_while_its_process_lives(stores: Callable[..., Store]) -> None:
    worker, taker = stores(run_beat=dt.timedelta(milliseconds=20)), stores()
    worker.start_run("long-run", "migrate")
    _last_beat(taker, "long-run", ago=dt.timedelta(minutes=10))

    def beat() -> dt.datetime | None:
        with taker.transaction() as conn:
            last = conn.execute(sa.select(RUN.c.heartbeat_at).where(RUN.c.id == "long-run")).scalar_one()
        return None if stale(last, at=dt.datetime.now(dt.UTC)) else last

    wait_until(beat, timeout=10, what="the run's heartbeat to be renewed")
    assert Inbox(taker).close_interrupted_runs(REPLICA_B, lease=WRITER) == 0
    worker.finish_run("long-run", "ok", {})
    assert _runs(taker)["long-run"] == ("ok", True)


def test_a_database_from_before_run_owners_upgrades_and_its_running_rows_count_as_stale(
    state_url: str, stores: Callable[..., Store],
) -> None:
    engine = open_engine(state_url)
    try:
        cfg = _alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0003")
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO run (id, kind, started_at, status, dry_run, figures) "
                                 "VALUES ('old-run', 'sync', :at, 'running', false, '{}')"),
                         {"at": dt.datetime.now(dt.UTC) - dt.timedelta(days=1)})
    finally:
        engine.dispose()
    store = stores()  # upgrades to the head
    assert [run["status"] for run in store.status()["runs"]] == ["interrupted"]
    store.start_run("new-run", "sync")
    assert _runs(store) == {"old-run": ("interrupted", True), "new-run": ("running", False)}
