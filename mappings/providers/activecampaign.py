"""ActiveCampaign's table: contact JSON (``firstName``) plus the list status, tag names and field values.

Paths are the keys of a contact from ``GET /api/3/contacts`` as the ActiveCampaign adapter puts it in
``ProviderRecord.data`` (/work/shared/providers/activecampaign.md): the contact's own keys (``email``,
``firstName``, ``lastName``, ``phone``), and three the adapter adds from the sideloaded rows:
``listStatus`` (the configured list's ``contactList.status`` as text, or None when not on the list),
``tags`` (tag names) and ``fields`` (custom field values keyed by the field's personalisation tag,
``fields.COMPANY``). Any other custom field maps through ``[mapping.<name>.fields]``
(``custom.tier = "fields.TIER"``); a tag the account lacks is dropped on write.

Consent: opt-out is per list. Status 1 is subscribed, 2 unsubscribed; 0 (unconfirmed) reads as pending
and 3 (bounced) as cleaned (both unconfirmed codes). Unsubscribed and cleaned go out as 2, subscribed as
1, anything else as None (the list is left alone). The adapter never turns a 2 into a 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from mappings.contact import Consent
from mappings.fieldmap import FieldMapping, ProviderTable
from mappings.providers._shared import consent_word, sorted_tags, tag_names

SUBSCRIBED: Final = "1"
UNSUBSCRIBED: Final = "2"
CONSENT_IN: Final = {
    "1": Consent.SUBSCRIBED,
    "2": Consent.UNSUBSCRIBED,
    "0": Consent.PENDING,
    "3": Consent.CLEANED,
}
CONSENT_OUT: Final = {
    Consent.SUBSCRIBED: SUBSCRIBED,
    Consent.UNSUBSCRIBED: UNSUBSCRIBED,
    Consent.CLEANED: UNSUBSCRIBED,
}


def consent_in(status: Any) -> Consent:
    """A list status (``"1"``, ``2``...) as canonical consent; 91 (removed) and unknown codes say nothing."""
    return CONSENT_IN.get(str(status).strip(), Consent.UNKNOWN)


def consent_out(consent: Any) -> str | None:
    return consent_word(consent, CONSENT_OUT)


def tags_in(tags: Any) -> frozenset[str]:
    """Tag names; ``{"tag": "vip"}`` rows (as ``/tags`` shows them) are accepted too."""
    return tag_names(tags, key="tag")


def tags_out(tags: Iterable[str]) -> list[str]:
    return sorted_tags(tags)


TABLE: Final = ProviderTable(
    provider_type="activecampaign",
    fields=(
        FieldMapping(canonical="email", provider="email", required=True),
        FieldMapping(canonical="first_name", provider="firstName"),
        FieldMapping(canonical="last_name", provider="lastName"),
        FieldMapping(canonical="phone", provider="phone"),
        FieldMapping(canonical="company", provider="fields.COMPANY"),
        FieldMapping(canonical="job_title", provider="fields.JOB_TITLE"),
        FieldMapping(canonical="tags", provider="tags", inbound=tags_in, outbound=tags_out),
        FieldMapping(canonical="consent", provider="listStatus", inbound=consent_in, outbound=consent_out),
    ),
)
