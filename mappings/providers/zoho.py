"""Zoho CRM's table: v8 Contacts API names (``First_Name``, ``Mailing_City``, ``Email_Opt_Out``, ``Tag``).

Paths are the keys of a record from ``GET /crm/v8/Contacts`` as the Zoho adapter puts it in
``ProviderRecord.data``: https://github.com/zoho/zohocrm-python-sdk-8.0 (record/field.py). Contacts have
no standard industry or lifecycle field; map them to custom fields (``Industry__c``) in
``[mapping.<name>.fields]``. The company of a contact is its account lookup, ``Account_Name.name``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from mappings.contact import OPT_OUT_AT, Consent
from mappings.fieldmap import FieldMapping, ProviderTable


def consent_in(opted_out: Any) -> Consent:
    """``Email_Opt_Out`` is Zoho's only consent signal: true is an opt-out; false says nothing of opt-in."""
    if opted_out is True or str(opted_out).strip().lower() == "true":
        return Consent.UNSUBSCRIBED
    return Consent.UNKNOWN


def consent_out(consent: Any) -> bool:
    """Unsubscribed and cleaned both become ``Email_Opt_Out: true`` (providers/zoho.md, pitfall 7)."""
    return str(consent) in (Consent.UNSUBSCRIBED, Consent.CLEANED)


def tags_in(tags: Any) -> frozenset[str]:
    """``Tag`` is ``[{"name": "vip", "id": "..."}]``; names are what other providers share."""
    if not isinstance(tags, Iterable) or isinstance(tags, str | bytes):
        return frozenset()
    return frozenset(str(t["name"]) for t in tags if isinstance(t, dict) and t.get("name"))


def tags_out(tags: Iterable[str]) -> list[dict[str, str]]:
    return [{"name": name} for name in sorted(tags)]


TABLE: Final = ProviderTable(
    provider_type="zoho",
    fields=(
        FieldMapping(canonical="email", provider="Email", required=True),
        FieldMapping(canonical="first_name", provider="First_Name"),
        FieldMapping(canonical="last_name", provider="Last_Name"),
        FieldMapping(canonical="phone", provider="Phone"),
        FieldMapping(canonical="company", provider="Account_Name.name"),
        FieldMapping(canonical="job_title", provider="Title"),
        FieldMapping(canonical="country", provider="Mailing_Country"),
        FieldMapping(canonical="region", provider="Mailing_State"),
        FieldMapping(canonical="city", provider="Mailing_City"),
        FieldMapping(canonical="tags", provider="Tag", inbound=tags_in, outbound=tags_out),
        FieldMapping(canonical="consent", provider="Email_Opt_Out", inbound=consent_in, outbound=consent_out),
        # when the opt-out happened: Modified_Time moves with any later edit, which would date it anew
        FieldMapping(canonical=OPT_OUT_AT, provider="Unsubscribed_Time", read_only=True),
    ),
    resubscribes=False,  # the adapter never clears Email_Opt_Out (providers/zoho.md, pitfall 7)
)
