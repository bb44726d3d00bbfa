"""Properties of the Zoho read cursor: a resume from any page's cursor never skips a record."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from adapters.base import Cursor, ProviderRecord
from adapters.zoho._cursor import advance, already_taken, settle, watermark

T0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
ONE = dt.timedelta(seconds=1)


def records(offsets: list[int]) -> list[ProviderRecord]:
    return [
        ProviderRecord(remote_id=str(i), data={}, updated_at=T0 + dt.timedelta(seconds=o))
        for i, o in enumerate(sorted(offsets))
    ]


@given(
    offsets=st.lists(st.integers(0, 20), min_size=1, max_size=60),
    size=st.integers(1, 7),
    stop=st.integers(0, 60),
)
def test_resuming_from_a_page_cursor_skips_nothing(offsets: list[int], size: int, stop: int) -> None:
    rows = records(offsets)
    pages = [rows[i : i + size] for i in range(0, len(rows), size)]
    stop = min(stop, len(pages) - 1)
    cursor = Cursor()
    taken: set[str] = set()
    for page in pages[: stop + 1]:
        taken |= {r.remote_id for r in page if not already_taken(cursor, r)}
        cursor = advance(cursor, page, phase="incremental", page_token=None, started=None)
    assert cursor.updated_after is not None
    since = cursor.updated_after - ONE  # what the adapter asks for: If-Modified-Since is "after"
    resumed = {r.remote_id for r in rows if r.updated_at and r.updated_at > since and not already_taken(cursor, r)}
    assert taken | resumed == {r.remote_id for r in rows}
    assert not taken & resumed  # the boundary ids are not read twice


@given(offsets=st.lists(st.integers(0, 50), min_size=2, max_size=30), bumped=st.sets(st.integers(0, 29)))
def test_records_edited_while_paging_never_lift_the_watermark_past_the_cap(
    offsets: list[int], bumped: set[int]
) -> None:
    rows = records(offsets)
    cap = T0 + dt.timedelta(seconds=60)  # the read began here; every edit while paging is newer
    edited = [
        ProviderRecord(remote_id=r.remote_id, data={}, updated_at=T0 + dt.timedelta(hours=1)) if i in bumped else r
        for i, r in enumerate(rows)
    ]
    after = advance(Cursor(), edited, phase="backfill", page_token="t", started=None, cap=cap)
    assert after.updated_after is not None and after.updated_after <= cap
    assert watermark([]) is None


@given(offsets=st.lists(st.integers(0, 100), max_size=20), cap=st.integers(0, 100))
def test_the_watermark_never_passes_the_horizon_nor_goes_back(offsets: list[int], cap: int) -> None:
    horizon = T0 + dt.timedelta(seconds=cap)
    before = Cursor(phase="incremental", updated_after=T0 + dt.timedelta(seconds=30))
    after = settle(
        advance(before, records(offsets), phase="incremental", page_token=None, started=None, cap=horizon), [], horizon
    )
    assert after.updated_after is not None and before.updated_after is not None
    assert after.updated_after >= before.updated_after
    assert after.updated_after <= max(horizon, before.updated_after)
