"""HubSpot webhook deliveries: signature checks (v3, and v1/v2 for older apps) and event parsing.

https://developers.hubspot.com/docs/api/webhooks/validating-requests: v3 is
``base64(HMAC-SHA256(client_secret, method + uri + body + timestamp))`` with the timestamp (epoch ms)
at most 5 minutes off, the URI first decoded for a fixed set of escapes; v1 is
``hex(SHA-256(secret + body))``, v2 ``hex(SHA-256(secret + method + uri + body))``. Unlike the SDK's
helper we reject future timestamps too (``abs``) and compare in constant time. Events are hints only:
the daemon fetches the records by id. Order is not guaranteed and ``eventId`` is not unique.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from adapters.base import WebhookEvent
from adapters.errors import WebhookRejected

MAX_SKEW_MS: Final = 5 * 60 * 1000
# Escapes HubSpot decodes before signing (not the "?" that starts the query) [SIG].
_DECODE: Final = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'", "%28": "(", "%29": ")",
    "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip
KINDS: Final = {
    "contact.creation": "created",
    "contact.propertychange": "updated",
    "contact.deletion": "deleted",
    "contact.privacydeletion": "deleted",
    "contact.merge": "merged",
    "contact.restore": "created",
}


# Generic subscriptions (https://developers.hubspot.com/changelog/public-beta-generic-webhook-subscriptions, the
# `crmObjects` of a project app's webhooks.json) send object.<kind> with objectTypeId; contacts are "0-1".
CONTACT_OBJECT_TYPE: Final = "0-1"


def _kind(raw: Mapping[str, Any]) -> str | None:
    subscription = str(raw.get("subscriptionType") or raw.get("eventType") or "").strip().lower()
    if subscription.startswith("object."):
        if str(raw.get("objectTypeId") or "").strip() != CONTACT_OBJECT_TYPE:
            return None  # another object type
        subscription = "contact." + subscription.removeprefix("object.")
    return KINDS.get(subscription)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def decode_uri(uri: str) -> str:
    out = uri
    for escape, char in _DECODE.items():
        out = out.replace(escape, char).replace(escape.lower(), char)
    return out


def sign_v3(secret: str, *, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.upper().encode() + decode_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def _sign_v3_raw(secret: str, *, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """v3 over the URI as given, escapes kept (``hubspot.utils.signature.Signature.get_signature``)."""
    message = method.upper().encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def sign_v1(secret: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + body).hexdigest()


def sign_v2(secret: str, *, method: str, uri: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + method.upper().encode() + uri.encode() + body).hexdigest()


def verify(
    secret: str | None,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
) -> None:
    """Raise WebhookRejected unless the delivery carries a valid signature from this app."""
    if not secret:
        raise WebhookRejected("hubspot webhook: no client_secret configured", provider="hubspot")
    v3 = _header(headers, "X-HubSpot-Signature-v3")
    if v3 is not None:
        stamp = _header(headers, "X-HubSpot-Request-Timestamp") or ""
        if not stamp.isdigit() or abs(now_ms() - int(stamp)) > MAX_SKEW_MS:
            raise WebhookRejected("hubspot webhook: timestamp missing or outside 5 minutes", provider="hubspot")
        given_v3 = v3.strip().encode()
        # The guide has the URI's escapes decoded first; HubSpot's own SDK helper signs it as given. Either needs
        # the secret; both are compared, in constant time, so a sender of either reading is accepted.
        candidates = {sign_v3(secret, method=method, uri=url, body=body, timestamp=stamp),
                      _sign_v3_raw(secret, method=method, uri=url, body=body, timestamp=stamp)}  # fmt: skip
        if not any([hmac.compare_digest(c.encode(), given_v3) for c in sorted(candidates)]):
            raise WebhookRejected("hubspot webhook: bad v3 signature", provider="hubspot")
        return
    given = _header(headers, "X-HubSpot-Signature")
    if given is None:
        raise WebhookRejected("hubspot webhook: no signature", provider="hubspot")
    version = (_header(headers, "X-HubSpot-Signature-Version") or "v1").strip().lower()
    if version == "v1":
        expected = sign_v1(secret, body)
    elif version == "v2":
        expected = sign_v2(secret, method=method, uri=url, body=body)
    else:
        raise WebhookRejected("hubspot webhook: unknown signature version", provider="hubspot")
    if not hmac.compare_digest(expected.encode(), given.strip().lower().encode()):
        raise WebhookRejected(f"hubspot webhook: bad {version} signature", provider="hubspot")


def _event_id(raw: Mapping[str, Any]) -> str:
    """``eventId`` alone is not unique: key on the fields that together are [providers/hubspot.md]."""
    key = [raw.get(k) for k in ("subscriptionId", "eventId", "objectId", "occurredAt", "propertyName")]
    return hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()[:32]


def _event(raw: Mapping[str, Any]) -> WebhookEvent | None:
    kind = _kind(raw)
    if kind is None:
        return None  # other objects, association changes: nothing for a contact sync
    remote_id = raw.get("objectId")
    email = None
    prop, value = raw.get("propertyName"), raw.get("propertyValue")
    if kind == "updated" and prop == "email" and value:
        kind, email = "email_changed", str(value)
    elif kind == "updated" and prop == "hs_email_optout" and str(value).lower() == "true":
        kind = "unsubscribed"
    elif kind == "merged":  # survivor: newObjectId, else primaryObjectId, else objectId
        remote_id = raw.get("newObjectId") or raw.get("primaryObjectId") or remote_id
    occurred = raw.get("occurredAt")
    return WebhookEvent(
        event_id=_event_id(raw),
        kind=kind,
        remote_id=str(remote_id) if remote_id is not None else None,
        email=email,
        occurred_at=dt.datetime.fromtimestamp(int(str(occurred)) / 1000, dt.UTC) if str(occurred).isdigit() else None,
        payload=dict(raw),
    )


def parse(body: bytes) -> list[WebhookEvent]:
    """The events of one delivery (a JSON array), oldest first; unknown kinds are left out."""
    try:
        raw = json.loads(body or b"[]")
    except ValueError as exc:
        raise WebhookRejected("hubspot webhook: body is not JSON", provider="hubspot") from exc
    rows = raw if isinstance(raw, list) else [raw]
    events = [e for e in (_event(r) for r in rows if isinstance(r, Mapping)) if e is not None]
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(events, key=lambda e: e.occurred_at or epoch)
