"""The Zoho emulator's notification channels: ``/crm/v8/actions/watch`` and callback delivery.

Keys, limits and errors: https://zoho.com/crm/developer/docs/api/v7/notifications/enable.html and K170 in
providers/zoho.md (expiry 1 h by default, at most a week; ``token`` at most 50 characters; NOT_SUBSCRIBED).
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import requests

from adapters._emulator import Request, Response
from adapters.zoho._store import Org, format_time
from adapters.zoho._wire import error_body, parse_zoho_time, record_error

API: Final = "/crm/v8"
WATCH_MAX_EXPIRY: Final = dt.timedelta(days=7)  # v4+: at most one week (K170)
WATCH_DEFAULT_EXPIRY: Final = dt.timedelta(hours=1)
WATCH_PER_PAGE: Final = 200


@dataclass(slots=True)
class Channel:
    channel_id: str
    events: list[str]
    notify_url: str
    token: str | None
    expiry: dt.datetime
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Delivery:
    channel_id: str
    payload: dict[str, Any]
    status: int | None  # None: the callback could not be delivered


class WatchChannels:
    """Channel routes and the delivery worker; mixed into ZohoEmulator, which owns these attributes."""

    org: Org
    tz: dt.tzinfo
    channels: dict[str, Channel]
    deliveries: list[Delivery]
    callback_keeps_query: bool = True
    _lock: threading.Lock
    _outbox: queue.Queue[tuple[Channel, dict[str, Any]] | None]

    @property
    def url(self) -> str:
        raise NotImplementedError

    def _watch_list(self, request: Request) -> tuple[Response, int]:
        """Live channels, 200 a page, filtered by ``channel_id`` and ``module`` (OAS v8.0 getNotifications)."""
        now = self.org.now()
        wanted_id, module = request.arg("channel_id"), request.arg("module")
        page, per_page = request.arg("page") or "1", request.arg("per_page") or str(WATCH_PER_PAGE)
        if not page.isdigit() or not per_page.isdigit() or int(page) < 1 or not 1 <= int(per_page) <= WATCH_PER_PAGE:
            return bad("INVALID_DATA", "invalid page or per_page", param_name="per_page"), 1
        with self._lock:
            live = [
                c
                for c in self.channels.values()
                if c.expiry > now
                and wanted_id in (None, c.channel_id)
                and (module is None or any(e.split(".")[0] == module for e in c.events))
            ]
        start = (int(page) - 1) * int(per_page)
        window = live[start : start + int(per_page)]
        if not window:
            return Response.empty(204), 1
        info = {
            "per_page": int(per_page),
            "count": len(window),
            "page": int(page),
            "more_records": start + len(window) < len(live),
        }
        return Response.json({"watch": [self._channel_json(c) for c in window], "info": info}), 1

    def _watch_enable(self, request: Request) -> tuple[Response, int]:
        try:
            body = request.json() or {}
        except json.JSONDecodeError:
            return bad("INVALID_DATA", "body is not valid JSON"), 1
        items = body.get("watch") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return bad("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", param_name="watch"), 1
        results = [self._enable_one(i, item) for i, item in enumerate(items)]
        ok = sum(r["status"] == "success" for r in results)
        created = 201 if request.method == "POST" else 200  # POST answers 201 (OAS v8.0 createNotifications)
        return Response.json({"watch": results}, created if ok == len(results) else (207 if ok else 400)), 1

    def _enable_one(self, index: int, item: Any, *, patch: bool = False) -> dict[str, Any]:
        path = f"$.watch[{index}]"
        if not isinstance(item, dict):
            return record_error("INVALID_DATA", "invalid data", json_path=path)
        channel_id = str(item.get("channel_id") or "")
        with self._lock:
            existing = self.channels.get(channel_id)
        if patch:
            if existing is None:
                return record_error(
                    "NOT_SUBSCRIBED", "not subscribed for actions-watch of the given channel", channel_id=channel_id
                )
            item = {**self._channel_json(existing), **item}
        for key in ("channel_id", "events", "notify_url"):
            if not item.get(key):
                return record_error(
                    "MANDATORY_NOT_FOUND", "required field not found", api_name=key, json_path=f"{path}.{key}"
                )
        if not channel_id.isdigit():
            return record_error("INVALID_DATA", "invalid data", api_name="channel_id", expected_data_type="long")
        events = item["events"]
        valid = ("Contacts.create", "Contacts.edit", "Contacts.delete", "Contacts.all")
        if not isinstance(events, list) or any(e not in valid for e in events):
            return record_error("INVALID_DATA", "invalid event", api_name="events", json_path=f"{path}.events")
        token = item.get("token")
        if token is not None and (not isinstance(token, str) or len(token) > 50):
            return record_error("INVALID_DATA", "token exceeds 50 characters", api_name="token")
        now = self.org.now()
        expiry = now + WATCH_DEFAULT_EXPIRY
        if item.get("channel_expiry"):
            try:
                expiry = parse_zoho_time(str(item["channel_expiry"]))
            except ValueError:
                return record_error("INVALID_DATA", "invalid data", api_name="channel_expiry")
            if expiry <= now or expiry > now + WATCH_MAX_EXPIRY:
                return record_error("INVALID_DATA", "channel_expiry must be within a week", api_name="channel_expiry")
        extra = {
            k: v
            for k, v in item.items()
            if k in ("return_affected_field_values", "notify_on_related_action", "notification_condition")
        }
        channel = Channel(channel_id, list(events), str(item["notify_url"]), token, expiry, extra)
        with self._lock:
            self.channels[channel_id] = channel
        return {
            "code": "SUCCESS",
            "status": "success",
            "message": "Successfully subscribed for actions-watch of the given module",
            "details": {
                "events": [
                    {
                        "channel_expiry": format_time(expiry, self.tz),
                        "resource_uri": f"{self.url}{API}/Contacts",
                        "resource_id": "5550000000002175",
                        "resource_name": "Contacts",
                        "channel_id": channel_id,
                    }
                ]
            },
        }

    def _watch_patch(self, request: Request) -> tuple[Response, int]:
        try:
            body = request.json() or {}
        except json.JSONDecodeError:
            return bad("INVALID_DATA", "body is not valid JSON"), 1
        items = body.get("watch") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return bad("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", param_name="watch"), 1
        results = [self._enable_one(i, item, patch=True) for i, item in enumerate(items)]
        ok = sum(r["status"] == "success" for r in results)
        return Response.json({"watch": results}, 200 if ok == len(results) else (207 if ok else 400)), 1

    def _watch_disable(self, request: Request) -> tuple[Response, int]:
        ids = [i for i in (request.arg("channel_ids") or "").split(",") if i]
        if not ids:
            return bad(
                "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", param_name="channel_ids"
            ), 1
        results = []
        for channel_id in ids:
            with self._lock:
                channel = self.channels.pop(channel_id, None)
            if channel is None:
                results.append(
                    record_error(
                        "NOT_SUBSCRIBED", "not subscribed for actions-watch of the given channel", channel_id=channel_id
                    )
                )
            else:
                results.append(
                    {
                        "code": "SUCCESS",
                        "status": "success",
                        "message": "Successfully unsubscribed from actions-watch",
                        "details": {"events": [{"channel_id": channel_id, "resource_name": "Contacts"}]},
                    }
                )
        ok = sum(r["status"] == "success" for r in results)
        return Response.json({"watch": results}, 200 if ok == len(results) else (207 if ok else 400)), 1

    def _channel_json(self, channel: Channel) -> dict[str, Any]:
        return {
            "channel_id": channel.channel_id,
            "events": list(channel.events),
            "notify_url": channel.notify_url,
            "token": channel.token,
            "channel_expiry": format_time(channel.expiry, self.tz),
            "resource_uri": f"{self.url}{API}/Contacts",
            "resource_name": "Contacts",
            **channel.extra,
        }

    def _notify(self, event: str, ids: list[str], affected: list[str]) -> None:
        now = self.org.now()
        operation = {"create": "insert", "insert": "insert", "edit": "update", "delete": "delete"}[event]
        wanted = {"insert": "Contacts.create", "update": "Contacts.edit", "delete": "Contacts.delete"}[operation]
        with self._lock:
            live = [
                c
                for c in self.channels.values()
                if c.expiry > now and ("Contacts.all" in c.events or wanted in c.events)
            ]
        for channel in live:
            payload = {
                "server_time": int(time.time() * 1000),
                "module": "Contacts",
                "resource_uri": f"{self.url}{API}/Contacts",
                "ids": list(ids),
                "affected_fields": [{i: affected} for i in ids] if operation == "update" else [],
                "operation": operation,
                "channel_id": channel.channel_id,
                "token": channel.token,
                "query_params": query_params(channel.notify_url),
            }
            self._outbox.put((channel, payload))

    def _deliver_loop(self) -> None:
        session = requests.Session()
        while (item := self._outbox.get()) is not None:
            channel, payload = item
            status: int | None
            # The notify URL's parameters always ride in the body's query_params; whether Zoho also keeps them
            # in the URL it posts to is undocumented, so callback_keeps_query = False drops them there.
            target = channel.notify_url if self.callback_keeps_query else channel.notify_url.split("?", 1)[0]
            try:
                status = session.post(target, json=payload, timeout=(2.0, 5.0)).status_code
            except requests.RequestException:
                status = None
            self.deliveries.append(Delivery(channel.channel_id, payload, status))
        session.close()

    def iter_channels(self) -> Iterator[Channel]:
        with self._lock:
            yield from list(self.channels.values())


def query_params(url: str) -> dict[str, str]:

    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items() if v}


def bad(code: str, message: str, **details: Any) -> Response:
    return Response.json(error_body(code, message, **details), 400)
