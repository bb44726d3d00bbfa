"""The ActiveCampaign mapping table through the shared mapper: contacts in, adapter shape out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mappings.contact import Consent
from mappings.mapper import build_mapping
from mappings.providers.activecampaign import CONSENT_IN, consent_in, consent_out

CONTACT = {
    "id": "42",
    "email": "Ana@Example.com",
    "firstName": "Ana",
    "lastName": "",
    "phone": "+44 20 7946 0018",
    "udate": "2026-03-01T04:00:00-05:00",
    "listStatus": "2",
    "tags": ["vip", "Newsletter"],
    "fields": {"COMPANY": "Acme Ltd", "TIER": "Gold"},
}


def test_contact_to_canonical():
    fields = build_mapping("activecampaign").to_canonical(CONTACT)
    assert fields["email"] == "ana@example.com"
    assert fields["first_name"] == "Ana" and fields["last_name"] is None
    assert fields["phone"] == "+442079460018"
    assert fields["company"] == "Acme Ltd" and "job_title" not in fields
    assert fields["tags"] == frozenset({"vip", "Newsletter"})
    assert fields["consent"] is Consent.UNSUBSCRIBED


def test_not_on_the_list_says_nothing_about_consent():
    fields = build_mapping("activecampaign").to_canonical({**CONTACT, "listStatus": None})
    assert fields["consent"] is Consent.UNKNOWN
    assert consent_in("91") is Consent.UNKNOWN  # removed from the list, not unsubscribed


def test_canonical_to_provider_shape():
    out = build_mapping("activecampaign").to_provider(
        {
            "email": "ana@example.com",
            "first_name": "Ana",
            "company": "Acme",
            "tags": frozenset({"b", "a"}),
            "consent": Consent.CLEANED,
        }
    )
    assert out == {
        "email": "ana@example.com",
        "firstName": "Ana",
        "fields": {"COMPANY": "Acme"},
        "tags": ["a", "b"],
        "listStatus": "2",
    }


def test_custom_fields_map_by_personalisation_tag():
    mapping = build_mapping("activecampaign", field_overrides={"custom.tier": "fields.TIER"})
    assert mapping.to_canonical(CONTACT)["custom.tier"] == "Gold"
    assert mapping.to_provider({"email": "a@example.com", "custom.tier": "Silver"})["fields"] == {"TIER": "Silver"}


@given(st.sampled_from(sorted(CONSENT_IN)))
def test_consent_round_trips_or_stays_opted_out(status):
    consent = consent_in(status)
    back = consent_out(consent)
    if consent in (Consent.UNSUBSCRIBED, Consent.CLEANED):
        assert back == "2"  # an opt-out never goes back out as anything but an opt-out
    elif consent is Consent.SUBSCRIBED:
        assert back == "1"
    else:
        assert back is None


@given(st.sampled_from(list(Consent)))
def test_consent_out_never_subscribes_an_opted_out_person(consent):
    assert (consent_out(consent) == "1") == (consent is Consent.SUBSCRIBED)
