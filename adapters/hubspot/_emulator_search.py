"""The emulator's CRM search: filters, one sort rule, offset paging and its caps.

https://developers.hubspot.com/docs/api-reference/search/guide: page <= 200 (default 10), at most
10,000 results per query (paging further answers 400), body <= 3,000 characters, <= 5 filterGroups of
<= 6 filters and <= 18 filters in all, one sort rule; unsorted results come oldest-created first.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any, Final

from adapters.hubspot._emulator_data import StoredContact, parse_ms

SEARCH_RESULT_CAP: Final = 10_000
SEARCH_PAGE_MAX: Final = 200
SEARCH_BODY_MAX: Final = 3_000
# https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm ("Filter search results"): at most five
# filterGroups, 6 filters a group, 18 in all, else 400 VALIDATION_ERROR. The changelog of Aug 2024
# (https://developers.hubspot.com/changelog/breaking-change-expanded-filtering-capabilities-and-error-messaging-in-hubspots-search-api)
# announced 5 groups, 10 a group and 25 in all; the guide, written since for the date-versioned API, keeps 6 and 18,
# so the emulator holds to the guide's (lower) numbers until HubSpot settles it.
GROUPS_MAX: Final = 5
GROUP_FILTERS_MAX: Final = 6
FILTERS_MAX: Final = 18
DATE_PROPERTIES: Final = frozenset({"createdate", "lastmodifieddate", "hs_lastmodifieddate"})


class SearchError(ValueError):
    """The request breaks one of search's rules: HubSpot answers 400 VALIDATION_ERROR."""


def validate(body: Any, raw_length: int) -> None:
    if raw_length > SEARCH_BODY_MAX:
        raise SearchError(f"Request body is too long: {raw_length} > {SEARCH_BODY_MAX} characters")
    if not isinstance(body, dict):
        raise SearchError("Invalid input JSON")
    groups = body.get("filterGroups") or []
    if len(groups) > GROUPS_MAX:
        raise SearchError(f"Too many filter groups: at most {GROUPS_MAX}")
    counts = [len(g.get("filters") or []) for g in groups]
    if any(n > GROUP_FILTERS_MAX for n in counts) or sum(counts) > FILTERS_MAX:
        raise SearchError(f"Too many filters: at most {GROUP_FILTERS_MAX} per group and {FILTERS_MAX} in all")
    if len(body.get("sorts") or []) > 1:
        raise SearchError("Only one sort rule is allowed")
    limit = int(body.get("limit") or 10)
    if not 0 < limit <= SEARCH_PAGE_MAX:
        raise SearchError(f"limit must be between 1 and {SEARCH_PAGE_MAX}")


def check_offset(offset: int) -> None:
    if offset >= SEARCH_RESULT_CAP:
        raise SearchError(f"Paging is limited to {SEARCH_RESULT_CAP} results; narrow the query")


def _value(contact: StoredContact, name: str) -> str | None:
    value = contact.computed(name)
    return None if value == "" else value


def _key(name: str, text: str) -> Any:
    if name in DATE_PROPERTIES:
        return parse_ms(text)
    if name == "hs_object_id":
        return int(text)
    return text.lower()


def _native(contact: StoredContact, name: str) -> Any:
    """Dates and ids as numbers straight from the store (searches sort thousands of rows)."""
    if name in {"lastmodifieddate", "hs_lastmodifieddate"}:
        return contact.updated_ms
    if name == "createdate":
        return contact.created_ms
    return int(contact.id)


Predicate = Callable[[StoredContact], bool]

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": operator.eq,
    "NEQ": operator.ne,
    "LT": operator.lt,
    "LTE": operator.le,
    "GT": operator.gt,
    "GTE": operator.ge,
}


