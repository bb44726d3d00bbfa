"""HubSpot API calls against the minimum, through the emulator: backfill, batch writes, an incremental cycle.

    /work/venv/bin/python benchmarks/hubspot_calls.py [--contacts 10000] [--changed 12000] [--fast]

Minimum = list pages (100 a page) + upsert batches (100 a call) + search pages (200 a page). Consent
writes are counted apart: ``hs_email_optout`` is read-only, so each opt-out costs a Communication
Preferences call (one per address, or one per batch on Marketing Hub Enterprise). Without ``--fast`` the
emulator enforces HubSpot's real limits (100 / 10 s, search 5 / s) and the run shows no 429.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.base import Cursor, WriteRequest
from adapters.hubspot import HubSpotAdapter
from adapters.hubspot.emulator import HubSpotEmulator

WRITABLE = ("firstname", "lastname", "phone", "company", "city", "lifecyclestage", "crmsync_tags", "hs_email_optout")


def adapter_for(emu: HubSpotEmulator, *, fast: bool) -> HubSpotAdapter:
    options = emu.sandbox_options()
    limits = {"rate_limit": "100000/10s", "search_rate_limit": "100000/1s"} if fast else {}
    return HubSpotAdapter(access_token=options["access_token"], base_url=options["base_url"], **limits)


def emulator(*, fast: bool, **kwargs) -> HubSpotEmulator:
    return HubSpotEmulator(**({"burst": 100_000, "search_per_s": 100_000} if fast else {}), **kwargs).start()


def ratio(calls: int, minimum: int) -> str:
    return f"{calls} calls / minimum {minimum} = {calls / max(minimum, 1):.3f}x"


def export(n: int, path: Path, *, fast: bool) -> None:
    emu = emulator(fast=fast)
    try:
        emu.seed(n)
        emu.reset_counters()
        adapter = adapter_for(emu, fast=fast)
        started = time.perf_counter()
        count = 0
        with path.open("w", encoding="utf-8") as out:
            for page in adapter.read_contacts(Cursor()):
                for record in page.records:
                    out.write(json.dumps(dict(record.data)) + "\n")
                    count += 1
        took = time.perf_counter() - started
        print(f"HubSpot -> JSONL: {count} contacts in {took:.1f} s; "
              f"{ratio(emu.reads(), math.ceil(n / 100))}; 429s: {sum(1 for *_, s in emu.server.log if s == 429)}")
    finally:
        emu.stop()


def requests_from(path: Path) -> list[WriteRequest]:
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        props = json.loads(line)["properties"]
        email = props["email"]
        fields = {k: props[k] for k in WRITABLE if props.get(k) is not None}
        out.append(WriteRequest(ref=str(i), remote_id=None, email=email, fields={"properties": fields}))
    return out


def import_(path: Path, *, fast: bool, enterprise: bool) -> None:
    emu = emulator(fast=fast, enterprise=enterprise)
    try:
        adapter = adapter_for(emu, fast=fast)
        requests = requests_from(path)
        started = time.perf_counter()
        failed = 0
        for start in range(0, len(requests), adapter.max_batch):
            failed += sum(not r.ok for r in adapter.write_contacts(requests[start : start + adapter.max_batch]))
        took = time.perf_counter() - started
        optouts = sum(1 for r in requests if r.fields["properties"].get("hs_email_optout") == "true")
        consent = emu.call_count(pattern="communication-preferences")
        batches = math.ceil(len(requests) / 100)
        tier = "Enterprise" if enterprise else "Starter/Pro"
        with_optouts = [any(r.fields["properties"].get("hs_email_optout") == "true" for r in requests[i : i + 100])
                        for i in range(0, len(requests), 100)]
        # hs_email_optout is read-only: each opt-out costs a preferences call (Enterprise: one per batch)
        least = batches + (sum(with_optouts) if enterprise else optouts)
        print(f"JSONL -> HubSpot ({tier}): {len(requests)} contacts ({optouts} opted out) in {took:.1f} s, "
              f"{failed} failed; contact writes {ratio(emu.writes(), batches)}; "
              f"consent calls {consent}; all calls {ratio(emu.call_count(), least)} (minimum incl. the preferences calls opt-outs need); "
              f"in HubSpot: {emu.count()}; 429s: {sum(1 for *_, s in emu.server.log if s == 429)}")
    finally:
        emu.stop()


def incremental(n: int, *, fast: bool) -> None:
    emu = emulator(fast=fast)
    try:
        t0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
        ids = emu.seed(n)
        for k, contact_id in enumerate(ids):  # changed since the cursor, some sharing a millisecond
            emu.portal.contacts[contact_id].updated_ms = int(t0.timestamp() * 1000) + 60_000 + k // 4
        emu.reset_counters()
        adapter = adapter_for(emu, fast=fast)
        started = time.perf_counter()
        seen: list[str] = []
        for page in adapter.read_contacts(Cursor(phase="incremental", updated_after=t0)):
            seen += [r.remote_id for r in page.records]
        took = time.perf_counter() - started
        print(f"incremental: {len(set(seen))} distinct of {n} changed ({len(seen)} delivered) in {took:.1f} s; "
              f"searches {ratio(emu.reads(), math.ceil(n / 200))}; "
              f"400s: {sum(1 for *_, s in emu.server.log if s == 400)}")
    finally:
        emu.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=12_000)
    parser.add_argument("--fast", action="store_true", help="lift the emulator's rate limits (counts only)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "contacts.jsonl"
        export(args.contacts, path, fast=args.fast)
        import_(path, fast=args.fast, enterprise=False)
        import_(path, fast=args.fast, enterprise=True)
    incremental(args.changed, fast=args.fast)


if __name__ == "__main__":
    main()
