"""The Mailchimp mapping table through the shared mapper: members in, member shape out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mappings.contact import OPT_IN_AT, Consent
from mappings.mapper import build_mapping
from mappings.providers.mailchimp import CONSENT_IN, consent_out

MEMBER = {
    "id": "cdb9d6a1dddc375a09cc83e3001598dc",
    "email_address": "Ana@Example.com",
    "status": "unsubscribed",
    "merge_fields": {
        "FNAME": "Ana",
        "LNAME": "",
        "PHONE": "+44 20 7946 0018",
        "COMPANY": "Acme Ltd",
        "ADDRESS": {"addr1": "1 High St", "addr2": "", "city": "London", "state": "", "zip": "N1", "country": "GB"},
    },
    "tags": [{"id": 1, "name": "vip"}, {"id": 2, "name": "Newsletter"}],
    "timestamp_opt": "",
    "last_changed": "2026-03-01T09:00:00+00:00",
}


def test_member_to_canonical():
    fields = build_mapping("mailchimp").to_canonical(MEMBER)
    assert fields["email"] == "ana@example.com"
    assert fields["first_name"] == "Ana" and fields["last_name"] is None
    assert fields["phone"] == "+442079460018"
    assert fields["company"] == "Acme Ltd" and fields["city"] == "London" and fields["country"] == "GB"
    assert fields["tags"] == frozenset({"vip", "Newsletter"})
    assert fields["consent"] is Consent.UNSUBSCRIBED
    assert fields[OPT_IN_AT] is None


def test_empty_address_is_absent_not_an_error():
    member = {**MEMBER, "merge_fields": {**MEMBER["merge_fields"], "ADDRESS": ""}}
    fields = build_mapping("mailchimp").to_canonical(member)
    assert "city" not in fields and "country" not in fields


def test_round_trip_writes_only_writable_fields():
    mapping = build_mapping("mailchimp", tag_overrides={"vip": "VIP"})
    out = mapping.to_provider(
        {
            "email": "ana@example.com",
            "first_name": "Ana",
            "city": "London",
            "tags": frozenset({"vip", "x"}),
            "consent": Consent.UNKNOWN,
            "phone": None,
        }
    )
    assert out == {
        "email_address": "ana@example.com",
        "merge_fields": {"FNAME": "Ana", "PHONE": None},
        "tags": ["VIP", "x"],
        "status": None,  # unknown consent: the adapter applies new_member_status
    }
    assert "city" not in mapping.carried_fields


@given(st.sampled_from(sorted(CONSENT_IN)))
def test_every_status_round_trips_or_reads_unknown(status):
    consent = build_mapping("mailchimp").to_canonical({"email_address": "a@example.com", "status": status})["consent"]
    written = consent_out(consent)
    if status in ("transactional", "archived"):
        assert consent is Consent.UNKNOWN and written is None
    else:
        assert written == status
