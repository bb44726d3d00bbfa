"""The daemon's small parts on a real state database: leases, the inbox, and log redaction."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.base import WebhookEvent
from connector.daemon import logs
from connector.daemon.inbox import Inbox
from connector.daemon.leases import WRITER, Leases
from state.store import Store

TTL = dt.timedelta(seconds=30)


@pytest.fixture
def store(state_url: str) -> Iterator[Store]:
    opened = Store(state_url)
    yield opened
    opened.close()


def test_a_lease_has_one_holder_until_it_expires_or_is_released(store: Store) -> None:
    leases = Leases(store)
    assert leases.acquire(WRITER, "a", TTL)
    assert not leases.acquire(WRITER, "b", TTL)
    assert leases.acquire(WRITER, "a", TTL)  # the holder extends it
    assert leases.renew(WRITER, "a", dt.timedelta(seconds=-1))  # as if "a" died a TTL ago
    assert leases.acquire(WRITER, "b", TTL)
    assert not leases.renew(WRITER, "a", TTL)  # the dead holder's heartbeat finds it gone
    leases.release(WRITER, "a")  # a stale release leaves the new holder alone
    assert not leases.acquire(WRITER, "c", TTL)
    leases.release(WRITER, "b")
    assert leases.acquire(WRITER, "c", TTL)
    assert [row["holder"] for row in leases.snapshot()] == ["c"]


def test_a_job_is_due_once_per_gap(store: Store) -> None:
    leases = Leases(store)
    assert leases.due("poll:x", dt.timedelta(minutes=5))
    leases.mark_done("poll:x")
    assert not leases.due("poll:x", dt.timedelta(minutes=5))
    assert leases.due("poll:x", dt.timedelta(0))


def _event(n: int) -> WebhookEvent:
    return WebhookEvent(event_id=f"e{n}", kind="updated", remote_id=str(1000 + n), email=f"p{n}@example.com")


def test_a_group_commit_counts_each_event_once_for_its_first_delivery(store: Store) -> None:
    inbox = Inbox(store)
    batch = [("hubspot", [_event(1), _event(2)]), ("hubspot", [_event(2), _event(3)]), ("zoho", [_event(1)]),
             ("hubspot", [_event(1)])]
    assert inbox.store_deliveries(batch) == [2, 1, 1, 0]
    assert inbox.store_deliveries(batch) == [0, 0, 0, 0]
    assert inbox.depth() == 4


def test_the_inbox_stores_once_claims_gives_back_and_prunes(store: Store) -> None:
    inbox = Inbox(store)
    assert inbox.store_events("hubspot", [_event(1), _event(2)]) == 2
    assert inbox.store_events("hubspot", [_event(2), _event(3)]) == 1  # e2 again: stored once
    assert inbox.store_events("zoho", [_event(1)]) == 1  # event ids are per provider
    assert inbox.depth() == 4
    claimed = inbox.claim("replica-a", limit=3)
    assert [(c.provider, c.remote_id) for c in claimed] == [("hubspot", "1001"), ("hubspot", "1002"),
                                                            ("hubspot", "1003")]
    assert inbox.claim("replica-b", limit=10)[0].provider == "zoho"
    assert inbox.reclaim_orphans("replica-b") == 3  # replica-a died holding three
    again = inbox.claim("replica-b")
    assert len(again) == 3
    inbox.give_back([c.id for c in again], "replica-a")  # the dead replica's late give-back frees nothing
    assert inbox.claim("replica-c") == []
    inbox.finish([c.id for c in again], "done")
    inbox.give_back([claimed[0].id], "replica-b")  # already done: stays done
    assert inbox.depth() == 1
    assert inbox.prune(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)) == (3, 0)
    stored = json.dumps([c.__repr__() for c in again])
    assert "@example.com" not in stored  # the inbox keeps hints, not addresses


@given(local=st.from_regex(r"[a-z0-9._+-]{1,20}", fullmatch=True),
       domain=st.from_regex(r"[a-z0-9-]{1,12}\.(com|org|example\.com)", fullmatch=True),
       as_json=st.booleans())
def test_no_address_survives_a_log_line(local: str, domain: str, as_json: bool) -> None:
    formatter = logs._Redacting(as_json=as_json)
    formatter.email_key = lambda email: "k" * 32
    address = f"{local}@{domain}"
    encoded = quote(address, safe="")
    record = logging.makeLogRecord({"msg": "refused %s (GET /contacts/%s)", "args": (address, encoded),
                                    "levelname": "INFO", "name": "t", "who": address})
    line = formatter.format(record)
    assert address not in line and encoded not in line and local + "%40" not in line
    assert line.count("email:kkkkkkkkkkkk") >= 2


def test_a_heartbeat_notices_when_its_lease_went_elsewhere_and_the_engine_sink_stops(store: Store) -> None:
    import threading

    from connector.daemon.leases import Heartbeat
    from connector.daemon.worker import LeaseLost, Stopping, StopSink

    leases = Leases(store)
    ttl = dt.timedelta(seconds=0.3)
    lost, stopping = threading.Event(), threading.Event()
    sink = StopSink(stopping, lost)
    assert leases.acquire(WRITER, "a", ttl)
    with Heartbeat(leases, WRITER, "a", ttl, lost=lost):
        sink.advance("push x", 1)  # held: the cycle goes on
        leases.release(WRITER, "a")  # as if "a" had missed its beats and "b" took over
        assert leases.acquire(WRITER, "b", TTL)
        assert lost.wait(5)
        with pytest.raises(LeaseLost):
            sink.advance("push x", 1)
    lost.clear()
    stopping.set()
    with pytest.raises(Stopping):
        sink.advance("pull y", 1)