def _predicate(flt: dict[str, Any]) -> Predicate:
    """One filter as a test of a contact, its value parsed once per query (a search scans every contact)."""
    name, op = str(flt.get("propertyName")), str(flt.get("operator", "EQ")).upper()
    if name in DATE_PROPERTIES or name == "hs_object_id":
        return _native_predicate(name, op, flt)
    if op == "HAS_PROPERTY":
        return lambda c: _value(c, name) is not None
    if op == "NOT_HAS_PROPERTY":
        return lambda c: _value(c, name) is None
    if op in ("IN", "NOT_IN"):  # values must already be lower-case [SEARCH]
        values = [str(v) for v in flt.get("values") or []]
        inside = op == "IN"

        def listed(contact: StoredContact) -> bool:
            raw = _value(contact, name)
            return not inside if raw is None else (raw.lower() in values) == inside

        return listed
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(flt.get("value", "")).lower().strip("*")
        contains = op == "CONTAINS_TOKEN"

        def has_token(contact: StoredContact) -> bool:
            raw = _value(contact, name)
            if raw is None:
                return not contains
            found = token in raw.lower().replace(";", " ").split() or token in raw.lower()
            return found == contains

        return has_token
    compare = _comparison(name, op, flt)
    absent_matches = op == "NEQ"
    return lambda c: absent_matches if (raw := _value(c, name)) is None else compare(_key(name, raw))


def _native_predicate(name: str, op: str, flt: dict[str, Any]) -> Predicate:
    def read(contact: StoredContact) -> Any:
        return _native(contact, name)

    if op == "HAS_PROPERTY":
        return lambda c: True
    if op == "NOT_HAS_PROPERTY":
        return lambda c: False
    if op in ("IN", "NOT_IN"):
        values = {_key(name, str(v)) for v in flt.get("values") or []}
        inside = op == "IN"
        return lambda c: (read(c) in values) == inside
    if name in {"lastmodifieddate", "hs_lastmodifieddate"} and op in _ORDER:  # the incremental read's filter
        order, theirs = _ORDER[op], _key(name, str(flt.get("value")))
        return lambda c: order(c.updated_ms, theirs)
    compare = _comparison(name, op, flt)
    return lambda c: compare(read(c))


def _comparison(name: str, op: str, flt: dict[str, Any]) -> Callable[[Any], bool]:
    theirs = _key(name, str(flt.get("value")))
    if op == "BETWEEN":
        high = _key(name, str(flt.get("highValue")))
        return lambda mine: bool(theirs <= mine <= high)
    if op not in _ORDER:
        raise SearchError(f"Unknown operator {op}")
    order = _ORDER[op]
    return lambda mine: order(mine, theirs)


def _sort_key(name: str) -> Callable[[StoredContact], tuple[Any, ...]]:
    if name in DATE_PROPERTIES or name == "hs_object_id":
        return lambda contact: (False, _native(contact, name), int(contact.id))

    def key(contact: StoredContact) -> tuple[Any, ...]:
        raw = _value(contact, name)
        return (raw is None, _key(name, raw) if raw is not None else 0, int(contact.id))

    return key


def run(contacts: Sequence[StoredContact], body: dict[str, Any]) -> tuple[list[StoredContact], int]:
    """The matching contacts in order (all of them) and the total."""
    groups = [[_predicate(f) for f in g.get("filters") or []] for g in body.get("filterGroups") or []]
    if len(groups) == 1:  # one group: each filter narrows what the one before it kept
        found = list(contacts)
        for test in groups[0]:
            found = [c for c in found if test(c)]
    else:
        found = [c for c in contacts if not groups or any(all(test(c) for test in group) for group in groups)]
    query = str(body.get("query") or "").lower()
    if query:
        fields = ("email", "firstname", "lastname", "phone", "company")
        found = [c for c in found if any(query in (c.props.get(f) or "").lower() for f in fields)]
    sorts = body.get("sorts") or []
    if sorts:
        rule = sorts[0]
        name = rule.lstrip("-") if isinstance(rule, str) else str(rule.get("propertyName"))
        descending = rule.startswith("-") if isinstance(rule, str) else rule.get("direction") == "DESCENDING"
        found.sort(key=_sort_key(name), reverse=descending)
    else:
        found.sort(key=lambda c: (c.created_ms, int(c.id)))
    return found, len(found)
