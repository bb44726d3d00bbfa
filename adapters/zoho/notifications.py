"""Zoho notifications: the Contacts watch channel (create, renew) and callback verification and parsing.

Channels expire (1 h by default, at most a week from v4) and a missed renewal silently stops events, so
the daemon calls ``ensure_watch`` on a schedule; callbacks carry ids only and no signature, so the channel
token (and a secret query parameter of the notify URL) is compared in constant time, and the records are
fetched by id: https://help.zoho.com/portal/en-gb/community/topic/kaizen-170-faqs-on-notification-apis
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, urlsplit

from adapters.base import WebhookEvent
from adapters.errors import FatalProviderError, WebhookRejected
from adapters.secret import Secret
from adapters.zoho._wire import format_zoho_time, parse_zoho_time

if TYPE_CHECKING:
    from adapters.zoho.adapter import ZohoAdapter

WATCH: Final = "/crm/v8/actions/watch"
CHANNEL_LIFETIME: Final = dt.timedelta(days=7) - dt.timedelta(minutes=5)  # the v4+ maximum, with room
RENEW_BEFORE: Final = dt.timedelta(days=1)  # renew once less than a day is left
KINDS: Final = {"insert": "created", "create": "created", "update": "updated", "edit": "updated", "delete": "deleted"}


def channel_id_for(notify_url: str) -> str:
    """A stable numeric channel id per notify URL, so every replica renews the same channel."""
    digest = hashlib.sha256(notify_url.encode()).digest()
    return str(10**12 + int.from_bytes(digest[:6], "big") % 10**12)


def ensure_watch(
    adapter: ZohoAdapter, notify_url: str, token: Secret, *, now: dt.datetime | None = None
) -> dt.datetime:
    """Enable the channel (POST), or renew it (PATCH) once less than a day is left; returns its expiry."""
    now = now or dt.datetime.now(dt.UTC)
    channel_id = channel_id_for(notify_url)
    existing = _listed(adapter, channel_id)
    if existing is not None:
        expiry = _expiry(existing.get("channel_expiry"))
        if expiry is not None and expiry - now > RENEW_BEFORE and existing.get("notify_url") == notify_url:
            return expiry
    expiry = (now + CHANNEL_LIFETIME).replace(microsecond=0)  # five minutes short of the week: clock skew
    channel = {
        "channel_id": channel_id,  # a long in digits, sent as a string like the SDK and the samples
        "events": ["Contacts.all"],
        "channel_expiry": format_zoho_time(expiry),
        "token": token.reveal(),
        "notify_url": notify_url,
        "notify_on_related_action": False,
    }
    method = "PATCH" if existing is not None else "POST"  # PATCH changes only the given details
    response = adapter.call(method, WATCH, json={"watch": [channel]}, idempotent=True)
    body: Any = response.json() if response.content else {}
    listed = body.get("watch") if isinstance(body, dict) else None
    answer = listed[0] if isinstance(listed, list) and listed else None
    if not isinstance(answer, dict) or answer.get("status") != "success":
        code = answer.get("code") if isinstance(answer, dict) else None
        raise FatalProviderError(
            f"zoho {method} {WATCH} -> channel not enabled ({code})", provider="zoho", method=method, path=WATCH
        )
    return expiry


def _listed(adapter: ZohoAdapter, channel_id: str) -> dict[str, Any] | None:
    """The channel as Zoho lists it, asked for by ``channel_id`` (OAS v8.0 getNotifications): the list is paged,
    200 a page, and other integrations' channels may fill the first pages. Matched by id here too.
    """
    response = adapter.call("GET", WATCH, params={"channel_id": channel_id})
    body: Any = response.json() if response.status_code == 200 and response.content else {}
    listed = body.get("watch") if isinstance(body, dict) else None
    return next(
        (c for c in listed or () if isinstance(c, dict) and str(c.get("channel_id")) == channel_id),
        None,
    )


def _expiry(value: Any) -> dt.datetime | None:
    """A listed channel's expiry; None (renew it) when Zoho left it out or sent something unreadable."""
    try:
        return parse_zoho_time(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def verify(token: Secret | None, notify_url: str | None, *, url: str, body: bytes) -> None:
    """The channel token must match, and so must every query parameter crmsync put in the notify URL."""
    if not token:
        raise WebhookRejected("zoho webhook: no notify_token configured", provider="zoho")
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        raise WebhookRejected("zoho webhook: body is not JSON", provider="zoho") from None
    sent = payload.get("token") if isinstance(payload, dict) else None
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), token.reveal().encode()):
        raise WebhookRejected("zoho webhook: channel token mismatch", provider="zoho")
    expected = _query(notify_url or "")
    got = _query(url)
    echoed = payload.get("query_params") if isinstance(payload, dict) else None
    for key, value in expected.items():
        # Zoho echoes the notify URL's parameters in the body's query_params; whether the callback URL keeps
        # its query string is not documented, so a parameter missing from the URL is looked up there.
        sent_value = got.get(key)
        if sent_value is None and isinstance(echoed, dict) and isinstance(echoed.get(key), str):
            sent_value = echoed[key]
        if not hmac.compare_digest((sent_value or "").encode(), value.encode()):
            raise WebhookRejected("zoho webhook: notify URL parameter mismatch", provider="zoho")


def parse(body: bytes) -> list[WebhookEvent]:
    """One event per id; the ids are hints, the adapter fetches the records."""
    payload: Any = json.loads(body or b"null")
    if not isinstance(payload, Mapping):
        return []
    kind = KINDS.get(str(payload.get("operation")), "updated")
    when = payload.get("server_time")
    occurred = dt.datetime.fromtimestamp(when / 1000, dt.UTC) if isinstance(when, int | float) else None
    base = f"{payload.get('channel_id')}:{when}:{payload.get('operation')}"
    summary = {
        "module": payload.get("module"),
        "operation": payload.get("operation"),
        "channel_id": payload.get("channel_id"),
    }
    return [
        WebhookEvent(
            event_id=hashlib.sha256(f"{base}:{rid}".encode()).hexdigest()[:32],
            kind=kind,
            remote_id=str(rid),
            occurred_at=occurred,
            payload=summary,
        )
        for rid in payload.get("ids") or ()
    ]


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items() if v}
