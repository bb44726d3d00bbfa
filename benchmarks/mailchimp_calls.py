"""Mailchimp API calls against the minimum, through the emulator over real HTTP.

Adapter level: writes N new members (tags inline), reads them back (backfill), reads an idle incremental
cycle, then re-writes every member as an update. End to end (``--migrate``): ``crmsync migrate`` of N
contacts from a JSONL file into the emulator, twice. Minimums: ceil(N/500) batch-subscribe calls to
write, ceil(N/1000) pages to read. Usage: python benchmarks/mailchimp_calls.py [N] [--migrate]
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adapters.base import Cursor, WriteRequest
from adapters.mailchimp import MailchimpAdapter
from adapters.mailchimp._wire import subscriber_hash
from adapters.mailchimp.emulator import MailchimpEmulator
from adapters.secret import Secret


def requests_for(n: int, *, lname: str, linked: bool = False) -> list[WriteRequest]:
    out = []
    for i in range(n):
        email = f"person{i}@example.com"
        fields = {
            "email_address": email,
            "merge_fields": {"FNAME": f"P{i}", "LNAME": lname, "COMPANY": "Acme Ltd"},
            "tags": sorted({"customer"} | ({"vip"} if i % 10 == 0 else set())),
            "status": [None, "subscribed", "unsubscribed", None][i % 4],
        }
        out.append(
            WriteRequest(ref=str(i), remote_id=subscriber_hash(email) if linked else None, email=email, fields=fields)
        )
    return out


def write_all(adapter: MailchimpAdapter, reqs: list[WriteRequest]) -> int:
    failed = 0
    for start in range(0, len(reqs), adapter.max_batch):
        failed += sum(1 for r in adapter.write_contacts(reqs[start : start + adapter.max_batch]) if not r.ok)
    return failed


def main(n: int) -> None:
    with MailchimpEmulator() as emulator:
        adapter = MailchimpAdapter(
            api_key=Secret(emulator.api_key), list_id=emulator.list_id, base_url=emulator.api_url, batch_poll_s=0.05
        )
        t = time.perf_counter()
        failed = write_all(adapter, requests_for(n, lname="One"))
        took = time.perf_counter() - t
        minimum = math.ceil(n / 500)
        writes = emulator.write_calls()
        print(
            f"create {n}: {writes} write calls (minimum {minimum}, {writes / minimum:.2f}x), "
            f"{emulator.read_calls()} reads, {failed} failed, {took:.2f}s ({n / took:,.0f} contacts/s)"
        )

        emulator.reset_counters()
        t = time.perf_counter()
        pages = list(adapter.read_contacts(Cursor()))
        took = time.perf_counter() - t
        got = sum(len(p.records) for p in pages)
        print(
            f"backfill {got}: {emulator.read_calls()} GET calls (minimum {math.ceil(n / 1000)}), "
            f"{took:.2f}s ({got / took:,.0f} contacts/s)"
        )

        emulator.reset_counters()
        idle = sum(len(p.records) for p in adapter.read_contacts(pages[-1].next_cursor))
        print(
            f"idle incremental: {emulator.read_calls()} GET calls, {idle} records (overlap window), "
            f"{emulator.write_calls()} writes"
        )

        emulator.reset_counters()
        t = time.perf_counter()
        failed = write_all(adapter, requests_for(n, lname="Two", linked=True))
        took = time.perf_counter() - t
        print(
            f"update {n} linked members: {emulator.write_calls()} write calls "
            f"({emulator.call_count('POST', 'lists')} batch subscribe, {emulator.call_count('POST', 'batches')} "
            f"/batches jobs), {emulator.read_calls()} reads (polls + result files), {failed} failed, {took:.2f}s"
        )
        emulator.reset_counters()
        t = time.perf_counter()
        failed = write_all(adapter, requests_for(n, lname="Three"))
        took = time.perf_counter() - t
        print(
            f"update {n} unlinked members: {emulator.write_calls()} write calls, {emulator.read_calls()} reads, "
            f"{failed} failed, {took:.2f}s"
        )
        adapter.close()


def migrate(n: int) -> None:
    """``crmsync migrate --from file --to mailchimp`` twice; the second run must make no write call."""
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp, MailchimpEmulator() as emulator:
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
            f'[providers.mailchimp]\ntype = "mailchimp"\napi_key = "{o["api_key"]}"\nlist_id = "{o["list_id"]}"\n'
            f'base_url = "{o["base_url"]}"\n'
        )
        minimum = math.ceil(n / 500)
        for run in (1, 2):
            emulator.reset_counters()
            t = time.perf_counter()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "connector",
                    "migrate",
                    "--from",
                    "file",
                    "--to",
                    "mailchimp",
                    "--json",
                    "--config",
                    "crmsync.toml",
                ],
                cwd=work,
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "PYTHONPATH": str(root)},
            )
            took = time.perf_counter() - t
            writes = emulator.write_calls()
            print(
                f"migrate run {run}: exit {done.returncode}, {writes} write calls (minimum {minimum if run == 1 else 0}"
                f", {writes / minimum:.2f}x), {emulator.read_calls()} reads, {took:.1f}s ({n / took:,.0f} contacts/s)"
            )


if __name__ == "__main__":
    count = int(next((a for a in sys.argv[1:] if a.isdigit()), "10000"))
    if "--migrate" in sys.argv:
        migrate(count)
    else:
        main(count)
