"""Mapping tables as data: one ``ProviderTable`` per provider type, in ``mappings/providers/<type>.py``.

Each provider module defines ``TABLE: Final[ProviderTable]``. Paths are dotted paths into the
provider's own record JSON (the ``data`` of a ProviderRecord, and the shape writes are given in):
``"properties.firstname"`` (HubSpot), ``"merge_fields.FNAME"`` (Mailchimp), ``"First_Name"`` (Zoho).
The machinery in ``mappings/mapper.py`` applies the tables, normalises email and phone, and applies
tag maps; a table only says what a provider calls things and how a value changes shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldMapping:
    canonical: str  # "first_name", "tags", "consent", "custom.score", ...
    provider: str  # dotted path in the provider's record JSON
    inbound: Callable[[Any], Any] | None = None  # provider value -> canonical value (None: text as is)
    outbound: Callable[[Any], Any] | None = None  # canonical value -> provider value (None: as is)
    required: bool = False  # a record without it is rejected (the email, usually)
    read_only: bool = False  # read from the provider, never written back (computed fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderTable:
    provider_type: str
    fields: tuple[FieldMapping, ...]
    tags: Mapping[str, str] = field(default_factory=dict)  # canonical tag -> provider tag (default: same)
    # Open-ended custom fields (file providers): every top-level ``custom.<name>`` key, and every entry of a
    # top-level ``custom`` object, reads as ``custom.<name>``; writes go out as flat ``custom.<name>`` keys.
    passthrough_custom: bool = False
    # False: crmsync can opt people out there but never resubscribe them (an explicit opt-in elsewhere lifts the
    # hub's opt-out; the provider keeps its own, so its projection keeps it too)
    resubscribes: bool = True
    # Top-level keys the provider itself reads, not the mapping (a file's own ``id``): never "unread".
    own_keys: frozenset[str] = frozenset()
    # Keys read without case (CSV headers: "Email" is the email column, as the file writer matches them).
    # The provider's rows arrive with such keys lower-cased; the mapping reads them lower-cased too.
    fold_case: bool = False
