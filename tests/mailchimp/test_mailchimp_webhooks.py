"""Mailchimp webhook deliveries: URL secret or signature, checked in constant time; form bodies parsed."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time

import pytest
import requests

from adapters.base import SupportsWebhooks
from adapters.errors import WebhookRejected
from adapters.mailchimp import MailchimpAdapter
from adapters.mailchimp._wire import split_hint, subscriber_hash
from adapters.mailchimp.emulator import MailchimpEmulator
from adapters.secret import Secret

HOOK = "https://crm.example.com/webhooks/mailchimp"


def make(emulator: MailchimpEmulator, secret: str | None = None) -> MailchimpAdapter:
    return MailchimpAdapter(
        api_key=Secret(emulator.api_key),
        list_id=emulator.list_id,
        base_url=emulator.api_url,
        webhook_secret=Secret(secret or emulator.webhook_secret),
    )


def test_url_secret_is_checked(mailchimp_emulator):
    mailchimp_emulator.seed(1)
    adapter = make(mailchimp_emulator)
    assert isinstance(adapter, SupportsWebhooks)
    query, headers, body = mailchimp_emulator.webhook_delivery("profile", "contact0@example.com")
    adapter.verify_webhook(method="POST", url=f"{HOOK}?{query}", headers=headers, body=body)
    for url in (HOOK, f"{HOOK}?secret=wrong", f"{HOOK}?other={mailchimp_emulator.webhook_secret}"):
        with pytest.raises(WebhookRejected) as err:
            adapter.verify_webhook(method="POST", url=url, headers=headers, body=body)
        assert mailchimp_emulator.webhook_secret not in str(err.value)


def test_get_validates_the_url_without_proof(mailchimp_emulator):
    make(mailchimp_emulator).verify_webhook(method="GET", url=HOOK, headers={}, body=b"")


def test_without_a_configured_secret_every_post_is_rejected(mailchimp_emulator):
    adapter = MailchimpAdapter(api_key=Secret(mailchimp_emulator.api_key), list_id="x", base_url=mailchimp_emulator.url)
    with pytest.raises(WebhookRejected):
        adapter.verify_webhook(method="POST", url=f"{HOOK}?secret=", headers={}, body=b"type=profile")


def test_signature_header_is_verified(mailchimp_emulator):
    mailchimp_emulator.seed(1)
    adapter = make(mailchimp_emulator, secret="signing-secret")
    _, headers, body = mailchimp_emulator.webhook_delivery(
        "subscribe", "contact0@example.com", secret_in_url=False, signing_secret="signing-secret"
    )
    adapter.verify_webhook(method="POST", url=HOOK, headers=headers, body=body)
    with pytest.raises(WebhookRejected):
        adapter.verify_webhook(method="POST", url=HOOK, headers=headers, body=body + b"&x=1")
    stale_t = int(time.time()) - 600
    mac = hmac.new(b"signing-secret", f"{stale_t}.".encode() + body, hashlib.sha256).hexdigest()
    with pytest.raises(WebhookRejected, match="stale"):
        adapter.verify_webhook(
            method="POST", url=HOOK, headers={"X-Mailchimp-Signature": f"t={stale_t},v1={mac}"}, body=body
        )
    # a webhook with signing on, authenticated by the URL secret crmsync chose: the URL secret suffices
    url_adapter = make(mailchimp_emulator)
    url_adapter.verify_webhook(
        method="POST", url=f"{HOOK}?secret={mailchimp_emulator.webhook_secret}", headers=headers, body=body
    )
    with pytest.raises(WebhookRejected):  # neither a right URL secret nor a right signature
        url_adapter.verify_webhook(method="POST", url=f"{HOOK}?secret=nope", headers=headers, body=body)


@pytest.mark.parametrize(
    ("event", "extra", "kind"),
    [
        ("subscribe", {}, "created"),
        ("profile", {}, "updated"),
        ("unsubscribe", {"data[action]": "unsub", "data[reason]": "manual"}, "unsubscribed"),
        ("unsubscribe", {"data[action]": "delete"}, "deleted"),
        ("cleaned", {"data[reason]": "hard"}, "cleaned"),
    ],
)
def test_each_event_type_parses(mailchimp_emulator, event, extra, kind):
    mailchimp_emulator.seed(1)
    adapter = make(mailchimp_emulator)
    fired = dt.datetime(2026, 3, 1, 10, 0, 5, tzinfo=dt.UTC)
    _, headers, body = mailchimp_emulator.webhook_delivery(event, "Contact0@Example.com", fired_at=fired, extra=extra)
    [parsed] = adapter.parse_webhook(headers=headers, body=body)
    assert parsed.kind == kind and parsed.email == "contact0@example.com"
    assert parsed.remote_id == subscriber_hash("contact0@example.com") and parsed.occurred_at == fired
    assert "contact0" not in parsed.event_id
    again = adapter.parse_webhook(headers=headers, body=body)
    assert again[0].event_id == parsed.event_id  # a redelivery dedupes on (type, id, fired_at)
    if event == "profile":
        assert parsed.payload["merges"]["FNAME"] == "Ana"


def test_upemail_names_the_new_address_and_campaigns_or_other_lists_yield_nothing(mailchimp_emulator):
    adapter = make(mailchimp_emulator)
    _, headers, body = mailchimp_emulator.webhook_delivery(
        "upemail", "new@example.com", extra={"old_email": "old@example.com"}
    )
    [event] = adapter.parse_webhook(headers=headers, body=body)
    assert event.kind == "email_changed" and event.remote_id is not None
    # the hint names the new hash, then the old one (for a link still kept by it); hashes, never an address
    assert split_hint(event.remote_id) == (subscriber_hash("new@example.com"), subscriber_hash("old@example.com"))
    assert "@" not in event.remote_id
    assert event.payload["old_email"] == "old@example.com"
    assert (
        adapter.parse_webhook(headers={}, body=b"type=campaign&data[list_id]=" + mailchimp_emulator.list_id.encode())
        == []
    )
    _, _, other = mailchimp_emulator.webhook_delivery("profile", "x@example.com", extra={"data[list_id]": "other"})
    assert adapter.parse_webhook(headers={}, body=other) == []


def test_a_webhook_without_the_api_source_hears_people_not_crmsync(mailchimp_emulator):
    """The README's recipe: sources.api false, so crmsync's own writes are not echoed back to it."""
    from adapters._emulator import EmulatorServer, Request, Response
    from adapters.base import WriteRequest

    received: list[tuple[str, dict, bytes]] = []
    receiver = EmulatorServer()

    def record(req: Request) -> Response:
        query = "&".join(f"{k}={v[0]}" for k, v in req.query.items())
        received.append((f"{receiver.url}{req.path}?{query}", dict(req.headers), req.body))
        return Response.empty(200)

    receiver.add_route("POST", r"/webhooks/mailchimp", record)
    with receiver:
        created = requests.post(
            f"{mailchimp_emulator.api_url}/lists/{mailchimp_emulator.list_id}/webhooks",
            auth=("crmsync", mailchimp_emulator.api_key),
            json={
                "url": f"{receiver.url}/webhooks/mailchimp?secret=s3cret",
                "events": {
                    "subscribe": True,
                    "unsubscribe": True,
                    "profile": True,
                    "cleaned": True,
                    "upemail": True,
                    "campaign": False,
                },
                "sources": {"user": True, "admin": True, "api": False},
            },
            timeout=5,
        ).json()
        adapter = make(mailchimp_emulator, secret=created["signing_secret"])
        results = adapter.write_contacts(
            [
                WriteRequest(
                    ref="1", remote_id=None, email="ana@example.com", fields={"email_address": "ana@example.com"}
                )
            ]
        )
        assert results[0].ok and received == []  # crmsync's own write: no echo
        mailchimp_emulator.unsubscribe("ana@example.com")  # the person clicks "unsubscribe"
    [(url, headers, body)] = received
    adapter.verify_webhook(method="POST", url=url, headers=headers, body=body)
    [event] = adapter.parse_webhook(headers=headers, body=body)
    assert event.kind == "unsubscribed" and event.email == "ana@example.com"
