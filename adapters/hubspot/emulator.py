"""A local HTTP server that behaves like HubSpot's contacts, search and communication-preferences APIs.

Faithful to /work/shared/providers/hubspot.md: the same paths (``/crm/v3/...``), page sizes and caps
(list 100, batch 100, search 200 a page and 10,000 a query, 5 searches a second), error bodies (409
``Contact already exists. Existing ID: <id>``, 207 with ``errors``, 429 with ``policyName``), rate-limit
headers, merges that mint new ids, a read-only ``hs_email_optout`` and a v3 API that never resubscribes.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import json
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import unquote

from adapters._emulator import DROP, EmulatorServer, Fault, Request, Response
from adapters.hubspot import _emulator_search as search
from adapters.hubspot import webhooks
from adapters.hubspot._emulator_data import (
    Conflict,
    Portal,
    PropertyError,
    StoredContact,
    iso_ms,
)
from adapters.hubspot._emulator_limits import Limits
from adapters.hubspot._emulator_prefs import Preferences
from adapters.hubspot._emulator_wire import error

__all__ = ["DROP", "Fault", "HubSpotEmulator"]

TOKEN: Final = "pat-na1-emulator-token"  # noqa: S105 - the emulator's own test credential
CLIENT_SECRET: Final = "emulator-client-secret"  # noqa: S105
PORTAL_ID: Final = 4411
APP_ID: Final = 7788
SUBSCRIPTION_IDS: Final = {
    "contact.creation": 9001, "contact.propertyChange": 9002, "contact.deletion": 9003,
    "contact.merge": 9004, "contact.privacyDeletion": 9005,
}  # fmt: skip
LIST_PAGE_MAX: Final = 100  # https://developers.hubspot.com/docs/api/crm/contacts
BATCH_MAX: Final = 100
HISTORY_PAGE_MAX: Final = 50  # a list page or batch read that asks for propertiesWithHistory [providers/hubspot.md]
# https://github.com/HubSpot/HubSpot-public-api-spec-collection (CRM/Contacts v3): BatchReadInputSimplePublicObjectId
BATCH_READ_REQUIRED: Final = ("properties", "propertiesWithHistory")
CONTACTS: Final = "/crm/v3/objects/contacts"
PREFS_V3: Final = "/communication-preferences/v3"
PREFS_V4: Final = "/communication-preferences/v4/statuses"
READ_ROUTES: Final = r"GET /crm|/search|/batch/read"
WRITE_ROUTES: Final = r"/batch/(upsert|update|create|archive)|(POST|PATCH|DELETE) /crm/v3/objects/contacts(/|$)"

_FIRST = ("Ana", "Bo", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jae", "Kofi", "Lena")
_LAST = ("Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jensen", "Khan")
_COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", None)
_TAGS = ("vip", "newsletter", "webinar", "partner")
_STAGES = ("lead", "customer", "evangelist", "other", None)


def _property_error(exc: PropertyError) -> Response:
    return error(
        400,
        exc.body_message(),
        "VALIDATION_ERROR",
        errors=[{"message": exc.message, "code": exc.code, "context": {"propertyName": [exc.name]}}],
    )


def _conflict(exc: Conflict) -> Response:
    return error(409, str(exc), "CONFLICT")


def _hide(payload: Any, hidden: set[str]) -> Any:
    if isinstance(payload, list):
        return [_hide(item, hidden) for item in payload]
    if isinstance(payload, dict):
        out = {k: _hide(v, hidden) for k, v in payload.items()}
        if isinstance(out.get("properties"), dict):
            out["properties"] = {k: v for k, v in out["properties"].items() if k not in hidden}
        return out
    return payload


def _no_delay(server: EmulatorServer) -> None:
    """Answers go out as two writes (head, body): without TCP_NODELAY, Nagle and delayed ACKs add ~40 ms a call.

    Accepted sockets inherit the option from the listening one on Linux. (Better done in the harness itself.)
    """
    listener = getattr(getattr(server, "_server", None), "socket", None)
    if isinstance(listener, socket.socket):
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class HubSpotEmulator:
    """HubSpot for tests, benchmarks and ``crmsync sandbox``; one portal, in memory, thread-safe."""

    def __init__(
        self,
        *,
        port: int = 0,
        latency_s: float = 0.0,
        burst: int = 100,
        interval_s: float = 10.0,
        daily: int = 250_000,
        search_per_s: int = 5,
        token: str = TOKEN,
        client_secret: str = CLIENT_SECRET,
        enterprise: bool = False,
    ) -> None:
        self.server = EmulatorServer(port=port, latency_s=latency_s)
        _no_delay(self.server)
        self.portal = Portal()
        self._order: list[int] = []  # contact ids ascending (_ids_in_order)
        self._order_key: tuple[int, str] | None = None
        # the Date header tells the portal's clock (which `advance` moves), as lastmodifieddate does
        self.server.clock = lambda: dt.datetime.fromtimestamp(self.portal.now_ms() / 1000, dt.UTC)
        self._initial: dict[str, float] = {
            "burst": burst, "interval_s": interval_s, "daily": daily, "search_per_s": search_per_s,
        }  # fmt: skip
        self.limits = Limits(burst=burst, interval_s=interval_s, daily=daily, search_per_s=search_per_s)
        self.tokens = {token}
        self.client_secret = client_secret
        self._enterprise_initially = enterprise
        self._events_lock = threading.Lock()
        self._knobs()
        self._routes()

    def _knobs(self) -> None:
        self.enterprise = self._enterprise_initially  # batch preferences calls need Marketing Hub Enterprise
        self.search_lag_s = 0.0  # the search index trails writes [SEARCH]
        # `after` is an opaque token in the spec (NextPage example "NTI1Cg%3D%3D"): True hands out and takes only
        # such tokens, as an implementation free to choose its cursors may; False keeps record ids and offsets
        self.opaque_cursors = False
        self.search_page_cap: int | None = None  # `limit` is a maximum: serve at most this many a search page
        # how `properties=` in a query is read: "any" (repeated and comma-separated, as HubSpot does), "repeated"
        # (the spec's explode=true, one name a value), "first" or "last" (only that value, split on commas)
        self.query_style = "any"
        self.hidden_properties: set[str] = set()  # a portal (or clone) that never returns these properties
        self.events: list[dict[str, Any]] = []  # webhook events of user actions, oldest first
        self.refusals: Counter[str] = Counter()  # address -> batch writes still to refuse ([refuse_writes])
        self.refused_subscribers: dict[str, int] = {}  # address -> v4's status for it ([refuse_subscriber])
        self._event_ids = 0

    def reset(self) -> None:
        """A fresh portal on the same server: data, faults, counters, limits and knobs as at construction."""
        self.portal.clear()
        self.server.clear_faults()
        self.server.reset_counters()
        self.server.latency_s = 0.0
        for name, value in self._initial.items():
            setattr(self.limits, name, value)
        self.limits.reset()
        with self._events_lock:
            self._knobs()

    # -- lifecycle and harness knobs ---------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> HubSpotEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> HubSpotEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def latency_s(self) -> float:
        return self.server.latency_s

    @latency_s.setter
    def latency_s(self, value: float) -> None:
        self.server.latency_s = value

    def inject(self, *faults: Fault) -> None:
        self.server.inject(*faults)

    def call_count(self, method: str | None = None, pattern: str | None = None) -> int:
        return self.server.call_count(method, pattern)

    def refuse_writes(self, email: str, times: int = 1) -> None:
        """A partial batch failure: the next ``times`` batch writes of this address fail record by record (a
        207 item error of a category worth retrying) while the rest of each batch goes through.
        """
        with self.portal.lock:
            self.refusals[email.strip().lower()] += times

    def refuse_subscriber(self, email: str, status: int = 400) -> None:
        """Communication Preferences v4 refuses this address for good: 400 VALIDATION_ERROR naming it (a malformed
        address), or 404 OBJECT_NOT_FOUND naming it (an unknown subscriber); batch calls holding it are refused whole.
        """
        self.refused_subscribers[email.strip().lower()] = status

    def _refused(self, email: str, context: dict[str, list[str]]) -> dict[str, Any] | None:
        key = email.strip().lower()
        with self.portal.lock:
            if self.refusals[key] <= 0:
                return None
            self.refusals[key] -= 1
        return {"status": "error", "category": "INTERNAL_ERROR", "message": "The record is busy; try again later",
                "context": context}  # fmt: skip

    def reads(self) -> int:
        """Calls that read contacts: list pages, searches, batch reads, gets."""
        return self.server.call_count(pattern=READ_ROUTES)

    def writes(self) -> int:
        """Calls that write contacts (communication preferences not included)."""
        return self.server.call_count(pattern=WRITE_ROUTES) - self.server.call_count(pattern=r"/batch/read")

    def reset_counters(self) -> None:
        self.server.reset_counters()

    def sandbox_options(self) -> dict[str, Any]:
        return {
            "type": "hubspot",
            "base_url": self.url,
            "access_token": next(iter(sorted(self.tokens))),
            "client_secret": self.client_secret,
            "rate_limit": f"{self.limits.burst}/{self.limits.interval_s:g}s",
        }

    # -- data knobs --------------------------------------------------------------------------
    def seed(self, n: int, *, prefix: str = "contact", modified_at: dt.datetime | None = None) -> list[str]:
        """``n`` contacts ``<prefix><i>@example.com`` with a realistic mix; returns their ids."""
        rng = random.Random(f"{prefix}:{n}")  # noqa: S311 - sample data, not secrets
        ids = []
        at_ms = int(modified_at.timestamp() * 1000) if modified_at else None
        with self.portal.lock:
            for i in range(n):
                props: dict[str, Any] = {
                    "email": f"{prefix}{i}@example.com",
                    "firstname": rng.choice(_FIRST),
                    "lastname": rng.choice(_LAST),
                }
                extra = {
                    "company": rng.choice(_COMPANIES),
                    # fictional numbers: +1 202 555-0100..0199
                    "phone": f"+1202555{rng.randrange(100, 200):04d}" if rng.random() < 0.6 else None,
                    "lifecyclestage": rng.choice(_STAGES),
                    "crmsync_tags": ";".join(sorted(rng.sample(_TAGS, rng.randrange(0, 3)))) or None,
                    "city": rng.choice(("Lisbon", "Oslo", "Austin", None)),
                }
                props.update({k: v for k, v in extra.items() if v})
                contact = self.portal.create(props)
                if rng.random() < 0.1:
                    contact.props["hs_email_optout"] = "true"
                if at_ms is not None:
                    contact.updated_ms = at_ms
                ids.append(contact.id)
        return ids

    def edit(self, contact_id: str, *, at: dt.datetime | None = None, **props: Any) -> None:
        """A user edits a contact in HubSpot: ``lastmodifieddate`` moves (to ``at`` when given)."""
        contact = self._must(contact_id)
        self.portal.update(contact, props, at_ms=int(at.timestamp() * 1000) if at else None, source="CRM_UI")
        for name, value in props.items():
            self._event("contact.propertyChange", contact.id, propertyName=name, propertyValue=str(value or ""))

    def touch(self, ids: list[str], *, at: dt.datetime) -> None:
        """Set ``lastmodifieddate`` of many contacts to one instant (bulk imports share timestamps)."""
        with self.portal.lock:
            for contact_id in ids:
                self._must(contact_id).updated_ms = int(at.timestamp() * 1000)

    def unsubscribe(self, email: str) -> None:
        """The person clicks "unsubscribe from all"."""
        self.portal.unsubscribe_all(email, source="EMAIL")
        contact = self.portal.resolve(email, "email")
        if contact is not None:
            self._event("contact.propertyChange", contact.id, propertyName="hs_email_optout", propertyValue="true")

    def delete(self, contact_id: str) -> None:
        contact = self._must(contact_id)
        self.portal.archive(contact)
        self._event("contact.deletion", contact.id)

    def merge(self, primary_id: str, other_id: str) -> str:
        """A user merges two contacts; returns the survivor's id (new unless id preservation is on)."""
        primary, other = self._must(primary_id).id, self._must(other_id).id
        survivor = self.portal.merge(primary, other).id
        self._event("contact.merge", primary, primaryObjectId=int(primary), mergedObjectIds=[int(other)],
                    newObjectId=int(survivor), numberOfPropertiesMoved=0)  # fmt: skip
        self._event("contact.deletion", other)  # merged-away records also fire a deletion (3P)
        return survivor

    def create(self, **props: Any) -> str:
        """A user creates a contact in HubSpot (a ``contact.creation`` event)."""
        contact = self.portal.create(props)
        contact.props.setdefault("hs_email_optout", "false")
        self._event("contact.creation", contact.id, changeFlag="NEW")
        return contact.id

    # -- webhooks ----------------------------------------------------------------------------
    def _event(self, kind: str, object_id: str, **extra: Any) -> None:
        with self._events_lock:
            self._event_ids += 1
            self.events.append({
                "eventId": self._event_ids, "subscriptionId": SUBSCRIPTION_IDS.get(kind, 9000), "portalId": PORTAL_ID,
                "appId": APP_ID, "occurredAt": self.portal.now_ms(), "subscriptionType": kind, "attemptNumber": 0,
                "objectId": int(object_id), "changeSource": "CRM", **extra,
            })  # fmt: skip

    def take_events(self) -> list[dict[str, Any]]:
        """The events HubSpot would deliver for what users did since the last call (knobs only, not API writes)."""
        with self._events_lock:
            taken, self.events = self.events, []
        return taken

    def webhook_delivery(
        self, *, url: str, events: list[dict[str, Any]] | None = None, timestamp_ms: int | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of one delivery to ``url``, signed v3 with this app's client secret."""
        body = json.dumps(self.take_events() if events is None else events).encode()
        stamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
        signature = webhooks.sign_v3(self.client_secret, method="POST", uri=url, body=body, timestamp=stamp)
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": signature,
            "X-HubSpot-Request-Timestamp": stamp,
        }
        return headers, body

    def advance(self, seconds: float) -> None:
        """Move the portal clock forward (timestamps of later edits)."""
        self.portal.offset_ms += int(seconds * 1000)

    def get(self, contact_id: str) -> dict[str, Any] | None:
        """The contact's record JSON with all its properties, following merges; None when gone."""
        contact = self.portal.resolve(contact_id)
        if contact is None:
            return None
        return contact.view((*sorted(contact.props), "hs_merged_object_ids"))

    def find(self, email: str) -> dict[str, Any] | None:
        contact = self.portal.resolve(email, "email")
        return self.get(contact.id) if contact else None

    def count(self) -> int:
        return len(self.portal.live())

    def _must(self, contact_id: str) -> StoredContact:
        contact = self.portal.resolve(contact_id)
        if contact is None:
            raise KeyError(contact_id)
        return contact

    # -- routing -----------------------------------------------------------------------------
    def _add(self, method: str, pattern: str, handler: Callable[[Request], Response]) -> None:
        def guarded(request: Request) -> Response:
            auth = request.headers.get("authorization", "")
            token = auth[7:] if auth.lower().startswith("bearer ") else ""
            if token not in self.tokens:
                return error(401, "Authentication credentials not found.", "INVALID_AUTHENTICATION")
            is_search = request.path.endswith("/search")
            refused, headers = self.limits.check(token, search=is_search)
            if refused is not None:
                return Response.json(refused, 429, headers)
            response = handler(request)
            if self.hidden_properties and response.body:
                response.body = json.dumps(_hide(json.loads(response.body), self.hidden_properties)).encode()
            response.headers.update(headers)
            response.headers["X-HubSpot-Correlation-Id"] = str(uuid.uuid4())
            return response

        self.server.add_route(method, pattern, guarded)

    def _routes(self) -> None:
        add = self._add
        prefs = Preferences(self.portal, enterprise=lambda: self.enterprise, refused=lambda: self.refused_subscribers)
        add("GET", CONTACTS, self._list)
        add("POST", CONTACTS, self._create)
        add("POST", CONTACTS + "/search", self._search)
        add("POST", CONTACTS + "/batch/read", self._batch_read)
        add("POST", CONTACTS + "/batch/upsert", self._batch_upsert)
        add("POST", CONTACTS + "/batch/update", self._batch_update)
        add("POST", CONTACTS + "/batch/create", self._batch_create)
        add("POST", CONTACTS + "/batch/archive", self._batch_archive)
        add("POST", CONTACTS + "/merge", self._merge)
        add("POST", CONTACTS + "/gdpr-delete", self._gdpr_delete)
        add("GET", CONTACTS + r"/(?P<id>[^/]+)", self._get)
        add("PATCH", CONTACTS + r"/(?P<id>[^/]+)", self._patch)
        add("DELETE", CONTACTS + r"/(?P<id>[^/]+)", self._delete)
        add("GET", PREFS_V3 + "/definitions", prefs.definitions)
        add("GET", PREFS_V3 + r"/status/email/(?P<email>[^/]+)", prefs.v3_status)
        add("POST", PREFS_V3 + "/unsubscribe", prefs.v3_unsubscribe)
        add("POST", PREFS_V3 + "/subscribe", prefs.v3_subscribe)
        add("POST", PREFS_V4 + "/batch/unsubscribe-all", prefs.v4_batch_unsubscribe_all)
        add("POST", PREFS_V4 + "/batch/unsubscribe-all/read", prefs.v4_batch_wide_statuses)
        add("GET", PREFS_V4 + r"/(?P<email>[^/]+)/unsubscribe-all", prefs.v4_wide_status)
        add("POST", PREFS_V4 + r"/(?P<email>[^/]+)/unsubscribe-all", prefs.v4_unsubscribe_all)
        add("GET", PREFS_V4 + r"/(?P<email>[^/]+)", prefs.v4_statuses)

    # -- contacts ----------------------------------------------------------------------------
    def _properties(self, request: Request, key: str = "properties") -> tuple[str, ...] | None:
        values = request.query.get(key, [])
        if self.query_style == "repeated":
            return tuple(v for v in values if v) or None
        if self.query_style == "first":
            values = values[:1]
        elif self.query_style == "last":
            values = values[-1:]
        names = [n for raw in values for n in raw.split(",") if n]
        return tuple(names) or None

    def _cursor_out(self, position: int | str) -> str:
        if not self.opaque_cursors:
            return str(position)
        return base64.urlsafe_b64encode(f"hs:{position}".encode()).decode()

    def _cursor_in(self, token: str | None) -> int:
        """The position an ``after`` names; ValueError (a 400) for a token this portal never handed out."""
        if not token:
            return 0
        if not self.opaque_cursors:
            return int(token)
        try:
            text = base64.urlsafe_b64decode(token.encode()).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError("Invalid paging cursor: after") from exc
        if not text.startswith("hs:") or not text[3:].isdigit():
            raise ValueError("Invalid paging cursor: after")
        return int(text[3:])

    def _list(self, request: Request) -> Response:
        limit = int(request.arg("limit") or 10)
        history = self._properties(request, "propertiesWithHistory") or ()
        most = HISTORY_PAGE_MAX if history else LIST_PAGE_MAX
        if not 0 < limit <= most:
            return error(400, f"limit must be between 1 and {most}", "VALIDATION_ERROR")
        archived = (request.arg("archived") or "false").lower() == "true"
        try:
            after = self._cursor_in(request.arg("after"))
        except ValueError as exc:
            return error(400, str(exc), "VALIDATION_ERROR")
        with self.portal.lock:
            ids = self._ids_in_order()
            rows = []  # a page and one more (is there a next page?), found from the position after ``after``
            for position in range(bisect.bisect_right(ids, after), len(ids)):
                contact = self.portal.contacts[str(ids[position])]
                if contact.archived == archived:
                    rows.append(contact)
                    if len(rows) > limit:
                        break
            wanted = self._properties(request)
            page = [c.view(wanted, history) for c in rows[:limit]]
        body: dict[str, Any] = {"results": page}
        if len(rows) > limit:
            nxt = self._cursor_out(page[-1]["id"])
            body["paging"] = {"next": {"after": nxt, "link": f"{self.url}{CONTACTS}?after={nxt}"}}
        return Response.json(body)

    def _ids_in_order(self) -> list[int]:
        """Contact ids ascending, sorted again only when the set of ids changed: a listing must not sort 100k
        contacts for every page (the real API is not quadratic). A create takes a new id; a delete or a merge
        shrinks the set; so its size and the newest id tell a change. Called under the portal lock.
        """
        key = (len(self.portal.contacts), self.portal.newest_id)
        if key != self._order_key:
            self._order = sorted(int(i) for i in self.portal.contacts)
            self._order_key = key
        return self._order

    def _get(self, request: Request) -> Response:
        assert request.match is not None
        contact = self.portal.resolve(unquote(request.match["id"]), request.arg("idProperty"))
        if contact is None:
            return error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND")
        history = self._properties(request, "propertiesWithHistory") or ()
        return Response.json(contact.view(self._properties(request), history))

    def _create(self, request: Request) -> Response:
        props = (request.json() or {}).get("properties") or {}
        try:
            Portal.check_names(props)
            if not any(props.get(k) for k in ("email", "firstname", "lastname")):
                return error(400, "Contact needs one of email, firstname or lastname", "VALIDATION_ERROR")
            contact = self.portal.create(props)
        except PropertyError as exc:
            return _property_error(exc)
        except Conflict as exc:
            return _conflict(exc)
        return Response.json(contact.view(tuple(props)), 201)

    def _patch(self, request: Request) -> Response:
        assert request.match is not None
        props = (request.json() or {}).get("properties") or {}
        with self.portal.lock:
            contact = self.portal.resolve(unquote(request.match["id"]), request.arg("idProperty"))
            if contact is None:
                return error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND")
            try:
                Portal.check_names(props)
                self.portal.update(contact, props)
            except PropertyError as exc:
                return _property_error(exc)
            except Conflict as exc:
                return _conflict(exc)
            return Response.json(contact.view(tuple(props)))

    def _delete(self, request: Request) -> Response:
        assert request.match is not None
        contact = self.portal.resolve(unquote(request.match["id"]))
        if contact is not None:
            self.portal.archive(contact)
        return Response.empty(204)

    def _search(self, request: Request) -> Response:
        try:
            body = request.json() or {}
            search.validate(body, len(request.body))
            offset, limit = self._cursor_in(body.get("after")), int(body.get("limit") or 10)
            search.check_offset(offset)
            served = min(limit, self.search_page_cap or limit)
            lag_ms = int(self.search_lag_s * 1000)
            horizon = self.portal.now_ms() - lag_ms
            with self.portal.lock:
                visible = self.portal.live()
                if lag_ms:
                    visible = [c for c in visible if c.updated_ms <= horizon]
                found, total = search.run(visible, body)
                end = min(offset + served, search.SEARCH_RESULT_CAP)
                wanted = tuple(body.get("properties") or ()) or None
                page = [c.view(wanted) for c in found[offset:end]]
        except (search.SearchError, ValueError) as exc:
            return error(400, str(exc), "VALIDATION_ERROR")
        out: dict[str, Any] = {"total": total, "results": page}
        if offset + served < total:
            out["paging"] = {"next": {"after": self._cursor_out(offset + served)}}
        return Response.json(out)

    @staticmethod
    def _inputs(request: Request) -> list[dict[str, Any]]:
        inputs = (request.json() or {}).get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise search.SearchError("inputs must be a non-empty array")
        if len(inputs) > BATCH_MAX:
            raise search.SearchError(f"Batch size must be at most {BATCH_MAX}; got {len(inputs)}")
        return inputs

    @staticmethod
    def _batch_body(results: list[dict[str, Any]], errors: list[dict[str, Any]], started: int) -> Response:
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso_ms(started),
            "completedAt": iso_ms(started + 1),
        }
        if errors:
            body.update({"numErrors": len(errors), "errors": errors})
        return Response.json(body, 207 if errors else 200)

    @staticmethod
    def _record_error(exc: PropertyError, context: dict[str, list[str]]) -> dict[str, Any]:
        return {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": exc.body_message(),
            "context": context,
            "errors": [{"message": exc.message, "code": exc.code, "context": {"propertyName": [exc.name]}}],
        }

    def _batch_read(self, request: Request) -> Response:
        try:
            inputs = self._inputs(request)
        except search.SearchError as exc:
            return error(400, str(exc), "VALIDATION_ERROR")
        body = request.json()
        missing_keys = [k for k in BATCH_READ_REQUIRED if not isinstance(body.get(k), list)]
        if missing_keys:  # required by the spec (BatchReadInputSimplePublicObjectId): [] asks for none
            return error(400, f"Invalid input JSON: missing required field(s) {', '.join(missing_keys)}",
                         "VALIDATION_ERROR")  # fmt: skip
        wanted = tuple(body.get("properties") or ()) or None
        history = tuple(body.get("propertiesWithHistory") or ())
        if history and len(inputs) > HISTORY_PAGE_MAX:
            return error(400, f"Batch size must be at most {HISTORY_PAGE_MAX} with propertiesWithHistory; "
                              f"got {len(inputs)}", "VALIDATION_ERROR")
        results: list[dict[str, Any]] = []
        missing: list[str] = []
        for item in inputs:
            key = str(item.get("id", ""))
            contact = self.portal.resolve(key, body.get("idProperty"))
            if contact is None:
                missing.append(key)
            elif all(r["id"] != contact.id for r in results):
                results.append(contact.view(wanted, history))
        errors = []
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some CONTACT objects, they may be deleted or not exist. "
                    "Check that ids are valid.",
                    "context": {"ids": missing},
                }
            )
        return self._batch_body(results, errors, self.portal.now_ms())

    def _batch_upsert(self, request: Request) -> Response:
        try:
            inputs = self._inputs(request)
            keys = self._upsert_keys(inputs)
        except search.SearchError as exc:
            return error(400, str(exc), "VALIDATION_ERROR")
        except PropertyError as exc:
            return _property_error(exc)
        started = self.portal.now_ms()
        results, errors = [], []
        with self.portal.lock:
            for key, item in zip(keys, inputs, strict=True):
                props = dict(item.get("properties") or {})
                context = {"ids": [key]}
                if item.get("objectWriteTraceId"):
                    context["objectWriteTraceId"] = [str(item["objectWriteTraceId"])]
                refused = self._refused(key, context)
                if refused is not None:
                    errors.append(refused)
                    continue
                try:
                    contact, new = self._upsert_one(key, props)
                except PropertyError as exc:
                    errors.append(self._record_error(exc, context))
                    continue
                except Conflict as exc:
                    return _conflict(exc)
                result = {**contact.view(tuple(props) or ("email",)), "new": new}
                if item.get("objectWriteTraceId") is not None:
                    result["objectWriteTraceId"] = str(item["objectWriteTraceId"])
                results.append(result)
        return self._batch_body(results, errors, started)

    @staticmethod
    def _upsert_keys(inputs: list[dict[str, Any]]) -> list[str]:
        keys = [str(i.get("id", "")).strip().lower() for i in inputs]
        if any(i.get("idProperty") != "email" for i in inputs):
            raise search.SearchError("idProperty must be a unique property such as email")
        if len(set(keys)) != len(keys):
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            raise search.SearchError(f"Duplicate IDs found in batch input: {dupes}")
        for item in inputs:
            Portal.check_names(item.get("properties") or {})
        return keys

    def _upsert_one(self, key: str, props: dict[str, Any]) -> tuple[StoredContact, bool]:
        self.portal.check_values({**props, "email": key})
        existing = self.portal.resolve(key, "email")
        if existing is not None and existing.props.get("email", "").lower() != key:
            raise Conflict(existing.id)  # an additional email of another contact [Pitfall 5]
        if existing is None:
            return self.portal.create({**props, "email": key}), True
        self.portal.update(existing, props)
        return existing, False

    def _checked_inputs(self, request: Request) -> list[dict[str, Any]] | Response:
        """A batch's inputs with every property name checked, or the 400 HubSpot answers for the whole call."""
        try:
            inputs = self._inputs(request)
            for item in inputs:
                Portal.check_names(item.get("properties") or {})
        except search.SearchError as exc:
            return error(400, str(exc), "VALIDATION_ERROR")
        except PropertyError as exc:
            return _property_error(exc)
        return inputs

    def _batch_update(self, request: Request) -> Response:
        inputs = self._checked_inputs(request)
        if isinstance(inputs, Response):
            return inputs
        started = self.portal.now_ms()
        results, errors, missing = [], [], []
        with self.portal.lock:
            for item in inputs:
                key = str(item.get("id", ""))
                props = dict(item.get("properties") or {})
                contact = self.portal.resolve(key, item.get("idProperty"))
                if contact is None:
                    missing.append(key)
                    continue
                if contact.id != key and not item.get("idProperty"):
                    continue  # a merged-away id is left out of results silently (3P, RudderStack)
                refused = self._refused(str(contact.props.get("email") or ""), {"ids": [key]})
                if refused is not None:
                    errors.append(refused)
                    continue
                try:
                    self.portal.update(contact, props)
                except PropertyError as exc:
                    errors.append(self._record_error(exc, {"ids": [key]}))
                    continue
                except Conflict as exc:
                    return _conflict(exc)
                result = contact.view(tuple(props) or None)
                if item.get("objectWriteTraceId") is not None:
                    result["objectWriteTraceId"] = str(item["objectWriteTraceId"])
                results.append(result)
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Object not found",
                    "context": {"ids": missing},
                }
            )
        return self._batch_body(results, errors, started)

    def _batch_create(self, request: Request) -> Response:
        inputs = self._checked_inputs(request)
        if isinstance(inputs, Response):
            return inputs
        started = self.portal.now_ms()
        results, errors = [], []
        with self.portal.lock:
            for item in inputs:
                props = dict(item.get("properties") or {})
                trace = item.get("objectWriteTraceId")
                refused = (
                    self._refused(str(props.get("email") or ""), {"objectWriteTraceId": [str(trace)]})
                    if trace
                    else None
                )
                if refused is not None:
                    errors.append(refused)
                    continue
                try:
                    contact = self.portal.create(props)
                except PropertyError as exc:
                    if not trace:  # 207 only when each input carries its own trace id [ERR]
                        return _property_error(exc)
                    errors.append(self._record_error(exc, {"objectWriteTraceId": [str(trace)]}))
                    continue
                except Conflict as exc:
                    return _conflict(exc)
                results.append(contact.view(tuple(props)))
        response = self._batch_body(results, errors, started)
        response.status = 207 if errors else 201
        return response

    def _batch_archive(self, request: Request) -> Response:
        try:
            inputs = self._inputs(request)
        except search.SearchError as exc:
            return error(400, str(exc), "VALIDATION_ERROR")
        for item in inputs:
            contact = self.portal.resolve(str(item.get("id", "")))
            if contact is not None:
                self.portal.archive(contact)
        return Response.empty(204)

    def _merge(self, request: Request) -> Response:
        body = request.json() or {}
        try:
            survivor = self.portal.merge(str(body.get("primaryObjectId")), str(body.get("objectIdToMerge")))
        except KeyError:
            return error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND")
        except ValueError as exc:
            return error(400, str(exc), "VALIDATION_ERROR")
        return Response.json(survivor.view(None))

    def _gdpr_delete(self, request: Request) -> Response:
        body = request.json() or {}
        try:
            self.portal.erase(str(body.get("objectId", "")), body.get("idProperty"))
        except KeyError:
            return error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND")
        return Response.empty(204)
