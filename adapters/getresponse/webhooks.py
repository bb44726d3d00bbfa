"""GetResponse webhooks and legacy callbacks: verify by a secret in the URL, then parse (hints only).

Facts: /work/shared/providers/getresponse.md "Webhooks". Webhooks (set up in the app, not by API) POST a
JSON array of up to 100 events, with no signature: crmsync's webhook URL carries ``?secret=...``,
compared in constant time. Legacy callbacks send form fields (``action=unsubscribe&CAMPAIGN_ID=...``).
The per-event field names (``event``, ``contact.contactId``, ``contact.email``, ``contact.campaign``,
``occurredAt``, ``eventId``) are not in the fact sheet **(unconfirmed)**, so parsing is lenient and
events for other campaigns or about engagement (opens, clicks) are left out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from adapters.base import WebhookEvent
from adapters.errors import WebhookRejected
from adapters.getresponse._wire import PROVIDER, parse_time

URL_SECRET_PARAMS: Final = ("secret", "token", "key")
KINDS: Final = {
    "contact_subscribed": "created",
    "subscribe": "created",
    "contact_copied": "created",
    "contact_moved": "updated",
    "custom_field_value_changed": "updated",
    "contact_email_changed": "email_changed",
    "contact_unsubscribed": "unsubscribed",
    "unsubscribe": "unsubscribed",
    "contact_bounce_removed": "cleaned",
    "contact_rejected": "cleaned",
}


def _reject(why: str) -> WebhookRejected:
    return WebhookRejected(f"{PROVIDER} webhook rejected: {why}", provider=PROVIDER)


def verify_delivery(secret: str | None, *, url: str) -> None:
    """The URL's ``secret`` (or ``token``/``key``) must equal the configured one (constant time)."""
    if not secret:
        raise _reject("no webhook_secret configured")
    query = parse_qs(urlsplit(url).query)
    given = next((query[name][0] for name in URL_SECRET_PARAMS if query.get(name)), None)
    if given is None or not hmac.compare_digest(given.encode(), secret.encode()):
        raise _reject("missing or wrong secret")


def parse_delivery(body: bytes, *, campaign_id: str) -> list[WebhookEvent]:
    text = body.decode("utf-8", errors="replace").strip()
    if text.startswith(("[", "{")):
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise _reject("body is not JSON") from exc
        items = raw if isinstance(raw, list) else [raw]
        return [e for e in (_event(item, campaign_id) for item in items if isinstance(item, dict)) if e is not None]
    fields = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
    event = _callback(fields, campaign_id)
    return [event] if event is not None else []


def _event(item: Mapping[str, Any], campaign_id: str) -> WebhookEvent | None:
    name = str(item.get("event") or item.get("type") or "").strip().lower().replace(" ", "_")
    kind = KINDS.get(name)
    contact = _object(item.get("contact"))
    campaign = _object(contact.get("campaign"))
    if kind is None or (campaign.get("campaignId") and str(campaign["campaignId"]) != campaign_id):
        return None
    occurred = item.get("occurredAt") or item.get("occurred_at") or item.get("timestamp")
    try:
        when = parse_time(str(occurred)) if occurred else None
    except ValueError:
        when = None
    event_id = item.get("eventId") or item.get("id") or _digest(item)
    return WebhookEvent(
        event_id=str(event_id),
        kind=kind,
        remote_id=str(contact["contactId"]) if contact.get("contactId") else None,
        email=str(contact["email"]).strip().lower() if contact.get("email") else None,
        occurred_at=when,
        payload=dict(item),
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _callback(fields: Mapping[str, str], campaign_id: str) -> WebhookEvent | None:
    kind = KINDS.get(fields.get("action", "").strip().lower())
    if kind is None or (fields.get("CAMPAIGN_ID") and fields["CAMPAIGN_ID"] != campaign_id):
        return None
    email = fields.get("contact_email") or fields.get("CONTACT_EMAIL")
    contact_id = fields.get("CONTACT_ID") or fields.get("contact_id")
    return WebhookEvent(
        event_id=_digest(fields),
        kind=kind,
        remote_id=contact_id or None,
        email=email.strip().lower() if email else None,
        payload=dict(fields),
    )


def _digest(item: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()[:32]
