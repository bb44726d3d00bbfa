"""A local GetResponse API v3 (contacts of one account) for tests, benchmarks and ``crmsync sandbox``.

Faithful to /work/shared/providers/getresponse.md: ``X-Auth-Token: api-key <key>``; ``GET /contacts`` lists
only active contacts (``query[...]`` filters, ``sort[...]``, ``page``/``perPage`` 1-1000 with junk read
as 100, ``TotalCount``/``TotalPages``/``CurrentPage`` headers, unknown ``query[...]`` -> 400 code 1000);
``POST /contacts`` answers 202 with no body and no id and makes the contact visible ``create_delay_s``
later (an email already in the campaign, or queued for it, -> 409 code 1008); ``POST /contacts/{id}``
updates and replaces whole ``tags``/``customFieldValues`` arrays; the additive tag and custom-field
calls; ``DELETE /contacts/{id}`` removes (with ``messageId``: unsubscribes); Search Contacts type ``removed``
finds unsubscribed and removed ones. Limits: 80 calls/s and 30,000 per 10 minutes -> 429 code 1015 with
``context.timeToReset``; ``X-RateLimit-*`` headers on every answer.

Unconfirmed choices (the fact sheet is silent): unsubscribed/removed contacts answer 404 by id; a
create for an unsubscribed or removed email adds it again (so a client must never re-add blindly);
``POST /contacts/{id}`` accepts a new ``email``; tag and custom-field writes bump ``changedOn``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import urlencode

from adapters._emulator import EmulatorServer, Request, Response
from adapters.getresponse._emulator_data import DEFAULT_FIELDS, Contact, Ids, seed_profile
from adapters.getresponse._wire import (
    CODE_AUTH,
    CODE_EXISTS,
    CODE_NOT_FOUND,
    CODE_THROTTLED,
    CODE_VALIDATION,
    error_body,
    format_time,
    parse_time,
)

V3: Final = "/v3"
MAX_PER_PAGE: Final = 1000
DEFAULT_PER_PAGE: Final = 100
LIST_QUERIES: Final = frozenset(
    {
        "campaignId",
        "email",
        "name",
        "origin",
        "createdOn][from",
        "createdOn][to",
        "changedOn][from",
        "changedOn][to",
    }
)
SORT_KEYS: Final = {"changedOn", "createdOn", "email", "name", "campaignId"}
# Search Contacts types; "removed" holds unsubscribed contacts as well as those taken off the list.
SUBSCRIBER_TYPES: Final = {"subscribed", "undelivered", "removed", "unconfirmed"}
MAX_CONDITIONS: Final = 8  # per Search Contacts section
TAG_NAME: Final = re.compile(r"[_a-zA-Z0-9]{2,64}\Z")
FIELD_NAME: Final = re.compile(r"[a-z0-9_]{1,32}\Z")
EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")
READ_ROUTES: Final = r"^GET |search-contacts"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _error(status: int, code: int, message: str, context: Mapping[str, Any] | None = None) -> Response:
    return Response.json(error_body(status, code, message, context), status)


class GetResponseEmulator(EmulatorServer):
    """One GetResponse account with one campaign (more via ``add_campaign``), served on 127.0.0.1."""

    def __init__(
        self,
        *,
        api_key: str = "gr-emulator-key-0001",
        campaign_id: str = "V3xQ",
        clock: Callable[[], dt.datetime] = _utc_now,
        latency_s: float = 0.0,
        create_delay_s: float = 0.0,
        per_second: int = 80,
        per_window: int = 30_000,
        window_s: float = 600.0,
        webhook_secret: str = "gr-hook-secret-0001",  # noqa: S107 - a test fixture, not a credential
    ) -> None:
        super().__init__(latency_s=latency_s)
        self.api_key = api_key
        self.campaign_id = campaign_id
        self.webhook_secret = webhook_secret
        self.create_delay_s = create_delay_s
        self.per_second = per_second
        self.per_window = per_window
        self.window_s = window_s
        self._clock = clock
        self._data = threading.RLock()
        self._ids = Ids()
        self._contacts: dict[str, Contact] = {}
        self._campaigns: dict[str, dict[str, Any]] = {}
        self._tags: dict[str, str] = {}  # tagId -> name
        self._fields: dict[str, dict[str, Any]] = {}  # customFieldId -> definition
        self._hits: deque[float] = deque()  # monotonic times of accepted calls, for the limits
        self.add_campaign("crmsync_list", campaign_id=campaign_id)
        for name in DEFAULT_FIELDS:
            self.add_custom_field(name)
        self.before_request = self._gate
        self._routes_v3()

    # -- knobs -------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return self.url + V3

    def sandbox_options(self) -> dict[str, Any]:
        """The crmsync ``[providers.getresponse]`` options that reach this emulator."""
        return {
            "type": "getresponse",
            "base_url": self.api_url,
            "api_key": self.api_key,
            "campaign_id": self.campaign_id,
        }

    def now(self) -> dt.datetime:
        return self._clock().replace(microsecond=0)

    def add_campaign(self, name: str, *, campaign_id: str | None = None) -> str:
        with self._data:
            cid = campaign_id or self._ids.new(4)
            self._campaigns[cid] = {
                "campaignId": cid,
                "name": name,
                "href": f"{self.url}{V3}/campaigns/{cid}",
                "isDefault": not self._campaigns,
                "createdOn": format_time(self.now()),
            }
            return cid

    def add_tag(self, name: str) -> str:
        with self._data:
            for tag_id, known in self._tags.items():
                if known == name:
                    return tag_id
            tag_id = self._ids.new(3)
            self._tags[tag_id] = name
            return tag_id

    def add_custom_field(self, name: str) -> str:
        with self._data:
            for field_id, known in self._fields.items():
                if known["name"] == name:
                    return field_id
            field_id = self._ids.new(3)
            self._fields[field_id] = {
                "customFieldId": field_id,
                "href": f"{self.url}{V3}/custom-fields/{field_id}",
                "name": name,
                "fieldType": "text",
                "format": "text",
                "valueType": "string",
                "type": "text",
                "hidden": "false",
                "values": [],
            }
            return field_id

    def seed(self, n: int, *, prefix: str = "contact") -> list[str]:
        """Add ``n`` active contacts ``<prefix><i>@example.com`` (one second apart, oldest first); their ids."""
        ids = []
        start = self.now() - dt.timedelta(seconds=n)
        with self._data:
            for i in range(n):
                profile = seed_profile(i)
                when = start + dt.timedelta(seconds=i)
                contact = Contact(
                    contact_id=self._ids.new(),
                    email=f"{prefix}{i}@example.com",
                    campaign_id=self.campaign_id,
                    created=when,
                    changed=when,
                    name=profile["name"],
                    origin="import",
                    tag_ids=[self.add_tag(t) for t in profile["tags"]],
                    values={self.add_custom_field(k): [v] for k, v in profile["custom"].items()},
                )
                self._contacts[contact.contact_id] = contact
                ids.append(contact.contact_id)
        return ids

    def find(self, email: str, *, campaign_id: str | None = None) -> dict[str, Any] | None:
        """The contact for ``email`` in the campaign in any state (``state`` added), or None."""
        with self._data:
            self._settle()
            contact = self._by_email(email, campaign_id or self.campaign_id)
            return self._view(contact) if contact else None

    def contact(self, contact_id: str) -> dict[str, Any] | None:
        with self._data:
            self._settle()
            contact = self._contacts.get(contact_id)
            return self._view(contact) if contact else None

    def contacts(self, *, state: str | None = "active") -> list[dict[str, Any]]:
        with self._data:
            self._settle()
            return [self._view(c) for c in self._contacts.values() if state is None or c.state == state]

    def edit(self, contact_id: str, **props: Any) -> dict[str, Any]:
        """A user's edit in the app: ``name``, ``email``, ``tags`` (names), ``custom`` ({name: value})."""
        with self._data:
            contact = self._contacts[contact_id]
            if "name" in props:
                contact.name = props["name"]
            if "email" in props:
                contact.email = str(props["email"]).lower()
            if "tags" in props:
                contact.tag_ids = [self.add_tag(t) for t in props["tags"]]
            for name, value in (props.get("custom") or {}).items():
                contact.values[self.add_custom_field(name)] = [str(value)]
            contact.changed = self.now()
            return self._view(contact)

    def unsubscribe(self, email: str, *, campaign_id: str | None = None) -> str:
        """The person clicks unsubscribe: hidden from listings from now on; returns the contact id."""
        with self._data:
            self._settle()
            contact = self._by_email(email, campaign_id or self.campaign_id)
            if contact is None:
                raise KeyError("no such contact")
            contact.state = "unsubscribed"
            contact.changed = self.now()
            return contact.contact_id

    def delete(self, contact_id: str) -> None:
        """Removed from the list in the app (not an unsubscribe)."""
        with self._data:
            contact = self._contacts[contact_id]
            contact.state = "removed"
            contact.changed = self.now()

    def process_queue(self) -> int:
        """Make every queued create visible now (as GetResponse does a little later); returns how many."""
        with self._data:
            queued = [c for c in self._contacts.values() if c.state == "queued"]
            for contact in queued:
                contact.visible_at = self.now()
            self._settle()
            return len(queued)

    def read_calls(self) -> int:
        return self.call_count(pattern=READ_ROUTES)

    def write_calls(self) -> int:
        return sum(self.calls.values()) - self.read_calls()

    def webhook_delivery(self, events: Iterable[tuple[str, str]], *, secret: str | None = None) -> tuple[str, bytes]:
        """(URL query, JSON body) of a webhook delivery for ``(event, contactId)`` pairs (shape unconfirmed)."""
        items = []
        with self._data:
            for event, contact_id in events:
                contact = self._contacts[contact_id]
                items.append(
                    {
                        "event": event,
                        "eventId": self._ids.new(12),
                        "occurredAt": format_time(self.now()),
                        "contact": {
                            "contactId": contact.contact_id,
                            "email": contact.email,
                            "name": contact.name,
                            "campaign": {"campaignId": contact.campaign_id},
                        },
                    }
                )
        query = urlencode({"secret": self.webhook_secret if secret is None else secret})
        return query, json.dumps(items).encode()

    def start(self) -> GetResponseEmulator:
        super().start()
        return self

    def __enter__(self) -> GetResponseEmulator:
        return self.start()

    # -- internals ---------------------------------------------------------------------------
    def _view(self, contact: Contact) -> dict[str, Any]:
        view = contact.detail(self._campaigns[contact.campaign_id], self.url, self._tags, self._fields)
        view["state"] = contact.state
        return view

    def _by_email(self, email: str, campaign_id: str) -> Contact | None:
        wanted = email.strip().lower()
        for contact in self._contacts.values():
            if contact.email == wanted and contact.campaign_id == campaign_id:
                return contact
        return None

    def _settle(self) -> None:
        """Queued creates whose time has come become active (GetResponse processes them asynchronously)."""
        now = self.now()
        for contact in self._contacts.values():
            if contact.state == "queued" and contact.visible_at is not None and contact.visible_at <= now:
                contact.state = "active"
                contact.changed = contact.visible_at

    def _gate(self, request: Request) -> Response | None:
        """Auth, then the account's limits; also lets queued creates land."""
        token = request.headers.get("x-auth-token", "")
        bearer = request.headers.get("authorization", "")
        if token != f"api-key {self.api_key}" and bearer != f"Bearer {self.api_key}":
            return _error(401, CODE_AUTH, "Unable to authenticate request. Check credentials or authentication method.")
        now = time.monotonic()
        with self._data:
            self._settle()
            while self._hits and self._hits[0] <= now - self.window_s:
                self._hits.popleft()
            last_second = sum(1 for t in reversed(self._hits) if t > now - 1.0) if self._hits else 0
            if last_second >= self.per_second or len(self._hits) >= self.per_window:
                per_s = last_second >= self.per_second
                reset = 1 if per_s else max(1, int(self._hits[0] + self.window_s - now + 0.999))
                limit = self.per_second if per_s else self.per_window
                return Response.json(
                    error_body(
                        429,
                        CODE_THROTTLED,
                        "The throttling limit has been reached",
                        {"currentLimit": limit, "timeToReset": f"{reset} seconds"},
                    ),
                    429,
                    {
                        "X-RateLimit-Limit": str(limit),
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": f"{reset} seconds",
                    },
                )
            self._hits.append(now)
        return None

    def dispatch(self, request: Request) -> Response | None:
        response = super().dispatch(request)
        if response is not None and "X-RateLimit-Limit" not in response.headers:
            with self._data:
                used = len(self._hits)
                reset = int(self._hits[0] + self.window_s - time.monotonic()) if self._hits else int(self.window_s)
            for key, value in (
                ("X-RateLimit-Limit", str(self.per_window)),
                ("X-RateLimit-Remaining", str(max(self.per_window - used, 0))),
                ("X-RateLimit-Reset", f"{max(reset, 0)} seconds"),
            ):
                response.headers.setdefault(key, value)  # an injected fault may set its own
        return response

    def _routes_v3(self) -> None:
        add = self.add_route
        add("GET", V3 + r"/accounts", self._account)
        add("GET", V3 + r"/campaigns", self._list_campaigns)
        add("GET", V3 + r"/campaigns/(?P<id>[^/]+)", self._get_campaign)
        add("GET", V3 + r"/contacts", self._list_contacts)
        add("POST", V3 + r"/contacts", self._create)
        add("GET", V3 + r"/contacts/(?P<id>[^/]+)", self._get_contact)
        add("POST", V3 + r"/contacts/(?P<id>[^/]+)", self._update)
        add("DELETE", V3 + r"/contacts/(?P<id>[^/]+)", self._delete)
        add("POST", V3 + r"/contacts/(?P<id>[^/]+)/tags", self._add_tags)
        add("POST", V3 + r"/contacts/(?P<id>[^/]+)/custom-fields", self._add_values)
        add("GET", V3 + r"/tags", self._list_tags)
        add("POST", V3 + r"/tags", self._create_tag)
        add("GET", V3 + r"/custom-fields", self._list_fields)
        add("POST", V3 + r"/custom-fields", self._create_field)
        add("POST", V3 + r"/search-contacts/contacts", self._search)

    # -- handlers: account, campaigns ---------------------------------------------------------
    def _account(self, request: Request) -> Response:
        return Response.json(
            {
                "accountId": "acc1",
                "email": "owner@example.com",
                "firstName": "Owner",
                "countryCode": {"countryCode": "PL"},
            }
        )

    def _list_campaigns(self, request: Request) -> Response:
        with self._data:
            return Response.json(list(self._campaigns.values()))

    def _get_campaign(self, request: Request) -> Response:
        assert request.match is not None
        with self._data:
            campaign = self._campaigns.get(request.match["id"])
        if campaign is None:
            return _error(404, CODE_NOT_FOUND, "Resource not found", {"resourceId": request.match["id"]})
        return Response.json(campaign)

    # -- handlers: contacts -------------------------------------------------------------------
    def _list_contacts(self, request: Request) -> Response:
        filters: dict[str, str] = {}
        sorts: list[tuple[str, bool]] = []
        for key, values in request.query.items():
            if key.startswith("query[") and key.endswith("]"):
                name = key[len("query[") : -1]
                if name not in LIST_QUERIES:
                    return _error(400, CODE_VALIDATION, "Validation error", {"query": f"unknown filter {key}"})
                filters[name] = values[0]
            elif key.startswith("sort[") and key.endswith("]"):
                name, direction = key[5:-1], values[0].upper()
                if name not in SORT_KEYS or direction not in ("ASC", "DESC"):
                    return _error(400, CODE_VALIDATION, "Validation error", {"sort": f"cannot sort by {key}"})
                sorts.append((name, direction == "DESC"))
        exact = "exactMatch" in (request.arg("additionalFlags") or "").split(",")
        try:
            bounds = {k: _bound(v, upper=k.endswith("][to")) for k, v in filters.items() if "][" in k}
        except ValueError:
            return _error(400, CODE_VALIDATION, "Validation error", {"query": "bad date"})
        with self._data:
            rows = [
                c for c in self._contacts.values() if c.state == "active" and _matches(c, filters, bounds, exact=exact)
            ]
            rows.sort(key=lambda c: (c.created, c.contact_id))
            for name, reverse in reversed(sorts):
                rows.sort(key=lambda c, name=name: _sort_key(c, name), reverse=reverse)  # type: ignore[misc]
            page, per_page = _paging(request)
            chunk = rows[(page - 1) * per_page : page * per_page]
            items = [c.listed(self._campaigns[c.campaign_id], self.url) for c in chunk]
        wanted = request.arg("fields")
        if wanted:
            keep = {f.strip() for f in wanted.split(",")} | {"contactId"}
            items = [{k: v for k, v in item.items() if k in keep} for item in items]
        return Response.json(items, headers=_paging_headers(len(rows), page, per_page))

    def _get_contact(self, request: Request) -> Response:
        assert request.match is not None
        with self._data:
            contact = self._contacts.get(request.match["id"])
            if contact is None or contact.state != "active":
                return _error(404, CODE_NOT_FOUND, "Resource not found", {"resourceId": request.match["id"]})
            return Response.json(self._detail(contact))

    def _detail(self, contact: Contact) -> dict[str, Any]:
        return contact.detail(self._campaigns[contact.campaign_id], self.url, self._tags, self._fields)

    def _create(self, request: Request) -> Response:
        body = _json_object(request)
        if body is None:
            return _error(400, CODE_VALIDATION, "Validation error", {"body": "not a JSON object"})
        email = body.get("email")
        campaign = body.get("campaign")
        campaign_id = campaign.get("campaignId") if isinstance(campaign, dict) else None
        if not isinstance(email, str) or not EMAIL.match(email.strip()):
            return _error(400, CODE_VALIDATION, "Validation error", {"email": "invalid email"})
        with self._data:
            if campaign_id not in self._campaigns:
                return _error(400, CODE_VALIDATION, "Validation error", {"campaign": "invalid campaignId"})
            problem = self._check_extras(body)
            if problem:
                return _error(400, CODE_VALIDATION, "Validation error", problem)
            existing = self._by_email(email, str(campaign_id))
            if existing is not None and existing.state in ("active", "queued"):
                what = "Contact in queue" if existing.state == "queued" else "Contact already added"
                return _error(409, CODE_EXISTS, what, {"email": "exists"})
            now = self.now()
            contact = existing or Contact(
                contact_id=self._ids.new(),
                email=email.strip().lower(),
                campaign_id=str(campaign_id),
                created=now,
                changed=now,
            )
            contact.state = "queued"
            contact.visible_at = now + dt.timedelta(seconds=self.create_delay_s)
            self._apply(contact, body, replace=True)
            self._contacts[contact.contact_id] = contact
            self._settle()
        return Response.empty(202)

    def _check_extras(self, body: Mapping[str, Any]) -> dict[str, str] | None:
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 128):
            return {"name": "must be 1-128 characters"}
        tags = body.get("tags")
        if tags is not None and (
            not isinstance(tags, list) or any(not isinstance(t, dict) or t.get("tagId") not in self._tags for t in tags)
        ):
            return {"tags": "unknown tagId"}
        values = body.get("customFieldValues")
        if values is not None:
            if not isinstance(values, list):
                return {"customFieldValues": "must be a list"}
            for item in values:
                if not isinstance(item, dict) or item.get("customFieldId") not in self._fields:
                    return {"customFieldValues": "unknown customFieldId"}
                value = item.get("value")
                if not isinstance(value, list) or any(not isinstance(v, str) for v in value):
                    return {"customFieldValues": "value must be an array of strings"}
        return None

    def _apply(self, contact: Contact, body: Mapping[str, Any], *, replace: bool) -> None:
        if "name" in body:
            contact.name = body["name"]
        for key, attr in (("dayOfCycle", "day_of_cycle"), ("ipAddress", "ip_address"), ("note", "note")):
            if key in body:
                setattr(contact, attr, body[key])
        if "tags" in body:
            ids = [str(t["tagId"]) for t in body["tags"]]
            contact.tag_ids = ids if replace else list(dict.fromkeys([*contact.tag_ids, *ids]))
        if "customFieldValues" in body:
            values = {str(v["customFieldId"]): [str(x) for x in v["value"]] for v in body["customFieldValues"]}
            contact.values = values if replace else {**contact.values, **values}

    def _update(self, request: Request) -> Response:
        assert request.match is not None
        body = _json_object(request)
        if body is None:
            return _error(400, CODE_VALIDATION, "Validation error", {"body": "not a JSON object"})
        with self._data:
            contact = self._contacts.get(request.match["id"])
            if contact is None or contact.state != "active":
                return _error(404, CODE_NOT_FOUND, "Resource not found", {"resourceId": request.match["id"]})
            problem = self._check_extras(body)
            if problem:
                return _error(400, CODE_VALIDATION, "Validation error", problem)
            if "email" in body:
                email = body["email"]
                if not isinstance(email, str) or not EMAIL.match(email.strip()):
                    return _error(400, CODE_VALIDATION, "Validation error", {"email": "invalid email"})
                other = self._by_email(email, contact.campaign_id)
                if other is not None and other is not contact and other.state in ("active", "queued"):
                    return _error(409, CODE_EXISTS, "Contact already added", {"email": "exists"})
                contact.email = email.strip().lower()
            self._apply(contact, body, replace=True)
            contact.changed = self.now()
            return Response.json(self._detail(contact))

    def _delete(self, request: Request) -> Response:
        assert request.match is not None
        with self._data:
            contact = self._contacts.get(request.match["id"])
            if contact is None or contact.state != "active":
                return _error(404, CODE_NOT_FOUND, "Resource not found", {"resourceId": request.match["id"]})
            contact.state = "unsubscribed" if request.arg("messageId") else "removed"
            contact.changed = self.now()
        return Response.empty(204)

    def _add_tags(self, request: Request) -> Response:
        return self._additive(request, "tags")

    def _add_values(self, request: Request) -> Response:
        return self._additive(request, "customFieldValues")

    def _additive(self, request: Request, key: str) -> Response:
        assert request.match is not None
        body = _json_object(request)
        if body is None or not isinstance(body.get(key), list):
            return _error(400, CODE_VALIDATION, "Validation error", {key: "required"})
        with self._data:
            contact = self._contacts.get(request.match["id"])
            if contact is None or contact.state != "active":
                return _error(404, CODE_NOT_FOUND, "Resource not found", {"resourceId": request.match["id"]})
            problem = self._check_extras({key: body[key]})
            if problem:
                return _error(400, CODE_VALIDATION, "Validation error", problem)
            self._apply(contact, {key: body[key]}, replace=False)
            contact.changed = self.now()
            return Response.json(self._detail(contact))

    # -- handlers: tags, custom fields, search --------------------------------------------------
    def _list_tags(self, request: Request) -> Response:
        with self._data:
            rows = [
                {"tagId": t, "name": n, "href": f"{self.url}{V3}/tags/{t}", "color": ""} for t, n in self._tags.items()
            ]
        wanted = request.arg("query[name]")
        if wanted:
            rows = [r for r in rows if wanted.lower() in str(r["name"]).lower()]
        page, per_page = _paging(request)
        return Response.json(
            rows[(page - 1) * per_page : page * per_page], headers=_paging_headers(len(rows), page, per_page)
        )

    def _create_tag(self, request: Request) -> Response:
        body = _json_object(request)
        name = body.get("name") if body else None
        if not isinstance(name, str) or not TAG_NAME.match(name):
            return _error(400, CODE_VALIDATION, "Validation error", {"name": "tag names match ^[_a-zA-Z0-9]{2,64}$"})
        with self._data:
            if name in self._tags.values():
                return _error(409, CODE_EXISTS, "Tag already exists", {"name": "exists"})
            tag_id = self.add_tag(name)
        return Response.json({"tagId": tag_id, "name": name, "href": f"{self.url}{V3}/tags/{tag_id}", "color": ""}, 201)

    def _list_fields(self, request: Request) -> Response:
        with self._data:
            rows = list(self._fields.values())
        page, per_page = _paging(request)
        return Response.json(
            rows[(page - 1) * per_page : page * per_page], headers=_paging_headers(len(rows), page, per_page)
        )

    def _create_field(self, request: Request) -> Response:
        body = _json_object(request)
        name = body.get("name") if body else None
        if not isinstance(name, str) or not FIELD_NAME.match(name):
            return _error(400, CODE_VALIDATION, "Validation error", {"name": "lower-case letters, digits and _"})
        with self._data:
            if any(f["name"] == name for f in self._fields.values()):
                return _error(409, CODE_EXISTS, "Custom field already exists", {"name": "exists"})
            field_id = self.add_custom_field(name)
            return Response.json(self._fields[field_id], 201)

    def _search(self, request: Request) -> Response:
        body = _json_object(request)
        types = body.get("subscribersType") if body else None
        sections = body.get("section") if body else None
        if not isinstance(types, list) or not types or not set(types) <= SUBSCRIBER_TYPES:
            return _error(400, CODE_VALIDATION, "Validation error", {"subscribersType": "invalid"})
        if not isinstance(sections, list) or not sections:
            return _error(400, CODE_VALIDATION, "Validation error", {"section": "required"})
        campaigns: set[str] = set()
        for section in sections:
            if not isinstance(section, dict) or not isinstance(section.get("campaignIdsList"), list):
                return _error(400, CODE_VALIDATION, "Validation error", {"section": "campaignIdsList required"})
            if len(section.get("conditions") or []) > MAX_CONDITIONS:
                return _error(400, CODE_VALIDATION, "Validation error", {"conditions": "at most 8 per section"})
            campaigns.update(str(c) for c in section["campaignIdsList"])
        states = {"subscribed": {"active"}, "unconfirmed": {"queued"}, "removed": {"unsubscribed", "removed"}}
        wanted = {state for t in types for state in states.get(t, set())}
        with self._data:
            rows = [c for c in self._contacts.values() if c.state in wanted and c.campaign_id in campaigns]
            rows.sort(key=lambda c: (c.changed, c.contact_id))
            page, per_page = _paging(request)
            chunk = rows[(page - 1) * per_page : page * per_page]
            items = [c.listed(self._campaigns[c.campaign_id], self.url) for c in chunk]
        return Response.json(items, headers=_paging_headers(len(rows), page, per_page))


