"""HubSpot's table: contact properties under ``properties.*`` as the CRM v3 API returns them.

Values are strings [providers/hubspot.md]. Tags live in a multi-checkbox property ``crmsync_tags``
(``;``-separated; contacts have no tags of their own). Consent reads ``hs_email_optout`` (read-only in
HubSpot): the adapter strips it from writes and turns ``"true"`` into a communication-preferences
unsubscribe, never a resubscribe. ``"false"`` only says "not opted out of all email", not a
subscription, so it reads as ``unknown``. ``lifecyclestage`` has more stages than the canonical
lifecycle: the early ones read as ``prospect``, and ``prospect`` writes as ``lead``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from mappings.contact import Consent
from mappings.fieldmap import FieldMapping, ProviderTable

TAGS_PROPERTY: Final = "crmsync_tags"
TAG_SEPARATOR: Final = ";"  # HubSpot's multi-checkbox spelling

# https://knowledge.hubspot.com/records/use-lifecycle-stages (internal values)
LIFECYCLE_IN: Final = {
    "subscriber": "prospect",
    "lead": "prospect",
    "marketingqualifiedlead": "prospect",
    "salesqualifiedlead": "prospect",
    "opportunity": "prospect",
    "customer": "customer",
    "evangelist": "vip",
    "other": "other",
}
LIFECYCLE_OUT: Final = {"prospect": "lead", "customer": "customer", "vip": "evangelist", "other": "other"}


def lifecycle_in(value: Any) -> str | None:
    return LIFECYCLE_IN.get(str(value).strip().lower())


def lifecycle_out(value: Any) -> str | None:
    return LIFECYCLE_OUT.get(str(value))


def consent_in(value: Any) -> Consent:
    return Consent.UNSUBSCRIBED if str(value).strip().lower() == "true" else Consent.UNKNOWN


def consent_out(value: Any) -> str | None:
    """``"true"`` asks the adapter to unsubscribe; anything else writes nothing (never a resubscribe)."""
    return "true" if Consent(value) in (Consent.UNSUBSCRIBED, Consent.CLEANED) else None


def tags_in(value: Any) -> frozenset[str]:
    return frozenset(t.strip() for t in str(value).split(TAG_SEPARATOR) if t.strip())


def tags_out(tags: Iterable[str]) -> str:
    return TAG_SEPARATOR.join(sorted(tags))


TABLE: Final = ProviderTable(
    provider_type="hubspot",
    fields=(
        FieldMapping(canonical="email", provider="properties.email", required=True),
        FieldMapping(canonical="first_name", provider="properties.firstname"),
        FieldMapping(canonical="last_name", provider="properties.lastname"),
        FieldMapping(canonical="phone", provider="properties.phone"),
        FieldMapping(canonical="company", provider="properties.company"),
        FieldMapping(canonical="job_title", provider="properties.jobtitle"),
        FieldMapping(canonical="country", provider="properties.country"),
        FieldMapping(canonical="region", provider="properties.state"),
        FieldMapping(canonical="city", provider="properties.city"),
        FieldMapping(canonical="industry", provider="properties.industry"),
        FieldMapping(
            canonical="lifecycle", provider="properties.lifecyclestage", inbound=lifecycle_in, outbound=lifecycle_out
        ),
        FieldMapping(canonical="tags", provider=f"properties.{TAGS_PROPERTY}", inbound=tags_in, outbound=tags_out),
        FieldMapping(
            canonical="consent", provider="properties.hs_email_optout", inbound=consent_in, outbound=consent_out
        ),
    ),
    resubscribes=False,  # v3 never resubscribes, and crmsync sends HubSpot opt-outs only
)
