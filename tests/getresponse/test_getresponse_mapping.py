"""The GetResponse mapping table through the shared mapper: contacts in, the adapter's write shape out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mappings.contact import Consent
from mappings.mapper import build_mapping
from mappings.providers.getresponse import consent_in, consent_out

CONTACT = {
    "contactId": "pV3r7",
    "email": "Ana@Example.com",
    "name": "Ana Maria Silva",
    "nameParts": {"first": "Ana", "last": "Maria Silva"},
    "campaign": {"campaignId": "V3xQ"},
    "changedOn": "2026-03-01T09:00:00+0000",
    "tags": [{"tagId": "aB3", "name": "vip"}, {"tagId": "cD4", "name": "newsletter"}],
    "customFieldValues": [{"customFieldId": "pq7", "name": "company", "value": ["Acme Ltd"]}],
    "customFields": {"company": "Acme Ltd", "phone": "+44 20 7946 0018", "state": "", "tier": "gold"},
    "status": "subscribed",
}


def test_contact_to_canonical() -> None:
    fields = build_mapping("getresponse").to_canonical(CONTACT)
    assert fields["email"] == "ana@example.com"
    assert (fields["first_name"], fields["last_name"]) == ("Ana", "Maria Silva")
    assert fields["phone"] == "+442079460018" and fields["company"] == "Acme Ltd"
    assert fields["region"] is None  # blank is known-blank
    assert "city" not in fields  # absent says nothing
    assert fields["tags"] == frozenset({"vip", "newsletter"})
    assert fields["consent"] is Consent.UNKNOWN  # listed: no evidence of an opt-in (crmsync lists people too)


def test_round_trip_to_the_write_shape() -> None:
    mapping = build_mapping("getresponse", field_overrides={"custom.tier": "customFields.tier"})
    fields = mapping.to_canonical(CONTACT)
    assert fields["custom.tier"] == "gold"
    out = mapping.to_provider(fields)
    assert out["nameParts"] == {"first": "Ana", "last": "Maria Silva"}
    assert out["customFields"]["company"] == "Acme Ltd" and out["customFields"]["tier"] == "gold"
    assert out["tags"] == ["newsletter", "vip"]
    assert out["status"] is None  # being listed reads as unknown consent: nothing to write back
    assert mapping.to_canonical({**out, "email": out["email"]})["tags"] == fields["tags"]


def test_opted_out_and_unknown_consent() -> None:
    assert consent_in("unsubscribed") is Consent.UNSUBSCRIBED
    assert consent_in("removed") is Consent.UNKNOWN
    assert consent_out(Consent.CLEANED) == "unsubscribed"
    assert consent_out(Consent.PENDING) is None and consent_out(Consent.UNKNOWN) is None


@given(st.sampled_from(list(Consent)))
def test_an_opt_out_never_goes_out_as_subscribed(consent: Consent) -> None:
    out = consent_out(consent)
    if consent in (Consent.UNSUBSCRIBED, Consent.CLEANED):
        assert out == "unsubscribed"
    else:
        assert out != "unsubscribed"
    if out == "unsubscribed":
        assert consent_out(consent_in(out)) == out  # an opt-out reads back as an opt-out