def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _paging(request: Request) -> tuple[int, int]:
    """``page`` from 1; ``perPage`` 1-1000, anything else read as the default 100 (not an error)."""
    try:
        page = max(int(request.arg("page") or 1), 1)
    except ValueError:
        page = 1
    try:
        per_page = int(request.arg("perPage") or DEFAULT_PER_PAGE)
    except ValueError:
        per_page = DEFAULT_PER_PAGE
    if not 1 <= per_page <= MAX_PER_PAGE:
        per_page = DEFAULT_PER_PAGE
    return page, per_page


def _paging_headers(total: int, page: int, per_page: int) -> dict[str, str]:
    return {"TotalCount": str(total), "TotalPages": str(-(-total // per_page)), "CurrentPage": str(page)}


def _bound(text: str, *, upper: bool) -> dt.datetime:
    """A date filter: a day (``2026-03-01``, the whole day) or a date-time; second precision."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        day = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
        return day + dt.timedelta(days=1, seconds=-1) if upper else day
    return parse_time(text).replace(microsecond=0)


def _matches(contact: Contact, filters: Mapping[str, str], bounds: Mapping[str, dt.datetime], *, exact: bool) -> bool:
    if "campaignId" in filters and contact.campaign_id not in filters["campaignId"].split(","):
        return False
    for key in ("email", "name"):
        if key in filters:
            value = (contact.email if key == "email" else contact.name or "").lower()
            wanted = filters[key].lower()
            if (value != wanted) if exact else (wanted not in value):
                return False
    if "origin" in filters and contact.origin != filters["origin"]:
        return False
    for key, bound in bounds.items():
        when = contact.created if key.startswith("createdOn") else contact.changed
        if (when < bound) if key.endswith("][from") else (when > bound):
            return False
    return True


def _sort_key(contact: Contact, name: str) -> Any:
    return {
        "changedOn": contact.changed,
        "createdOn": contact.created,
        "email": contact.email,
        "name": contact.name or "",
        "campaignId": contact.campaign_id,
    }[name]
