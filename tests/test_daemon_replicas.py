"""Three daemon replicas on one PostgreSQL with the emulators; one is SIGKILLed mid-cycle and nothing is lost."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_daemon_support import (
    CORE,
    DaemonProcess,
    hubspot_delivery,
    inbox_rows,
    property_change,
    wait_until,
    write_config,
)

from adapters.mailchimp._wire import subscriber_hash
from connector.sandbox import running_emulators

PG_URL = os.environ.get("CRMSYNC_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema on the PostgreSQL at 127.0.0.1 (CI starts it), dropped afterwards."""
    schema = f"d_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _query(url: str, sql: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)))
    finally:
        engine.dispose()


def _emails(emulators: dict[str, Any]) -> dict[str, list[str]]:
    return {
        "hubspot": [c.props["email"] for c in emulators["hubspot"].portal.live()],
        "mailchimp": [m["email_address"] for m in emulators["mailchimp"].members()],
        "zoho": [c["Email"] for c in emulators["zoho"].all_contacts()],
    }


def test_three_replicas_one_killed_mid_cycle_converge_without_duplicates_or_lost_webhooks(
    tmp_path: Path, pg_url: str
) -> None:
    with running_emulators(seed=60, kinds=CORE) as emulators:
        for emulator in emulators.values():
            getattr(emulator, "server", emulator).latency_s = 0.01
        config = write_config(tmp_path, pg_url, emulators, interval="2s")
        args = ("--lease-ttl", "3", "--debounce", "0.2")
        replicas = [DaemonProcess(config, *args, log=tmp_path / f"replica{i}.log") for i in range(3)]
        try:
            assert all(r.ready for r in replicas)

            def running_holder() -> int | None:
                running = _query(pg_url, "SELECT 1 FROM run WHERE status = 'running'")
                holder = _query(pg_url, "SELECT holder FROM daemon_lease WHERE name = 'writer' AND holder IS NOT NULL")
                return int(holder[0][0].split(":")[1]) if running and holder else None

            victim_pid = wait_until(running_holder, what="a replica mid-cycle")
            victim = next(r for r in replicas if r.ready["pid"] == victim_pid)
            victim.kill()
            survivors = [r for r in replicas if r is not victim]

            hubspot = emulators["hubspot"]
            edited = [hubspot.find(f"hubspot-{i}@example.com") for i in range(5)]
            for n, contact in enumerate(edited):
                hubspot.edit(contact["id"], firstname=f"Replica{n}")
                target = survivors[n % 2]
                headers, body = hubspot_delivery(hubspot.client_secret, target.url + "/webhooks/hubspot",
                                                 [property_change(contact["id"], event_id=100 + n)])
                assert target.post("/webhooks/hubspot", body, headers).status_code == 200

            everyone = 180
            wait_until(lambda: all(len(v) == everyone for v in _emails(emulators).values()), timeout=60,
                       what="every provider to hold every person")
            assert all(len(set(v)) == len(v) for v in _emails(emulators).values()), "a duplicate create"

            def fnames() -> list[str]:
                return [(emulators["mailchimp"].member(subscriber_hash(f"hubspot-{n}@example.com")) or {})
                        .get("merge_fields", {}).get("FNAME") for n in range(5)]

            wait_until(lambda: fnames() == [f"Replica{n}" for n in range(5)], timeout=30, what="the webhook edits")
            wait_until(lambda: len(inbox_rows(pg_url)) == 5 and all(s == "done" for _, s in inbox_rows(pg_url)),
                       what="every webhook processed")
            assert all(r.terminate() == 0 for r in survivors)
        finally:
            for replica in replicas:
                replica.stop_quietly()
        assert not _query(pg_url, "SELECT 1 FROM run WHERE status = 'running'")
