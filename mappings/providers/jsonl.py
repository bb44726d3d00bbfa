"""The JSON Lines file provider's table: canonical names as keys, ``tags`` an array, ``custom.<name>`` keys.

SPEC "The canonical contact": a file uses the canonical names themselves. Custom fields are read from
top-level ``custom.<name>`` keys and from a ``custom`` object (``{"custom": {"score": "12"}}``; the flat
key wins when both are present) and written as flat ``custom.<name>`` keys, the same spelling as the CSV
columns, so a line and a CSV row carry the same names. ``consent`` holds the canonical word (anything
else reads as ``unknown``); ``opt_in_at`` holds the ISO time of an explicit opt-in.
"""

from __future__ import annotations

from typing import Final

from mappings.contact import OPT_IN_AT, SCALAR_FIELDS
from mappings.fieldmap import FieldMapping, ProviderTable

TABLE: Final = ProviderTable(
    provider_type="jsonl",
    fields=(
        FieldMapping(canonical="email", provider="email", required=True),
        *(FieldMapping(canonical=name, provider=name) for name in SCALAR_FIELDS if name != "email"),
        FieldMapping(canonical="tags", provider="tags"),  # written as a sorted array
        FieldMapping(canonical="consent", provider="consent"),
        FieldMapping(canonical=OPT_IN_AT, provider="opt_in_at"),
    ),
    own_keys=frozenset({"id"}),  # the row's own id: the file provider's remote id
    passthrough_custom=True,  # any "custom.<name>" key, or entry of the "custom" object
)
