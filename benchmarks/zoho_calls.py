"""Zoho API calls against the minimum, through the emulator: 5,000 contacts read and written, token refreshes.

Run: python benchmarks/zoho_calls.py [N]
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.base import Cursor, WriteRequest
from adapters.files import JsonlAdapter
from adapters.zoho import create_adapter
from adapters.zoho.emulator import ZohoEmulator
from mappings.mapper import build_mapping


def zoho_to_jsonl(n: int, path: Path) -> None:
    """Zoho -> JSONL: read every contact from the emulator, map it, write it to a JSONL file."""
    with ZohoEmulator() as zoho:
        zoho.advance_clock(-3600)
        zoho.seed(n)
        zoho.advance_clock(3600)
        adapter = create_adapter("zoho", zoho.sandbox_options())
        zoho_map, file_map = build_mapping("zoho"), build_mapping("jsonl")
        sink = JsonlAdapter(name="export", path=path)
        zoho.reset_counters()
        started = time.perf_counter()
        count = 0
        for page in adapter.read_contacts(Cursor()):
            rows = [zoho_map.to_canonical(r.data) for r in page.records]
            for start in range(0, len(rows), sink.max_batch):
                batch = rows[start : start + sink.max_batch]
                sink.write_contacts(
                    [
                        WriteRequest(
                            ref=str(count + i), remote_id=None, email=row["email"], fields=file_map.to_provider(row)
                        )
                        for i, row in enumerate(batch)
                    ]
                )
                count += len(batch)
        sink.finish_writes()
        elapsed = time.perf_counter() - started
        reads, minimum = zoho.reads(), math.ceil(n / 200)
        print(
            f"zoho->jsonl {count} contacts: {reads} GET calls (+{zoho.refreshes()} token), minimum {minimum}, "
            f"ratio {reads / minimum:.3f}; {elapsed:.2f} s; credits used {zoho.credits_used}"
        )


def jsonl_to_zoho(path: Path) -> None:
    """JSONL -> Zoho: read the file, map each line, write them in batches of 100 through the adapter."""
    with ZohoEmulator() as zoho:
        adapter = create_adapter("zoho", zoho.sandbox_options())
        zoho_map, file_map = build_mapping("zoho"), build_mapping("jsonl")
        source = JsonlAdapter(name="import", path=path)
        rows = [file_map.to_canonical(r.data) for page in source.read_contacts(Cursor()) for r in page.records]
        requests = [
            WriteRequest(ref=str(i), remote_id=None, email=row["email"], fields=zoho_map.to_provider(row))
            for i, row in enumerate(rows)
        ]
        zoho.reset_counters()
        started = time.perf_counter()
        failed = 0
        tag_minimum = 0
        for start in range(0, len(requests), adapter.max_batch):
            batch = requests[start : start + adapter.max_batch]
            tag_minimum += len({t["name"] for r in batch for t in r.fields.get("Tag") or ()})
            failed += sum(not r.ok for r in adapter.write_contacts(batch))
        elapsed = time.perf_counter() - started
        upserts = zoho.call_count("POST", "upsert")
        tags = zoho.call_count("POST", "actions")
        minimum = math.ceil(len(rows) / 100)
        total = zoho.reads() + zoho.writes()
        print(
            f"jsonl->zoho {len(rows)} contacts: {upserts} upserts (minimum {minimum}, ratio {upserts / minimum:.3f}); "
            f"{tags} tag actions (minimum {tag_minimum}: one per tag name per batch); other reads {zoho.reads()}; "
            f"all calls {total} vs {minimum + tag_minimum} = {total / (minimum + tag_minimum):.3f}x; "
            f"failed {failed}; {elapsed:.2f} s (rate limit 100/10s); credits used {zoho.credits_used}"
        )


def refresh_benchmark(hours: int = 6, poll_minutes: int = 5) -> None:
    """A daemon polling every few minutes for some hours on a simulated clock: refreshes per hour."""
    with ZohoEmulator(token_ttl_s=10 * 3600 * hours) as zoho:  # the emulator never expires it on its own
        zoho.seed(10)
        adapter = create_adapter("zoho", zoho.sandbox_options())
        now = [time.time()]
        adapter._tokens._clock = lambda: now[0]  # a simulated hour, not a real one
        adapter._now = lambda: dt.datetime.fromtimestamp(now[0], dt.UTC)
        zoho.token_ttl_s = 3600  # what the token answer says: one hour
        cursor = Cursor(phase="incremental", updated_after=None)
        zoho.reset_counters()
        polls = hours * 60 // poll_minutes
        for _ in range(polls):
            for page in adapter.read_contacts(cursor):
                cursor = page.next_cursor
            now[0] += poll_minutes * 60
            zoho.advance_clock(poll_minutes * 60)
        not_modified = sum(1 for _, _, status in zoho.server.log if status == 304)
        print(
            f"tokens {zoho.refreshes()} refreshes in {hours} h of polling every {poll_minutes} min: "
            f"{zoho.refreshes() / hours:.2f} per hour (token lifetime 1 h, refreshed 5 min before expiry); "
            f"quiet polls cost {zoho.reads() / polls:.2f} GET each ({not_modified} of {zoho.reads()} answered 304)"
        )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "contacts.jsonl"
        zoho_to_jsonl(n, path)
        jsonl_to_zoho(path)
    refresh_benchmark()


if __name__ == "__main__":
    main()
