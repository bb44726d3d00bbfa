"""HubSpot's mapping table through the shared mapper: record JSON <-> canonical fields."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mappings.contact import Consent
from mappings.mapper import build_mapping

MAPPING = build_mapping("hubspot")


def record(**props):
    return {"id": "101", "properties": {"email": "ana@example.com", **props}}


def test_properties_read_into_canonical_fields():
    got = MAPPING.to_canonical(record(firstname="Ana", lastname="Berg", jobtitle="CTO", state="Texas",
                                      lifecyclestage="salesqualifiedlead", crmsync_tags="vip;newsletter",
                                      hs_email_optout="true"))
    assert got["first_name"] == "Ana" and got["job_title"] == "CTO" and got["region"] == "Texas"
    assert got["lifecycle"] == "prospect"
    assert got["tags"] == frozenset({"vip", "newsletter"})
    assert got["consent"] is Consent.UNSUBSCRIBED


def test_not_opted_out_is_not_a_subscription():
    assert MAPPING.to_canonical(record(hs_email_optout="false"))["consent"] is Consent.UNKNOWN


def test_writes_never_ask_for_a_resubscribe():
    assert MAPPING.to_provider({"email": "ana@example.com", "consent": Consent.SUBSCRIBED})["properties"].get(
        "hs_email_optout") is None
    assert MAPPING.to_provider({"email": "ana@example.com", "consent": Consent.CLEANED})["properties"][
        "hs_email_optout"] == "true"


def test_lifecycle_writes_hubspot_stages():
    out = MAPPING.to_provider({"email": "a@example.com", "lifecycle": "vip"})
    assert out["properties"]["lifecyclestage"] == "evangelist"
    assert MAPPING.to_canonical({"properties": {"email": "a@example.com", "lifecyclestage": "evangelist"}})[
        "lifecycle"] == "vip"


tag = st.text(alphabet=st.characters(blacklist_characters=";", blacklist_categories=("Cs", "Zs", "Cc")),
              min_size=1, max_size=12)


@given(tags=st.frozensets(tag, max_size=6), first=st.text(min_size=1, max_size=20).map(str.strip).filter(bool))
def test_round_trip(tags, first):
    fields = {"email": "ana@example.com", "first_name": first, "tags": tags}
    back = MAPPING.to_canonical(MAPPING.to_provider(fields))
    assert back["tags"] == tags
    assert back["first_name"] == first
