"""GetResponse's table: contact JSON from ``GET /v3/contacts/{id}`` plus three keys the adapter adds.

GetResponse has one ``name``; the adapter splits it at the first space into ``nameParts.first`` /
``nameParts.last`` and joins them back on writes. Custom field values arrive as
``customFieldValues: [{"name": "company", "value": ["Acme"]}]`` (arrays of strings); the adapter also
gives them as ``customFields.<name>`` (several values joined with ", ") and writes ``customFields`` back by
name (providers/getresponse.md "Key request / response shapes"). ``company``, ``phone``, ``city``, ``state``
and ``country`` are GetResponse's predefined fields; ``job_title``, ``industry`` and ``lifecycle`` must be
created in the account (a value for a field the account lacks is not written). Any other custom field
maps through ``[mapping.<name>.fields]`` (``custom.tier = "customFields.tier"``).

Consent: the adapter sets ``status`` (``subscribed`` for listed contacts, ``unsubscribed`` for those its
reconciliation or a webhook found opted out). Only the opt-out is read as consent: a listed contact may be
one crmsync created itself, so being listed is no evidence of an opt-in (it reads as unknown). Writing
``unsubscribed`` removes the contact from the campaign and never creates one; ``None`` (unknown, pending)
lets the campaign's own opt-in setting decide.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from mappings.contact import Consent
from mappings.fieldmap import FieldMapping, ProviderTable
from mappings.providers._shared import consent_word, sorted_tags, tag_names

CONSENT_IN: Final = {
    # Being listed is all GetResponse says, and crmsync's own creates are listed too: read as "subscribed",
    # every contact crmsync created here would come back as an opt-in and spread to every provider.
    "subscribed": Consent.UNKNOWN,
    "unsubscribed": Consent.UNSUBSCRIBED,
    "removed": Consent.UNKNOWN,  # taken off the list by a user: says nothing about marketing consent
}
CONSENT_OUT: Final = {
    Consent.SUBSCRIBED: "subscribed",
    Consent.UNSUBSCRIBED: "unsubscribed",
    Consent.CLEANED: "unsubscribed",  # a bounced address must not be mailed from here either
}


def consent_in(status: Any) -> Consent:
    return CONSENT_IN.get(str(status).strip().lower(), Consent.UNKNOWN)


def consent_out(consent: Any) -> str | None:
    """``subscribed`` / ``unsubscribed``, or None (pending, unknown): the campaign's opt-in decides."""
    return consent_word(consent, CONSENT_OUT)


def tags_in(tags: Any) -> frozenset[str]:
    """Contacts carry ``tags: [{"tagId": "aB3", "name": "vip"}]``; plain names are accepted too."""
    return tag_names(tags)


def tags_out(tags: Iterable[str]) -> list[str]:
    """Tag names; the adapter turns them into ``tagId``s (creating missing tags)."""
    return sorted_tags(tags)


TABLE: Final = ProviderTable(
    provider_type="getresponse",
    fields=(
        FieldMapping(canonical="email", provider="email", required=True),
        FieldMapping(canonical="first_name", provider="nameParts.first"),
        FieldMapping(canonical="last_name", provider="nameParts.last"),
        FieldMapping(canonical="phone", provider="customFields.phone"),
        FieldMapping(canonical="company", provider="customFields.company"),
        FieldMapping(canonical="job_title", provider="customFields.job_title"),
        FieldMapping(canonical="industry", provider="customFields.industry"),
        FieldMapping(canonical="lifecycle", provider="customFields.lifecycle"),
        FieldMapping(canonical="city", provider="customFields.city"),
        FieldMapping(canonical="region", provider="customFields.state"),
        FieldMapping(canonical="country", provider="customFields.country"),
        FieldMapping(canonical="tags", provider="tags", inbound=tags_in, outbound=tags_out),
        FieldMapping(canonical="consent", provider="status", inbound=consent_in, outbound=consent_out),
    ),
)
