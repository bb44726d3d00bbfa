"""The Zoho mapping table through the shared mapper: Zoho record JSON <-> canonical fields."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mappings.contact import Consent
from mappings.mapper import build_mapping

RECORD = {
    "id": "5550000000123017",
    "Email": " Ana.Silva@Example.com ",
    "First_Name": "Ana",
    "Last_Name": "Silva",
    "Phone": "+351 21 123 4567",
    "Account_Name": {"name": "Acme", "id": "5550000000999001"},
    "Title": "CTO",
    "Mailing_Country": "Portugal",
    "Mailing_State": "Lisboa",
    "Mailing_City": "Lisbon",
    "Tag": [{"name": "vip", "id": "1"}, {"name": "newsletter", "id": "2"}],
    "Email_Opt_Out": True,
    "Modified_Time": "2024-05-01T15:26:49+05:30",
}


def test_zoho_record_to_canonical() -> None:
    fields = build_mapping("zoho").to_canonical(RECORD)
    assert fields["email"] == "ana.silva@example.com"
    assert fields["company"] == "Acme"
    assert fields["job_title"] == "CTO"
    assert fields["tags"] == frozenset({"vip", "newsletter"})
    assert fields["consent"] == Consent.UNSUBSCRIBED
    assert fields["phone"] == "+351211234567"


def test_opt_out_false_is_not_a_subscription() -> None:
    fields = build_mapping("zoho").to_canonical({**RECORD, "Email_Opt_Out": False})
    assert fields["consent"] == Consent.UNKNOWN


def test_canonical_to_zoho_shape() -> None:
    out = build_mapping("zoho").to_provider(
        {
            "email": "bo@example.com",
            "last_name": "Berg",
            "company": "Globex",
            "tags": frozenset({"b", "a"}),
            "consent": Consent.CLEANED,
        }
    )
    assert out == {
        "Email": "bo@example.com",
        "Last_Name": "Berg",
        "Account_Name": {"name": "Globex"},
        "Tag": [{"name": "a"}, {"name": "b"}],
        "Email_Opt_Out": True,
    }


@given(
    tags=st.frozensets(st.text(alphabet="abcdefghij-", min_size=1, max_size=8), max_size=5),
    consent=st.sampled_from([Consent.UNSUBSCRIBED, Consent.UNKNOWN]),
)
def test_round_trip_keeps_tags_and_opt_out(tags: frozenset[str], consent: Consent) -> None:
    mapping = build_mapping("zoho")
    raw = mapping.to_provider({"email": "c@example.com", "tags": tags, "consent": consent})
    back = mapping.to_canonical({**raw, "id": "1"})
    assert back["tags"] == tags
    assert back["consent"] == consent
