"""ActiveCampaign API calls against the minimum, and time against the 5 requests/s floor, through the emulator.

The emulator enforces ActiveCampaign's 5 requests a second (429 + Retry-After above it), so the times are
what a real account allows. Adapter level: create N contacts (bulk import, 250 a call), back-fill them
(100 a page), idle incremental reads (at once, and once the overlap has passed), then update M linked contacts (contact/sync + list status + tags).
End to end (``--migrate``): ``crmsync migrate`` of N contacts from a JSONL file into the emulator, twice.
Minimums: ceil(N/250) import calls to create, ceil(N/100) pages to read, one sync per update; the time
floor is minimum calls / 5 per second. Usage: python benchmarks/activecampaign_calls.py [N] [--migrate]
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from adapters.activecampaign import ActiveCampaignAdapter
from adapters.activecampaign.emulator import ActiveCampaignEmulator
from adapters.base import Cursor, WriteRequest
from adapters.secret import Secret

RATE: float = 5.0  # requests a second per account
CONFIG = ("--config", "crmsync.toml")
UPDATES = 100  # linked updates measured (each is several calls at 5/s: extrapolate, do not wait an hour)


def requests_for(n: int, *, last: str, ids: dict[str, str] | None = None) -> list[WriteRequest]:
    out = []
    for i in range(n):
        email = f"person{i}@example.com"
        fields = {
            "email": email,
            "firstName": f"P{i}",
            "lastName": last,
            "fields": {"COMPANY": "Acme Ltd"},
            "tags": sorted({"customer"} | ({"vip"} if i % 10 == 0 else set())),
            "listStatus": ["1", "1", "2", None][i % 4],
        }
        out.append(WriteRequest(ref=str(i), remote_id=(ids or {}).get(email), email=email, fields=fields))
    return out


def write_all(adapter: ActiveCampaignAdapter, reqs: list[WriteRequest]) -> tuple[int, dict[str, str]]:
    failed, ids = 0, {}
    for start in range(0, len(reqs), adapter.max_batch):
        chunk = reqs[start : start + adapter.max_batch]
        for request, result in zip(chunk, adapter.write_contacts(chunk), strict=True):
            failed += not result.ok
            if result.remote_id:
                ids[request.email] = result.remote_id
    return failed, ids


def kinds(emulator: ActiveCampaignEmulator) -> str:
    counts: Counter[str] = Counter()
    for key, n in emulator.calls.items():
        counts[key.replace("/api/3", "").replace("(?P<id>[^/]+)", "{id}")] += n
    return ", ".join(f"{k} {n}" for k, n in counts.most_common())


def line(what: str, emulator: ActiveCampaignEmulator, minimum: int, took: float, extra: str = "") -> None:
    calls = emulator.read_calls() + emulator.write_calls()
    floor = minimum / RATE
    ratio = f", {took / floor:.2f}x" if floor else ""
    print(
        f"{what}: {calls} calls (minimum {minimum}, {calls / max(minimum, 1):.2f}x; {kinds(emulator)}), "
        f"{took:.1f}s (floor {floor:.1f}s at 5/s{ratio}), "
        f"{emulator.rate_limited} answered 429{extra}"
    )


def main(n: int) -> None:
    with ActiveCampaignEmulator(rate_limit=int(RATE)) as emulator:
        adapter = ActiveCampaignAdapter(api_url=emulator.url, api_token=Secret(emulator.api_token), list_id="1")
        t = time.perf_counter()
        failed, ids = write_all(adapter, requests_for(n, last="One"))
        line(f"create {n}", emulator, math.ceil(n / 250), time.perf_counter() - t, f", {failed} failed")

        emulator.reset_counters()
        t = time.perf_counter()
        pages = list(adapter.read_contacts(Cursor()))
        got = sum(len(p.records) for p in pages)
        line(f"backfill {got}", emulator, math.ceil(n / 100), time.perf_counter() - t)

        emulator.reset_counters()
        t = time.perf_counter()
        idle_pages = list(adapter.read_contacts(pages[-1].next_cursor))
        idle = sum(len(p.records) for p in idle_pages)
        line(
            f"idle incremental at once ({idle} records; all {n} changed inside the overlap)",
            emulator,
            1,
            time.perf_counter() - t,
        )

        # A later idle cycle: the same account read by an adapter whose clock is 3 minutes on, i.e. once the
        # last change is older than the 2-minute overlap.
        later = ActiveCampaignAdapter(
            api_url=emulator.url,
            api_token=Secret(emulator.api_token),
            list_id="1",
            clock=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3),
        )
        cursor = list(later.read_contacts(idle_pages[-1].next_cursor))[-1].next_cursor
        emulator.reset_counters()
        t = time.perf_counter()
        idle = sum(len(p.records) for p in later.read_contacts(cursor))
        line(f"idle incremental 3 min after the last change ({idle} records)", emulator, 1, time.perf_counter() - t)
        later.close()

        m = min(UPDATES, n)
        emulator.reset_counters()
        t = time.perf_counter()
        failed, _ = write_all(adapter, requests_for(m, last="Two", ids=ids))
        took = time.perf_counter() - t
        line(f"update {m} linked", emulator, m, took, f", {failed} failed")
        calls = emulator.read_calls() + emulator.write_calls()
        print(
            f"  -> {calls / m:.2f} calls per update: {n} updates would take ~{calls / m * n / RATE / 60:.0f} min at 5/s"
        )
        adapter.close()


def migrate(n: int) -> None:
    """``crmsync migrate --from file --to activecampaign`` twice; the second run must make no write call."""
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp, ActiveCampaignEmulator(rate_limit=int(RATE)) as emulator:
        work = Path(tmp)
        with (work / "contacts.jsonl").open("w") as out:
            for i in range(n):
                row = {
                    "email": f"person{i}@example.com",
                    "first_name": f"P{i}",
                    "last_name": "Lee",
                    "company": "Acme Ltd",
                    "tags": ["customer"] + (["vip"] if i % 10 == 0 else []),
                    "consent": ["subscribed", "unknown", "unsubscribed", "pending"][i % 4],
                }
                out.write(json.dumps(row) + "\n")
        o = emulator.sandbox_options()
        (work / "crmsync.toml").write_text(
            f'[state]\nurl = "sqlite:///state.db"\n[providers.file]\ntype = "jsonl"\npath = "contacts.jsonl"\n'
            f'[providers.ac]\ntype = "activecampaign"\napi_url = "{o["api_url"]}"\napi_token = "{o["api_token"]}"\n'
            f'list_id = "{o["list_id"]}"\n'
        )
        for run in (1, 2):
            emulator.reset_counters()
            emulator.rate_limited = 0
            t = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "connector", "migrate", "--from", "file", "--to", "ac", "--json", *CONFIG],
                cwd=work,
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "PYTHONPATH": str(root)},
            )
            took = time.perf_counter() - t
            with emulator.account.lock:
                statuses = Counter(
                    c.lists[emulator.list_id].status if emulator.list_id in c.lists else "none"
                    for c in emulator.account.contacts.values()
                )
            print(
                f"migrate run {run}: exit {done.returncode}, {emulator.count()} contacts in the emulator, "
                f"list status {dict(sorted(statuses.items()))}"
            )
            if done.returncode not in (0, 1):
                print(done.stderr[-2000:])
            line(f"  run {run}", emulator, math.ceil(n / 250) if run == 1 else 0, took)


if __name__ == "__main__":
    count = int(next((a for a in sys.argv[1:] if a.isdigit()), "5000"))
    if "--migrate" in sys.argv:
        migrate(count)
    else:
        main(count)
