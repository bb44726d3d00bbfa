"""GetResponse webhooks and legacy callbacks: URL-secret verification and lenient parsing (hints only)."""

from __future__ import annotations

import json

import pytest

from adapters.errors import WebhookRejected
from adapters.getresponse import GetResponseAdapter
from adapters.getresponse.emulator import GetResponseEmulator
from adapters.secret import Secret

HOOK = "https://sync.example.com/hooks/getresponse"


@pytest.fixture
def adapter(gr_emulator: GetResponseEmulator) -> GetResponseAdapter:
    return GetResponseAdapter(
        api_key=Secret(gr_emulator.api_key),
        campaign_id=gr_emulator.campaign_id,
        base_url=gr_emulator.api_url,
        webhook_secret=Secret(gr_emulator.webhook_secret),
    )


def test_a_delivery_with_the_secret_is_accepted(gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter) -> None:
    (cid,) = gr_emulator.seed(1)
    query, body = gr_emulator.webhook_delivery([("contact_unsubscribed", cid)])
    adapter.verify_webhook(method="POST", url=f"{HOOK}?{query}", headers={}, body=body)
    (event,) = adapter.parse_webhook(headers={}, body=body)
    assert (event.kind, event.remote_id, event.email) == ("unsubscribed", cid, "contact0@example.com")
    assert event.event_id and event.occurred_at is not None


@pytest.mark.parametrize("query", ["", "secret=wrong", "other=gr-hook-secret-0001"])
def test_a_missing_or_wrong_secret_is_rejected(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter, query: str
) -> None:
    (cid,) = gr_emulator.seed(1)
    _, body = gr_emulator.webhook_delivery([("contact_subscribed", cid)])
    with pytest.raises(WebhookRejected) as caught:
        adapter.verify_webhook(method="POST", url=f"{HOOK}?{query}", headers={}, body=body)
    assert gr_emulator.webhook_secret not in str(caught.value)


def test_no_configured_secret_rejects_everything(gr_emulator: GetResponseEmulator) -> None:
    bare = GetResponseAdapter(api_key=Secret("k"), campaign_id=gr_emulator.campaign_id, base_url=gr_emulator.api_url)
    with pytest.raises(WebhookRejected):
        bare.verify_webhook(method="POST", url=f"{HOOK}?secret=anything", headers={}, body=b"[]")


def test_a_batch_keeps_contact_events_of_this_campaign_only(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter
) -> None:
    ids = gr_emulator.seed(3)
    _, body = gr_emulator.webhook_delivery(
        [
            ("contact_subscribed", ids[0]),
            ("message_opened", ids[0]),
            ("custom_field_value_changed", ids[1]),
            ("contact_email_changed", ids[2]),
        ]
    )
    items = json.loads(body)
    items.append({**items[0], "eventId": "other", "contact": {**items[0]["contact"], "campaign": {"campaignId": "zz"}}})
    events = adapter.parse_webhook(headers={}, body=json.dumps(items).encode())
    assert [e.kind for e in events] == ["created", "updated", "email_changed"]
    assert len({e.event_id for e in events}) == 3


def test_a_legacy_callback_is_parsed(gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter) -> None:
    body = f"action=unsubscribe&CAMPAIGN_ID={gr_emulator.campaign_id}&contact_email=Bo%40Example.com&CONTACT_ID=x1"
    (event,) = adapter.parse_webhook(headers={}, body=body.encode())
    assert (event.kind, event.email, event.remote_id) == ("unsubscribed", "bo@example.com", "x1")
    again = adapter.parse_webhook(headers={}, body=body.encode())
    assert again[0].event_id == event.event_id  # a hash: the same delivery twice is one event
    other = body.replace(gr_emulator.campaign_id, "other")
    assert adapter.parse_webhook(headers={}, body=other.encode()) == []


def test_a_body_that_is_not_json_is_rejected(adapter: GetResponseAdapter) -> None:
    with pytest.raises(WebhookRejected):
        adapter.parse_webhook(headers={}, body=b"[not json")
