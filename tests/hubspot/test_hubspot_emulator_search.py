"""The emulator's search filters, one operator at a time (the adapter relies on a few; tests and users on more)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.hubspot import _emulator_search as search
from adapters.hubspot._emulator_data import StoredContact

PEOPLE = [
    StoredContact(id="1", props={"email": "Ann@Example.com", "firstname": "Ann", "hs_tags": "vip;retail"},
                  created_ms=1_000, updated_ms=5_000),
    StoredContact(id="2", props={"email": "bob@example.com", "firstname": ""}, created_ms=2_000, updated_ms=6_000),
    StoredContact(id="3", props={"email": "cy@example.org", "firstname": "Cy"}, created_ms=3_000, updated_ms=5_000),
]


def ids(*filters: dict[str, Any], groups: list[list[dict[str, Any]]] | None = None) -> list[str]:
    body = {"filterGroups": [{"filters": g} for g in (groups or [list(filters)])]}
    found, total = search.run(PEOPLE, body)
    assert total == len(found)
    return [c.id for c in found]


@pytest.mark.parametrize(("flt", "expected"), [
    ({"propertyName": "email", "operator": "EQ", "value": "ann@example.com"}, ["1"]),  # case-insensitive
    ({"propertyName": "firstname", "operator": "NEQ", "value": "ann"}, ["2", "3"]),  # empty counts as absent
    ({"propertyName": "firstname", "operator": "HAS_PROPERTY"}, ["1", "3"]),
    ({"propertyName": "firstname", "operator": "NOT_HAS_PROPERTY"}, ["2"]),
    ({"propertyName": "firstname", "operator": "IN", "values": ["ann", "cy"]}, ["1", "3"]),
    ({"propertyName": "firstname", "operator": "NOT_IN", "values": ["ann"]}, ["2", "3"]),
    ({"propertyName": "hs_tags", "operator": "CONTAINS_TOKEN", "value": "retail"}, ["1"]),
    ({"propertyName": "hs_tags", "operator": "NOT_CONTAINS_TOKEN", "value": "retail"}, ["2", "3"]),
    ({"propertyName": "lastmodifieddate", "operator": "EQ", "value": "5000"}, ["1", "3"]),
    ({"propertyName": "lastmodifieddate", "operator": "GT", "value": "5000"}, ["2"]),
    ({"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1970-01-01T00:00:05Z"}, ["1", "2", "3"]),
    ({"propertyName": "createdate", "operator": "BETWEEN", "value": "1500", "highValue": "3000"}, ["2", "3"]),
    ({"propertyName": "hs_object_id", "operator": "LT", "value": "3"}, ["1", "2"]),
    ({"propertyName": "hs_object_id", "operator": "NOT_IN", "values": ["1", "3"]}, ["2"]),
])
def test_each_operator_selects_what_hubspot_would(flt: dict[str, Any], expected: list[str]) -> None:
    assert ids(flt) == expected


def test_filters_in_a_group_are_anded_and_groups_ored() -> None:
    modified = {"propertyName": "lastmodifieddate", "operator": "EQ", "value": "5000"}
    after_one = {"propertyName": "hs_object_id", "operator": "GT", "value": "1"}
    assert ids(modified, after_one) == ["3"]
    assert ids(groups=[[modified, after_one], [{"propertyName": "email", "operator": "EQ", "value": "bob@example.com"}]]) \
        == ["2", "3"]


def test_an_unknown_operator_is_refused_even_when_nothing_could_match() -> None:
    with pytest.raises(search.SearchError, match="Unknown operator"):
        search.run([], {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "LIKE", "value": "a"}]}]})


def _body(*sizes: int) -> dict[str, Any]:
    flt = {"propertyName": "email", "operator": "HAS_PROPERTY"}
    return {"filterGroups": [{"filters": [flt] * n} for n in sizes]}


@pytest.mark.parametrize("sizes", [(6, 6, 6), (6, 6, 3, 2, 1), (1,) * 5])
def test_the_search_guides_filter_limits_are_accepted(sizes: tuple[int, ...]) -> None:
    search.validate(_body(*sizes), 100)


@pytest.mark.parametrize("sizes", [(7,), (6, 6, 6, 1), (1,) * 6, (10,), (10, 10, 5)])
def test_past_the_search_guides_filter_limits_is_a_400(sizes: tuple[int, ...]) -> None:
    # 5 groups, 6 filters a group, 18 in all, as the search guide says (not the Aug 2024 changelog's 10 and 25)
    with pytest.raises(search.SearchError, match="Too many filter"):
        search.validate(_body(*sizes), 100)
