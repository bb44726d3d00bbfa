"""The CSV file provider's table: canonical names as columns, tags ``;``-separated, ``custom.<name>`` columns.

SPEC "The canonical contact": a file uses the canonical names themselves. ``consent`` holds the canonical
word (anything else reads as ``unknown``); ``opt_in_at`` holds the ISO time of an explicit opt-in.
A tag name containing ``;`` cannot be written to CSV without splitting: keep tag names free of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from mappings.contact import OPT_IN_AT, SCALAR_FIELDS
from mappings.fieldmap import FieldMapping, ProviderTable

TAG_SEPARATOR: Final = ";"


def join_tags(tags: Iterable[str]) -> str:
    return TAG_SEPARATOR.join(sorted(tags))


TABLE: Final = ProviderTable(
    provider_type="csv",
    fields=(
        FieldMapping(canonical="email", provider="email", required=True),
        *(FieldMapping(canonical=name, provider=name) for name in SCALAR_FIELDS if name != "email"),
        FieldMapping(canonical="tags", provider="tags", outbound=join_tags),  # read: "a;b" splits on ";"
        FieldMapping(canonical="consent", provider="consent"),
        FieldMapping(canonical=OPT_IN_AT, provider="opt_in_at"),
    ),
    own_keys=frozenset({"id"}),  # the row's own id: the file provider's remote id
    fold_case=True,  # header names match without case (adapters/files/csv_provider.py folds them)
    passthrough_custom=True,  # any "custom.<name>" column
)
