"""ActiveCampaign webhooks: authenticate a delivery by the secret in its URL, then parse its form body.

Facts: /work/shared/providers/activecampaign.md "Webhooks". Deliveries are form-encoded POSTs with
PHP-style keys (``contact[id]``, ``contact[email]``, ``list``, ``unsubscribe[reason]``); ``date_time`` is
ISO 8601 with the account's offset. There is no signature: the webhook URL carries an unguessable token
(``?token=`` or its last path segment), compared in constant time. Imports fire nothing and there is no
delete event, so webhooks are hints only; the adapter's id sweep finds deletions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from adapters.activecampaign._wire import PROVIDER, parse_time
from adapters.base import WebhookEvent
from adapters.errors import WebhookRejected

KINDS: Final = {
    "subscribe": "created",
    "unsubscribe": "unsubscribed",
    "update": "updated",
    "contact_tag_added": "updated",
    "contact_tag_removed": "updated",
}
LIST_EVENTS: Final = frozenset({"subscribe", "unsubscribe"})


def _reject(why: str) -> WebhookRejected:
    return WebhookRejected(f"{PROVIDER} webhook rejected: {why}", provider=PROVIDER)


def verify_delivery(token: str | None, *, method: str, url: str) -> None:
    """The URL must carry the configured token, as ``?token=`` or as its last path segment."""
    if not token:
        raise _reject("no webhook_token configured")
    parts = urlsplit(url)
    query = parse_qs(parts.query).get("token")
    given = query[0] if query else parts.path.rstrip("/").rsplit("/", 1)[-1]
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise _reject("missing or wrong token")


def _when(text: str | None) -> dt.datetime | None:
    try:
        return parse_time(text) if text else None
    except ValueError:
        return None


def parse_delivery(body: bytes, *, list_id: str) -> list[WebhookEvent]:
    """One delivery = one event. Events of another list and campaign/deal/sms events yield nothing."""
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    kind_raw = form.get("type", "")
    kind = KINDS.get(kind_raw)
    if kind is None:
        return []
    lists = {form.get("list", "")} | {v for k, v in form.items() if k.startswith("list[") and k.endswith("[id]")}
    if kind_raw in LIST_EVENTS and list_id not in lists:
        return []
    remote_id = form.get("contact[id]") or None
    email = (form.get("contact[email]") or "").strip().lower() or None
    if remote_id is None and email is None:
        return []
    payload: dict[str, Any] = {"type": kind_raw, "initiated_from": form.get("initiated_from", "")}
    if form.get("unsubscribe[reason]"):
        payload["reason"] = form["unsubscribe[reason]"][:200]
    # No delivery id exists (at least once, never retried): hash (type, contact, time, list); no address in it.
    identity = "|".join((kind_raw, remote_id or "", email or "", form.get("date_time", ""), form.get("list", "")))
    return [
        WebhookEvent(
            event_id=hashlib.sha256(identity.encode()).hexdigest()[:32],
            kind=kind,
            remote_id=remote_id,
            email=email,
            occurred_at=_when(form.get("date_time")),
            payload=payload,
        )
    ]
