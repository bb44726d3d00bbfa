"""The store's JSON: what orjson refuses still goes in and comes back as it was."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from mappings.contact import Consent
from state.codec import dump_fields, dump_sources, load_fields, load_sources


def test_fields_orjson_refuses_are_stored_all_the_same():
    fields = {"custom.big": 2**70, "custom.odd": "broken \udcff byte", "first_name": "Zoë"}
    assert load_fields(dump_fields(fields)) == fields


def test_fields_round_trip_with_tags_consent_and_sorted_keys():
    fields = {"tags": frozenset({"vip", "b2b"}), "consent": Consent.UNSUBSCRIBED, "email": "a@example.com"}
    text = dump_fields(fields)
    assert text.index('"consent"') < text.index('"email"') < text.index('"tags"')
    assert load_fields(text) == fields


@given(st.dictionaries(st.text(min_size=1), st.one_of(st.text(), st.integers(), st.none()), max_size=8))
def test_any_text_fields_round_trip(fields):
    assert load_fields(dump_fields(fields)) == fields


def test_sources_share_one_origin_and_round_trip():
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    sources = {"first_name": ("hubspot", at), "company": ("hubspot", at), "city": ("zoho", None)}
    assert load_sources(dump_sources(sources)) == sources
