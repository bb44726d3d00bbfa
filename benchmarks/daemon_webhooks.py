"""crmsync daemon through the emulators: webhook-to-provider latency, webhook intake rate, cycle throughput.

Run: python benchmarks/daemon_webhooks.py [latency|intake|intake-pg|cycles|all]
  latency  HubSpot edit + signed webhook -> the change visible in Mailchimp and Zoho (p50, p95), debounce 0.5 s
  intake   signed HubSpot deliveries accepted and stored per second (32 keep-alive connections, nothing drained)
  intake-pg  the same with the state on the PostgreSQL at 127.0.0.1
  cycles   contacts per second for a first full cycle with 1 and with 3 replicas on PostgreSQL
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_daemon_support import (  # noqa: E402
    CORE,
    DaemonProcess,
    hubspot_delivery,
    inbox_rows,
    property_change,
    wait_until,
    write_config,
)

from adapters.mailchimp._wire import subscriber_hash  # noqa: E402
from connector.sandbox import running_emulators  # noqa: E402

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(rounds: int = 40) -> None:
    with tempfile.TemporaryDirectory() as tmp, running_emulators(seed=50, kinds=CORE) as emulators:
        folder = Path(tmp)
        config = write_config(folder, f"sqlite:///{folder / 'state.db'}", emulators)
        daemon = DaemonProcess(config, log=folder / "daemon.log")
        hubspot, mailchimp, zoho = emulators["hubspot"], emulators["mailchimp"], emulators["zoho"]
        try:
            wait_until(lambda: len(mailchimp.members()) == 150 and len(zoho.all_contacts()) == 150, timeout=120,
                       what="the first cycle")
            time.sleep(1)
            samples: list[float] = []
            for n in range(rounds):
                email = f"hubspot-{n % 50}@example.com"
                contact = hubspot.find(email)
                name = f"Lat{n}x"
                hubspot.edit(contact["id"], firstname=name)
                headers, body = hubspot_delivery(hubspot.client_secret, daemon.url + "/webhooks/hubspot",
                                                 [property_change(contact["id"], event_id=10_000 + n, value=name)])
                started = time.perf_counter()
                assert daemon.post("/webhooks/hubspot", body, headers).status_code == 200

                def arrived(email: str = email, name: str = name) -> bool:
                    member = mailchimp.member(subscriber_hash(email)) or {}
                    record = zoho.find(email) or {}
                    return member.get("merge_fields", {}).get("FNAME") == name and record.get("First_Name") == name

                wait_until(arrived, timeout=30, what="the edit to arrive")
                samples.append(time.perf_counter() - started)
                time.sleep(0.1)
            print(f"webhook -> Mailchimp and Zoho, {rounds} edits one at a time, debounce 0.5 s: "
                  f"p50 {statistics.median(samples):.3f} s, p95 {_percentile(samples, 0.95):.3f} s, "
                  f"max {max(samples):.3f} s")
            daemon.terminate()
        finally:
            daemon.stop_quietly()


async def _blast(host: str, port: int, requests_raw: list[bytes], connections: int) -> list[int]:
    """A light load generator: keep-alive connections writing pre-built requests and reading the status lines."""
    statuses: list[int] = []
    queue = list(reversed(requests_raw))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        while queue:
            writer.write(queue.pop())
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            statuses.append(int(status_line.split()[1]))
        writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return statuses


def intake(total: int = 6000, connections: int = 32, *, postgres: bool = False) -> None:
    schema = _pg_schema() if postgres else ""
    try:
        _intake(total, connections, schema)
    finally:
        if schema:
            _drop(schema)


def _intake(total: int, connections: int, schema: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, running_emulators(seed=5, kinds=CORE) as emulators:
        folder = Path(tmp)
        state_url = f"{PG_URL}?options=-csearch_path%3D{schema}" if schema else f"sqlite:///{folder / 'state.db'}"
        config = write_config(folder, state_url, emulators)
        daemon = DaemonProcess(config, "--debounce", "3600", log=folder / "daemon.log")
        secret = emulators["hubspot"].client_secret
        url = daemon.url + "/webhooks/hubspot"
        host, port = daemon.ready["listen"].rsplit(":", 1)
        try:
            raw = []
            for i in range(total):
                headers, body = hubspot_delivery(secret, url, [property_change(str(1000 + i % 5), event_id=i)])
                head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                raw.append(f"POST /webhooks/hubspot HTTP/1.1\r\nHost: {host}:{port}\r\n{head}"
                           f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            started = time.perf_counter()
            statuses = asyncio.run(_blast(host, int(port), raw, connections))
            elapsed = time.perf_counter() - started
            stored = len(inbox_rows(state_url))
            assert statuses == [200] * total and stored == total, (set(statuses), stored)
            print(f"webhook intake ({'PostgreSQL' if schema else 'SQLite'}, {connections} keep-alive connections from one asyncio client on this "
                  f"machine): {total} signed HubSpot deliveries in {elapsed:.2f} s = {total / elapsed:.0f} events/s "
                  "accepted and stored")
            daemon.terminate()
        finally:
            daemon.stop_quietly()


def _pg_schema() -> str:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return schema


def _drop(schema: str) -> None:
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def cycles(seed: int = 500) -> None:
    for replicas in (1, 3):
        schema = _pg_schema()
        try:
            with tempfile.TemporaryDirectory() as tmp, running_emulators(seed=0, kinds=CORE) as emulators:
                folder = Path(tmp)
                config = write_config(folder, f"{PG_URL}?options=-csearch_path%3D{schema}", emulators, interval="2s")
                daemons = [DaemonProcess(config, "--lease-ttl", "5", log=folder / f"d{i}.log") for i in range(replicas)]
                try:
                    assert all(d.ready for d in daemons)
                    time.sleep(3)  # the first, empty cycle
                    for kind, emulator in emulators.items():
                        emulator.seed(seed, prefix=f"{kind}-")
                    started = time.perf_counter()
                    total = 3 * seed
                    wait_until(lambda total=total, emulators=emulators: emulators["hubspot"].count() == total
                               and len(emulators["mailchimp"].members()) == total
                               and len(emulators["zoho"].all_contacts()) == total, timeout=600, what="convergence")
                    elapsed = time.perf_counter() - started
                    print(f"{replicas} replica(s) on PostgreSQL: {total} contacts ({seed} new in each of 3 providers) "
                          f"everywhere in {elapsed:.1f} s = {total / elapsed:.0f} contacts/s")
                    for d in daemons:
                        d.terminate()
                finally:
                    for d in daemons:
                        d.stop_quietly()
        finally:
            _drop(schema)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    for name, bench in (("latency", latency), ("intake", intake), ("intake-pg", lambda: intake(postgres=True)),
                        ("cycles", cycles)):
        if which in (name, "all"):
            bench()
