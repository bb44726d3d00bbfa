"""The last_changed scan as a property: whatever the ties, page size, bound semantics and edits, no gap."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.mailchimp._scan import Scan

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def listing(rows: dict[str, dt.datetime], scan: Scan, count: int, *, inclusive: bool) -> list[tuple[str, dt.datetime]]:
    """A Mailchimp-like server: filter by since_last_changed, sort by last_changed (stable), page by offset."""
    order = sorted(rows.items(), key=lambda kv: kv[1])  # stable: ties keep creation order
    if scan.since is not None:
        order = [kv for kv in order if (kv[1] >= scan.since if inclusive else kv[1] > scan.since)]
    return order[scan.offset : scan.offset + count]


@settings(max_examples=200, deadline=None)
@given(
    seconds=st.lists(st.integers(0, 4), min_size=0, max_size=60),
    count=st.integers(1, 12),
    inclusive=st.booleans(),
    edits=st.lists(st.integers(0, 59), max_size=6),
)
def test_every_member_is_read(seconds, count, inclusive, edits):
    """A backfill, then the incremental read from its final cursor (lookback 60 s) see every member."""
    rows = {f"m{i}": T0 + dt.timedelta(seconds=s) for i, s in enumerate(seconds)}
    seen, now = set(), T0 + dt.timedelta(seconds=10)
    scan = scan_all(rows, Scan(), count, inclusive, edits, seen, now)
    if scan.floor is not None:
        scan_all(rows, Scan(since=scan.floor - dt.timedelta(seconds=60)), count, inclusive, [], seen, now)
    assert seen == set(rows)


def scan_all(rows, scan, count, inclusive, edits, seen, now):
    pages = 0
    while True:
        page = listing(rows, scan, count, inclusive=inclusive)
        seen |= {mid for mid, changed in page if not scan.already_taken(mid, changed)}
        scan = scan.advance(page, count=count)
        if edits and rows:  # a person edits a member mid-scan: it moves to the end of the listing
            victim = f"m{edits.pop() % len(rows)}"
            now += dt.timedelta(seconds=1)
            rows[victim] = now
        pages += 1
        assert pages < 1000, "the scan must end"
        if len(page) < count:
            return scan


@settings(max_examples=100, deadline=None)
@given(seconds=st.lists(st.integers(0, 4), max_size=40), count=st.integers(1, 8))
def test_an_unsorting_server_is_read_in_full_by_plain_offsets(seconds, count):
    rows = {f"m{i}": T0 + dt.timedelta(seconds=s) for i, s in enumerate(seconds)}
    order = list(rows.items())  # the server's own order, not last_changed
    scan, seen = Scan().unordered(), set()
    while True:
        page = order[scan.offset : scan.offset + count]
        seen |= {mid for mid, changed in page if not scan.already_taken(mid, changed)}
        scan = scan.advance(page, count=count)
        if len(page) < count:
            break
    assert seen == set(rows)
    assert scan.newest == (max(rows.values()) if rows else None)
