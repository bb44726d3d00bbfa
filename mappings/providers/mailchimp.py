"""Mailchimp's table: audience member JSON (``email_address``, ``merge_fields.FNAME``, ``status``, ``tags``).

Paths are the keys of a member from ``GET /3.0/lists/{id}/members`` as the Mailchimp adapter puts it in
``ProviderRecord.data`` (/work/shared/providers/mailchimp.md, "Member keys"). Default merge tags are
``FNAME LNAME ADDRESS PHONE``; ``COMPANY`` is the common extra one. An audience can rename them, and any
other merge tag maps through ``[mapping.<name>.fields]`` (``job_title = "merge_fields.JOBTITLE"``).

The address parts are read only: Mailchimp stores ADDRESS as one object whose parts (addr1, city, state,
zip) it validates together, so writing a city alone would get the whole member refused.

Consent: ``status`` maps to canonical consent; ``unknown`` goes out as ``None`` and the adapter decides
(``status_if_new`` from ``new_member_status``). ``transactional`` (receipts only) and ``archived`` say
nothing about marketing consent, so they read as ``unknown``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from mappings.contact import OPT_IN_AT, Consent
from mappings.fieldmap import FieldMapping, ProviderTable
from mappings.providers._shared import consent_word, sorted_tags, tag_names

CONSENT_IN: Final = {
    "subscribed": Consent.SUBSCRIBED,
    "unsubscribed": Consent.UNSUBSCRIBED,
    "cleaned": Consent.CLEANED,
    "pending": Consent.PENDING,
    "transactional": Consent.UNKNOWN,
    "archived": Consent.UNKNOWN,
}
CONSENT_OUT: Final = {
    Consent.SUBSCRIBED: "subscribed",
    Consent.UNSUBSCRIBED: "unsubscribed",
    Consent.CLEANED: "cleaned",
    Consent.PENDING: "pending",
}


def consent_in(status: Any) -> Consent:
    return CONSENT_IN.get(str(status).strip().lower(), Consent.UNKNOWN)


def consent_out(consent: Any) -> str | None:
    """A Mailchimp status, or None for unknown: the adapter then applies ``new_member_status``."""
    return consent_word(consent, CONSENT_OUT)


def tags_in(tags: Any) -> frozenset[str]:
    """Members carry ``tags: [{"id": 1, "name": "vip"}]``; plain names are accepted too."""
    return tag_names(tags)


def tags_out(tags: Iterable[str]) -> list[str]:
    """Batch subscribe takes tag names as a list of strings."""
    return sorted_tags(tags)


def opt_in_in(value: Any) -> str | None:
    """``timestamp_opt`` is when the person confirmed the opt-in; empty when they never did."""
    text = str(value).strip()
    return text or None


TABLE: Final = ProviderTable(
    provider_type="mailchimp",
    fields=(
        FieldMapping(canonical="email", provider="email_address", required=True),
        FieldMapping(canonical="first_name", provider="merge_fields.FNAME"),
        FieldMapping(canonical="last_name", provider="merge_fields.LNAME"),
        FieldMapping(canonical="phone", provider="merge_fields.PHONE"),
        FieldMapping(canonical="company", provider="merge_fields.COMPANY"),
        FieldMapping(canonical="city", provider="merge_fields.ADDRESS.city", read_only=True),
        FieldMapping(canonical="region", provider="merge_fields.ADDRESS.state", read_only=True),
        FieldMapping(canonical="country", provider="merge_fields.ADDRESS.country", read_only=True),
        FieldMapping(canonical="tags", provider="tags", inbound=tags_in, outbound=tags_out),
        FieldMapping(canonical="consent", provider="status", inbound=consent_in, outbound=consent_out),
        FieldMapping(canonical=OPT_IN_AT, provider="timestamp_opt", inbound=opt_in_in, read_only=True),
    ),
)
