"""The id-gap bookkeeping behind ActiveCampaign's deletion sweep, as properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from adapters.activecampaign._scan import format_ranges, gaps, new_ids, parse_ranges

id_sets = st.sets(st.integers(min_value=1, max_value=200), max_size=60)


@given(id_sets)
def test_ranges_round_trip_and_merge(ids):
    text = format_ranges((i, i) for i in ids)
    covered = {i for lo, hi in parse_ranges(text) for i in range(lo, hi + 1)}
    assert covered == ids
    assert format_ranges(parse_ranges(text)) == text


@given(id_sets, st.integers(min_value=1, max_value=200), st.integers(min_value=0, max_value=50))
def test_new_ids_are_the_range_minus_the_known(known, lo, width):
    hi = lo + width
    ranges = parse_ranges(format_ranges((i, i) for i in known))
    assert list(new_ids(lo, hi, ranges)) == [i for i in range(lo, hi + 1) if i not in known]


@given(id_sets)
def test_gaps_are_exactly_the_missing_ids_below_the_newest(ids):
    present = sorted(ids)
    missing = {i for lo, hi in gaps(0, present) for i in range(lo, hi + 1)}
    top = present[-1] if present else 0
    assert missing == set(range(1, top + 1)) - ids
