"""Mailchimp audience webhooks: verify a delivery (signature or URL secret), then parse its form body.

Facts: /work/shared/providers/mailchimp.md "Webhooks" [WH], [SKWH]. Deliveries are form-encoded POSTs
with PHP-style keys (``data[merges][FNAME]``); ``fired_at`` is ``YYYY-MM-DD HH:MM:SS`` in UTC with no zone.
A webhook created after signing shipped sends ``X-Mailchimp-Signature: t=<unix>,v1=<hex>`` with
``v1 = HMAC-SHA256(secret, f"{t}." + raw body)``; older ones are authenticated by a secret in the URL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from adapters.base import WebhookEvent
from adapters.errors import WebhookRejected
from adapters.mailchimp._wire import PROVIDER, moved_hint, subscriber_hash

SIGNATURE_HEADER: Final = "x-mailchimp-signature"
TOLERANCE_S: Final = 300  # reject signatures more than 5 minutes off [WH]
URL_SECRET_PARAMS: Final = ("secret", "key", "token")
KINDS: Final = {
    "subscribe": "created",
    "profile": "updated",
    "upemail": "email_changed",
    "cleaned": "cleaned",
}


def _reject(why: str) -> WebhookRejected:
    return WebhookRejected(f"{PROVIDER} webhook rejected: {why}", provider=PROVIDER)


class WebhookVerifier:
    """Checks one delivery in constant time; GET (Mailchimp's URL validation) needs no proof."""

    def __init__(self, secret: str | None, *, clock: Callable[[], dt.datetime]) -> None:
        self._secret = secret
        self._clock = clock

    def verify(self, *, method: str, url: str, headers: Mapping[str, str], body: bytes) -> None:
        if method.upper() in ("GET", "HEAD"):
            return
        if not self._secret:
            raise _reject("no webhook_secret configured")
        # One configured secret serves both modes: the ?secret= crmsync put in the webhook URL, or the
        # signing_secret Mailchimp returned when the webhook was created. A webhook with signing on also
        # signs with a key the URL secret is not, so a right URL secret is enough on its own.
        query = parse_qs(urlsplit(url).query)
        given = next((query[name][0] for name in URL_SECRET_PARAMS if query.get(name)), None)
        if given is not None and hmac.compare_digest(given.encode(), self._secret.encode()):
            return
        signature = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), None)
        if signature is None:
            raise _reject("missing or wrong secret")
        self._check_signature(signature, body)

    def _check_signature(self, header: str, body: bytes) -> None:
        assert self._secret is not None
        parts: dict[str, list[str]] = {}
        for item in header.split(","):
            key, _, value = item.strip().partition("=")
            parts.setdefault(key, []).append(value)
        try:
            stamp = int(parts["t"][0])
        except (KeyError, ValueError):
            raise _reject("malformed signature header") from None
        if abs(self._clock().timestamp() - stamp) > TOLERANCE_S:
            raise _reject("stale signature timestamp")
        expected = hmac.new(self._secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        if not any(hmac.compare_digest(expected.encode(), v.encode()) for v in parts.get("v1", ())):
            raise _reject("bad signature")


def _fired_at(text: str | None) -> dt.datetime | None:
    """``2009-03-26 21:35:57`` (UTC, no zone) as documented; an ISO 8601 stamp with a zone is read too."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace(" ", "T", 1).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def _form(body: bytes) -> dict[str, str]:
    """The delivery as PHP-style form keys (``data[merges][FNAME]``).

    Mailchimp documents the body as ``application/x-www-form-urlencoded`` but shows it, and parses it in its
    own samples, as JSON (``{"type": ..., "data": {"merges": {...}}}``) [WH]: a JSON object is taken too and
    flattened to the same keys.
    """
    text = body.decode("utf-8", "replace")
    if text.lstrip().startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return dict(_flatten(parsed, ""))
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _flatten(value: Any, prefix: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}[{key}]" if prefix else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{i}]")
    elif prefix:
        yield prefix, "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def parse_delivery(body: bytes, *, list_id: str) -> list[WebhookEvent]:
    """One delivery = one event. Events of another audience and campaign events yield nothing."""
    form = _form(body)
    kind_raw = form.get("type", "")
    if form.get("data[list_id]") not in (None, list_id):
        return []
    if kind_raw == "unsubscribe":
        kind = "deleted" if form.get("data[action]") == "delete" else "unsubscribed"
    else:
        kind = KINDS.get(kind_raw, "")
    if not kind:
        return []
    email = form.get("data[new_email]") if kind_raw == "upemail" else form.get("data[email]")
    if not email:
        return []
    merges = {
        k[len("data[merges][") : -1]: v
        for k, v in form.items()
        if k.startswith("data[merges][") and k.endswith("]") and "][" not in k[len("data[merges][") : -1]
    }
    payload: dict[str, Any] = {"type": kind_raw, "list_id": form.get("data[list_id]")}
    for key in ("reason", "action", "campaign_id", "old_email", "new_email"):
        if form.get(f"data[{key}]"):
            payload[key] = form[f"data[{key}]"]
    if merges:
        payload["merges"] = merges
    # No delivery id exists: dedupe on (type, id, fired_at) [SKWH]; hashed so no address is in the key.
    fired = _fired_at(form.get("fired_at"))
    identity = "|".join(
        (
            kind_raw,
            form.get("data[id]") or form.get("data[new_id]") or "",
            email.strip().lower(),
            fired.strftime("%Y-%m-%d %H:%M:%S") if fired else form.get("fired_at", ""),  # one spelling per moment
        )
    )
    # upemail: the old hash too, for a link still kept by it (see _wire.MOVED_FROM)
    hint = moved_hint(email, form.get("data[old_email]")) if kind_raw == "upemail" else subscriber_hash(email)
    return [
        WebhookEvent(
            event_id=hashlib.sha256(identity.encode()).hexdigest()[:32],
            kind=kind,
            remote_id=hint,
            email=email.strip().lower(),
            occurred_at=fired,
            payload=payload,
        )
    ]
