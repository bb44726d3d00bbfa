"""Mailchimp API calls against the minimum, adapter level, through the emulator over real HTTP.

Writes N new members (tags inline), reads them back (backfill), reads an idle incremental cycle, then
re-writes every member as an update. Minimums: ceil(N/500) batch-subscribe calls to write, ceil(N/1000)
pages to read. Usage: python benchmarks/mailchimp_calls.py [N]
"""

from __future__ import annotations

import math
import sys
import time

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


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
