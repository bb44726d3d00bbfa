"""GetResponse API calls against the minimum, and time against the rate-limit floor, through the emulator.

Adapter level: migrates N contacts (canonical rows as a JSONL file holds them, mapped by the GetResponse
table) into an empty campaign, reads them back (backfill), reads an idle incremental cycle, then writes
every contact again as an update. The adapter runs with its default limits (80 calls/s and 30,000 per
10 minutes per account) and the emulator enforces the same, so times are real.

Minimums: GetResponse has no upsert and no batch update; ``POST /contacts`` takes one contact, so a new
contact costs at least 1 call (``POST /contacts/batch`` could add 1000 a call, but cannot update and is
limited to 80 calls per 10 minutes). Existing addresses are found by listing the campaign when that is
cheaper than one exact-match find per address (a migration), so creates cost little more than 1 call. A read costs ceil(N/1000) list pages, plus one detail call per
contact for tags and custom field values. Floor: calls / 80 s (or the 10-minute window when above 30,000).
Usage: python benchmarks/getresponse_calls.py [N]
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import time

from adapters.base import Cursor, WriteRequest
from adapters.getresponse import GetResponseAdapter
from adapters.getresponse.emulator import GetResponseEmulator
from adapters.secret import Secret
from mappings.contact import Consent
from mappings.mapper import build_mapping

PER_S = 80
PER_WINDOW, WINDOW_S = 30_000, 600


def floor_s(calls: int) -> float:
    """The least time GetResponse's published limits allow for ``calls`` calls."""
    windows = max(math.ceil(calls / PER_WINDOW) - 1, 0)
    return max(calls / PER_S, windows * WINDOW_S)


def rows(n: int, *, last: str) -> list[dict[str, object]]:
    return [
        {
            "email": f"person{i}@example.com",
            "first_name": f"P{i}",
            "last_name": last,
            "company": "Acme Ltd",
            "city": "Gdansk" if i % 3 == 0 else None,
            "tags": frozenset({"customer"} | ({"vip"} if i % 10 == 0 else set())),
            "consent": [Consent.UNKNOWN, Consent.SUBSCRIBED, Consent.SUBSCRIBED, Consent.PENDING][i % 4],
        }
        for i in range(n)
    ]


def write_all(adapter: GetResponseAdapter, reqs: list[WriteRequest]) -> tuple[int, list[str | None]]:
    failed, ids = 0, []
    for start in range(0, len(reqs), adapter.max_batch):
        results = adapter.write_contacts(reqs[start : start + adapter.max_batch])
        failed += sum(1 for r in results if not r.ok)
        ids.extend(r.remote_id for r in results)
    return failed, ids


def report(what: str, emulator: GetResponseEmulator, took: float, minimum: int, extra: str = "") -> None:
    calls = sum(emulator.calls.values())
    print(
        f"{what}: {calls} calls ({emulator.read_calls()} reads, {emulator.write_calls()} writes; minimum {minimum}, "
        f"{calls / max(minimum, 1):.2f}x), {took:.1f}s (rate-limit floor {floor_s(calls):.1f}s){extra}"
    )


def main(n: int) -> None:
    mapping = build_mapping("getresponse")
    shift = [dt.timedelta()]  # GetResponse's clock, moved on before the idle cycle

    def clock() -> dt.datetime:
        return dt.datetime.now(dt.UTC).replace(microsecond=0) + shift[0]

    with GetResponseEmulator(clock=clock) as emulator:
        adapter = GetResponseAdapter(
            api_key=Secret(emulator.api_key), campaign_id=emulator.campaign_id, base_url=emulator.api_url, clock=clock
        )
        reqs = [
            WriteRequest(ref=str(i), remote_id=None, email=str(r["email"]), fields=mapping.to_provider(r))
            for i, r in enumerate(rows(n, last="One"))
        ]
        t = time.perf_counter()
        failed, _ = write_all(adapter, reqs)
        took = time.perf_counter() - t
        report(f"migrate {n} new", emulator, took, n, f", {failed} failed; by route {dict(emulator.calls)}")
        emulator.process_queue()

        emulator.reset_counters()
        t = time.perf_counter()
        pages = list(adapter.read_contacts(Cursor()))
        took = time.perf_counter() - t
        got = [r for p in pages for r in p.records]
        report(f"backfill {len(got)}", emulator, time.perf_counter() - t, math.ceil(n / 1000) + n)

        cursor = pages[-1].next_cursor
        for cycle in ("first", "second"):
            shift[0] += dt.timedelta(minutes=10)  # the next cycle, 10 minutes on, nothing changed
            emulator.reset_counters()
            t = time.perf_counter()
            idle_pages = list(adapter.read_contacts(cursor))
            cursor = idle_pages[-1].next_cursor
            idle = sum(len(p.records) for p in idle_pages)
            report(f"{cycle} idle incremental ({idle} records re-read)", emulator, time.perf_counter() - t, 1)

        ids = {str(r.data["email"]): r.remote_id for r in got}
        updates = [
            WriteRequest(
                ref=str(i), remote_id=ids.get(str(r["email"])), email=str(r["email"]), fields=mapping.to_provider(r)
            )
            for i, r in enumerate(rows(n, last="Two"))
        ]
        emulator.reset_counters()
        t = time.perf_counter()
        failed, _ = write_all(adapter, updates)
        report(f"update {n} linked", emulator, time.perf_counter() - t, n, f", {failed} failed")
        adapter.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
