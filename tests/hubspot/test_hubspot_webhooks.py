"""HubSpot webhook signatures (v3, v1, v2) and event parsing, checked against the SDK's own vectors."""

from __future__ import annotations

import json
import time

import pytest
from hubspot.utils.signature import Signature
from hypothesis import given
from hypothesis import strategies as st

from adapters.errors import WebhookRejected
from adapters.hubspot import HubSpotAdapter
from adapters.hubspot.webhooks import parse, sign_v1, sign_v2, sign_v3, verify

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
BODY = b"{'example_field':'example_value'}"
URL = "https://www.example.com/webhook_uri"


def test_signatures_match_the_sdk_test_vectors():
    # hubspot-api-python tests/spec/utils/test_signature.py
    assert sign_v1(SECRET, BODY) == "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"
    assert sign_v2(SECRET, method="POST", uri=URL, body=BODY) == (
        "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383")
    assert sign_v3(SECRET, method="POST", uri=URL, body=BODY, timestamp="15000000") == (
        "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=")


def v3_headers(body: bytes, *, url: str = URL, ts_ms: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = str(ts_ms if ts_ms is not None else int(time.time() * 1000))
    return {"X-HubSpot-Signature-v3": sign_v3(secret, method="POST", uri=url, body=body, timestamp=ts),
            "X-HubSpot-Request-Timestamp": ts}


def test_v3_accepts_a_fresh_signature_and_the_sdk_agrees():
    ts = int(time.time() * 1000)
    headers = v3_headers(BODY, ts_ms=ts)
    verify(SECRET, method="POST", url=URL, headers=headers, body=BODY)
    assert Signature.is_valid(headers["X-HubSpot-Signature-v3"], SECRET, BODY.decode(), http_uri=URL,
                              signature_version="v3", timestamp=ts)


@pytest.mark.parametrize("skew_ms", [-301_000, 301_000])
def test_v3_rejects_old_and_future_timestamps(skew_ms):
    headers = v3_headers(BODY, ts_ms=int(time.time() * 1000) + skew_ms)
    with pytest.raises(WebhookRejected):
        verify(SECRET, method="POST", url=URL, headers=headers, body=BODY)


def test_v3_rejects_a_changed_body_url_or_secret():
    headers = v3_headers(BODY)
    for body, url, secret in ((BODY + b" ", URL, SECRET), (BODY, URL + "?x=1", SECRET), (BODY, URL, "other")):
        with pytest.raises(WebhookRejected):
            verify(secret, method="POST", url=url, headers=headers, body=body)


def test_v3_decodes_the_uri_escapes_hubspot_decodes():
    raw_url = "https://hooks.example.com/webhooks/hubspot?next=%2Fa%3Ab%40c"
    decoded = "https://hooks.example.com/webhooks/hubspot?next=/a:b@c"
    headers = v3_headers(BODY, url=decoded)
    verify(SECRET, method="POST", url=raw_url, headers=headers, body=BODY)


def test_v3_signed_over_the_uri_as_given_is_accepted_too():
    # HubSpot's own SDK helper signs the URI without decoding its escapes; the guide decodes them first
    raw_url = "https://hooks.example.com/webhooks/hubspot?next=%2Fa%3Ab%40c"
    ts = str(int(time.time() * 1000))
    signature = Signature.get_signature(SECRET, BODY.decode(), "v3", raw_url, "POST", ts)
    headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": ts}
    verify(SECRET, method="POST", url=raw_url, headers=headers, body=BODY)
    with pytest.raises(WebhookRejected):  # still bound to the secret, the body and the URI
        verify(SECRET, method="POST", url=raw_url.replace("%40", "%41"), headers=headers, body=BODY)


def test_v1_and_v2_match_the_guides_examples():
    # https://developers.hubspot.com/docs/faq/v1-request-validation and .../v2-request-validation
    body = (b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":'
            b'"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]')
    assert sign_v1(SECRET, body) == "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
    assert sign_v2(SECRET, method="GET", uri="https://www.example.com/webhook_uri", body=b"") == (
        "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e")


def test_v1_and_v2_for_older_apps():
    verify(SECRET, method="POST", url=URL, body=BODY,
           headers={"X-HubSpot-Signature": sign_v1(SECRET, BODY), "X-HubSpot-Signature-Version": "v1"})
    verify(SECRET, method="POST", url=URL, body=BODY,
           headers={"X-HubSpot-Signature": sign_v2(SECRET, method="POST", uri=URL, body=BODY),
                    "X-HubSpot-Signature-Version": "v2"})
    with pytest.raises(WebhookRejected):
        verify(SECRET, method="POST", url=URL, body=BODY,
               headers={"X-HubSpot-Signature": sign_v1(SECRET, BODY), "X-HubSpot-Signature-Version": "v2"})


def test_no_signature_or_no_secret_is_rejected():
    with pytest.raises(WebhookRejected):
        verify(SECRET, method="POST", url=URL, headers={}, body=BODY)
    with pytest.raises(WebhookRejected):
        verify(None, method="POST", url=URL, headers=v3_headers(BODY), body=BODY)


@given(body=st.binary(max_size=200), flip=st.integers(min_value=0, max_value=199))
def test_any_changed_byte_breaks_v3(body, flip):
    headers = v3_headers(body)
    verify(SECRET, method="POST", url=URL, headers=headers, body=body)
    if body:
        i = flip % len(body)
        changed = body[:i] + bytes([body[i] ^ 1]) + body[i + 1:]
        with pytest.raises(WebhookRejected):
            verify(SECRET, method="POST", url=URL, headers=headers, body=changed)


EVENTS = [
    {"eventId": 3, "subscriptionId": 9, "portalId": 1, "occurredAt": 1714560000300, "subscriptionType": "contact.deletion",
     "objectId": 7, "attemptNumber": 0},
    {"eventId": 1, "subscriptionId": 9, "portalId": 1, "occurredAt": 1714560000100, "subscriptionType": "contact.creation",
     "objectId": 5101, "changeFlag": "NEW"},
    {"eventId": 2, "subscriptionId": 9, "portalId": 1, "occurredAt": 1714560000200,
     "subscriptionType": "contact.propertyChange", "objectId": 5101, "propertyName": "email",
     "propertyValue": "ana@example.com", "changeSource": "CRM"},
    {"eventId": 2, "subscriptionId": 9, "portalId": 1, "occurredAt": 1714560000250,
     "eventType": "contact.propertyChange", "objectId": 5101, "propertyName": "firstname", "propertyValue": "Ana"},
    {"eventId": 4, "subscriptionId": 9, "portalId": 1, "occurredAt": 1714560000400, "subscriptionType": "contact.merge",
     "objectId": 11, "primaryObjectId": 11, "mergedObjectIds": [12], "newObjectId": 13},
    {"eventId": 5, "subscriptionId": 9, "portalId": 1, "occurredAt": 1714560000500,
     "subscriptionType": "contact.privacyDeletion", "objectId": 14},
    {"eventId": 6, "subscriptionId": 9, "portalId": 1, "occurredAt": 1714560000600,
     "subscriptionType": "contact.propertyChange", "objectId": 15, "propertyName": "hs_email_optout",
     "propertyValue": "true"},
    {"eventId": 7, "subscriptionId": 9, "portalId": 1, "occurredAt": 1714560000700,
     "subscriptionType": "deal.creation", "objectId": 99},
]


def test_events_are_parsed_sorted_and_keyed():
    events = parse(json.dumps(EVENTS).encode())
    assert [e.kind for e in events] == ["created", "email_changed", "updated", "deleted", "merged", "deleted",
                                        "unsubscribed"]
    assert events[1].email == "ana@example.com" and events[1].remote_id == "5101"
    assert events[4].remote_id == "13" and events[4].payload["mergedObjectIds"] == [12]
    assert len({e.event_id for e in events}) == len(events)  # eventId 2 twice, still distinct keys
    assert events[0].occurred_at.year == 2024 and events[0].occurred_at.tzinfo is not None
    assert parse(json.dumps(EVENTS).encode())[0].event_id == events[0].event_id  # stable across deliveries


GENERIC = [  # generic subscriptions: object.<kind> with objectTypeId (contacts are 0-1)
    {"eventId": 20, "subscriptionId": 30, "portalId": 1, "occurredAt": 1714560001000, "subscriptionType": "object.creation",
     "objectTypeId": "0-1", "objectId": 5201, "changeFlag": "CREATED"},
    {"eventId": 21, "subscriptionId": 31, "portalId": 1, "occurredAt": 1714560001100,
     "subscriptionType": "object.propertyChange", "objectTypeId": "0-1", "objectId": 5201, "propertyName": "email",
     "propertyValue": "bo@example.com"},
    {"eventId": 22, "subscriptionId": 32, "portalId": 1, "occurredAt": 1714560001200, "subscriptionType": "object.merge",
     "objectTypeId": "0-1", "objectId": 21, "primaryObjectId": 21, "mergedObjectIds": [22], "newObjectId": 23},
    {"eventId": 23, "subscriptionId": 33, "portalId": 1, "occurredAt": 1714560001300,
     "subscriptionType": "object.deletion", "objectTypeId": "0-1", "objectId": 24},
    {"eventId": 24, "subscriptionId": 34, "portalId": 1, "occurredAt": 1714560001400,
     "subscriptionType": "object.propertyChange", "objectTypeId": "0-2", "objectId": 77, "propertyName": "name",
     "propertyValue": "Acme"},  # a company: not a contact
]


def test_generic_object_events_of_contacts_are_parsed_and_other_objects_left_out():
    events = parse(json.dumps(GENERIC).encode())
    assert [(e.kind, e.remote_id) for e in events] == [
        ("created", "5201"), ("email_changed", "5201"), ("merged", "23"), ("deleted", "24")]
    assert events[1].email == "bo@example.com"


def test_the_adapter_verifies_with_its_client_secret(hubspot_emulator):
    adapter = HubSpotAdapter(access_token="t", base_url=hubspot_emulator.url, client_secret=SECRET)
    body = json.dumps(EVENTS[:1]).encode()
    adapter.verify_webhook(method="POST", url=URL, headers=v3_headers(body), body=body)
    with pytest.raises(WebhookRejected):
        adapter.verify_webhook(method="POST", url=URL, headers=v3_headers(body, secret="nope"), body=body)
    assert [e.kind for e in adapter.parse_webhook(headers={}, body=body)] == ["deleted"]
    assert SECRET not in repr(adapter)


def test_not_json_is_rejected():
    with pytest.raises(WebhookRejected):
        parse(b"<html>")


def test_user_actions_in_the_emulator_arrive_as_signed_events(hubspot_emulator, make_hubspot_adapter):
    adapter = make_hubspot_adapter()
    a, b, c = hubspot_emulator.seed(3)
    new = hubspot_emulator.create(email="born@example.com", firstname="Born")
    hubspot_emulator.edit(a, firstname="Changed")
    hubspot_emulator.unsubscribe("contact1@example.com")
    survivor = hubspot_emulator.merge(b, c)
    hubspot_emulator.delete(a)
    url = "https://hooks.example.com/webhooks/hubspot"
    headers, body = hubspot_emulator.webhook_delivery(url=url)
    adapter.verify_webhook(method="POST", url=url, headers=headers, body=body)
    events = adapter.parse_webhook(headers=headers, body=body)
    assert [e.kind for e in events] == ["created", "updated", "unsubscribed", "merged", "deleted", "deleted"]
    assert events[0].remote_id == new and events[3].remote_id == survivor
    records = {r.remote_id: r for r in adapter.fetch_contacts([e.remote_id for e in events])}
    assert records[a].deleted and not records[survivor].deleted and not records[new].deleted
    assert hubspot_emulator.take_events() == []  # taken once
