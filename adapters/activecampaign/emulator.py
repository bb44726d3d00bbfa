"""A local ActiveCampaign API v3 (contacts, lists, tags, fields, bulk import, webhooks) for tests and sandbox.

Behaviour follows /work/shared/providers/activecampaign.md: ``/api/3`` paths, the ``Api-Token`` header,
``limit`` max 100 with ``offset`` or ``orders[id]``/``id_greater`` keyset paging, ``filters[updated_after]``
(not sorted by ``udate``), ``meta.total`` as a string, ``udate`` in the account's offset, sideloading with
``include=`` (https://help.prospect2.com/article/727-custom-preference-center, 3P), per-list opt-out that
an API call never reverses without ``sourceid: 4``, bulk import (<= 250 a call, <= 100 calls a minute,
no webhooks, no resubscribe), 5 requests a second per account (429 + ``Retry-After``) and form-encoded
webhooks that leave out the ``api`` source when not asked for. Deletes leave no trace and fire nothing.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlencode

import requests

from adapters._emulator import EmulatorServer, Request, Response
from adapters.activecampaign._emulator_store import SUBSCRIBED, UNSUBSCRIBED, Account, Contact

PREFIX: Final = "/api/3"
MAX_LIMIT: Final = 100  # GET /contacts: limit max 100 [pagination]
MAX_IMPORT: Final = 250  # POST /import/bulk_import: <= 250 contacts [SPEC]
IMPORTS_PER_MINUTE: Final = 100  # bulk import throttle [SPEC]
RATE_PER_S: Final = 5  # per account [rate-limits]
DEFAULT_TOKEN: Final = "emulator-ac-token-0123456789abcdef0123456789abcdef"  # noqa: S105 - a fixture
DEFAULT_LIST: Final = "1"
EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_FIRST: Final = ("Ana", "Bo", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jun")
_LAST: Final = ("Silva", "Berg", "Okafor", "Novak", "Kaur", "Meyer", "Rossi", "Tanaka", "Haddad", "Lund")
_COMPANIES: Final = ("Acme Ltd", "Globex", "Initech", "Umbrella plc", "Hooli", "")
_C = r"/contacts/(?P<id>[^/]+)"


def _errors(status: int, title: str, code: str, pointer: str = "/data/attributes/email") -> Response:
    """AC's 422 shape: ``{"errors": [{"title", "detail", "code", "source": {"pointer"}}]}``."""
    body = {"errors": [{"title": title, "detail": "", "code": code, "source": {"pointer": pointer}}]}
    return Response.json(body, status)


def _message(status: int, message: str) -> Response:
    return Response.json({"message": message}, status)


class ActiveCampaignEmulator(EmulatorServer):
    """ActiveCampaign on 127.0.0.1: one account, seeding, user-like edits, faults and call counters.

    Reads are GETs and writes everything else (``read_calls()`` / ``write_calls()``); ``call_count``
    counts per route. ``rate_limit`` (calls per second, default off so tests stay quick) answers 429
    with ``Retry-After`` above it, as ActiveCampaign does at 5/s.
    """

    def __init__(
        self,
        *,
        api_token: str = DEFAULT_TOKEN,
        list_id: str = DEFAULT_LIST,
        clock: Callable[[], dt.datetime] | None = None,
        offset_hours: float = -5.0,
        rate_limit: int | None = None,
        latency_s: float = 0.0,
        port: int = 0,
    ) -> None:
        super().__init__(port=port, latency_s=latency_s)
        self.api_token = api_token
        self.list_id = list_id
        self.account = Account(
            clock=clock or (lambda: dt.datetime.now(dt.UTC)),
            offset=dt.timedelta(hours=offset_hours),
            list_ids={list_id, "2"},
        )
        self.rate_limit = rate_limit
        self.rate_limited = 0
        self.webhook_log: list[tuple[str, str, int]] = []  # (type, initiated_from, HTTP status; 0 = unreachable)
        self._webhooks: dict[str, dict[str, Any]] = {}
        self._imports: dict[str, dict[str, Any]] = {}
        self._import_times: deque[float] = deque()
        self._calls_window: deque[float] = deque()
        self._gate = threading.Lock()
        self.before_request = self._gatekeeper
        self._register()

    # -- knobs --------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return self.url  # the account URL; the adapter adds /api/3 as for https://<acct>.api-us1.com

    def sandbox_options(self) -> dict[str, Any]:
        """The crmsync ``[providers.activecampaign]`` options that reach this emulator."""
        return {
            "type": "activecampaign",
            "api_url": self.url,
            "base_url": self.url,
            "api_token": self.api_token,
            "list_id": self.list_id,
        }

    def start(self) -> ActiveCampaignEmulator:
        super().start()
        return self

    def __enter__(self) -> ActiveCampaignEmulator:
        return self.start()

    def read_calls(self) -> int:
        return self.call_count("GET")

    def write_calls(self) -> int:
        return sum(self.call_count(m) for m in ("POST", "PUT", "DELETE"))

    def seed(self, n: int, *, prefix: str = "contact") -> list[str]:
        """Add ``n`` contacts ``<prefix><i>@example.com``: names, companies, tags, mostly subscribed."""
        ids = []
        for i in range(n):
            contact = self.account.create(f"{prefix}{i}@example.com")
            self.account.update(
                contact,
                {"firstName": _FIRST[i % 10], "lastName": _LAST[(i // 10) % 10], "phone": f"+1555010{i % 10000:04d}"},
            )
            company = _COMPANIES[i % len(_COMPANIES)]
            if company:
                self.account.set_value(contact, "1", company)
            if i % 3 == 0:
                self.account.add_tag(contact, str(self.account.tag_id("customer", create=True)))
            if i % 7 == 0:
                self.account.add_tag(contact, str(self.account.tag_id("vip", create=True)))
            if i % 10 != 9:  # one in ten is on no list at all
                status = UNSUBSCRIBED if i % 5 == 4 else SUBSCRIBED
                self.account.set_status(contact, self.list_id, status)
            ids.append(contact.id)
        return ids

    def find(self, email: str) -> dict[str, Any] | None:
        """The contact as the adapter sees it (contact JSON + ``listStatus``, ``tags``, ``fields``), or None."""
        with self.account.lock:
            contact = self.account.find(email)
            return self.view(contact) if contact is not None else None

    def get(self, contact_id: str) -> dict[str, Any] | None:
        with self.account.lock:
            contact = self.account.contacts.get(contact_id)
            return self.view(contact) if contact is not None else None

    def view(self, contact: Contact) -> dict[str, Any]:
        out = self.account.contact_json(contact, self.url + PREFIX)
        membership = contact.lists.get(self.list_id)
        out["listStatus"] = membership.status if membership else None
        out["tags"] = sorted(self.account.tags[t] for t in contact.tags)
        perstag = {fid: f["perstag"] for fid, f in self.account.fields.items()}
        out["fields"] = {perstag[fid]: v for fid, v in contact.values.items() if fid in perstag}
        return out

    def count(self) -> int:
        return len(self.account.contacts)

    def edit(self, contact_id: str, **props: Any) -> dict[str, Any]:
        """A user's edit in the AC UI: ``firstName``/``lastName``/``phone``/``email``, ``COMPANY``-style perstags,
        ``tags`` (replaces). Bumps ``udate`` and fires ``update`` webhooks from the ``admin`` source.
        """
        contact = self._need(contact_id)
        with self.account.lock:
            self.account.update(contact, props)
            for fid, f in self.account.fields.items():
                if f["perstag"] in props:
                    self.account.set_value(contact, fid, str(props[f["perstag"]]))
            if "tags" in props:
                contact.tags.clear()
                for name in props["tags"]:
                    self.account.add_tag(contact, str(self.account.tag_id(name, create=True)))
            snapshot = self.view(contact)
        self._notify("update", contact, source="admin")
        return snapshot

    def unsubscribe(self, email: str, *, list_id: str | None = None, touch: bool = True) -> None:
        """The person clicks "unsubscribe": list status 2, an ``unsubscribe`` webhook from ``public``.

        Whether AC bumps the contact's ``udate`` then is unconfirmed (pitfall 3): ``touch=False`` models the
        case where it does not, so only webhooks and the adapter's periodic sweep can see the change.
        """
        contact = self._need_email(email)
        self.account.set_status(contact, list_id or self.list_id, UNSUBSCRIBED, reason="clicked unsubscribe")
        if touch:
            self.account.update(contact, {})
        self._notify("unsubscribe", contact, source="public", extra={"unsubscribe[reason]": "clicked unsubscribe"})

    def subscribe(self, email: str, **props: Any) -> str:
        """A person signs up through a form: a new or existing contact subscribed (fires ``subscribe``)."""
        contact = self.account.find(email) or self.account.create(email)
        self.account.update(contact, props)
        current = contact.lists.get(self.list_id)
        if current is None or current.status != UNSUBSCRIBED:  # only the person re-subscribes, via a form
            self.account.set_status(contact, self.list_id, SUBSCRIBED)
        self._notify("subscribe", contact, source="public")
        return contact.id

    def delete(self, contact_id: str) -> None:
        """Delete in the UI: gone from every listing, and no webhook exists for it [SPEC]."""
        self.account.delete(self._need(contact_id))

    def _need(self, contact_id: str) -> Contact:
        contact = self.account.contacts.get(contact_id)
        if contact is None:
            raise KeyError(contact_id)
        return contact

    def _need_email(self, email: str) -> Contact:
        contact = self.account.find(email)
        if contact is None:
            raise KeyError("no such contact")
        return contact

    # -- gate: auth and the per-account rate -----------------------------------------------------
    def _gatekeeper(self, request: Request) -> Response | None:
        token = request.headers.get("api-token", "")
        if not hmac.compare_digest(token.encode(), self.api_token.encode()):
            return _message(403, "You are not authorized to access this resource")
        if self.rate_limit is None:
            return None
        with self._gate:
            now = time.monotonic()
            while self._calls_window and self._calls_window[0] <= now - 1.0:
                self._calls_window.popleft()
            if len(self._calls_window) >= self.rate_limit:
                self.rate_limited += 1
                retry = max(1, round(self._calls_window[0] + 1.0 - now))
                headers = {
                    "Retry-After": str(retry),
                    "RateLimit-Limit": str(self.rate_limit),
                    "RateLimit-Remaining": "0",
                }
                return Response.json({"message": "Too Many Requests"}, 429, headers)
            self._calls_window.append(now)
        return None

    # -- routes -----------------------------------------------------------------------------------
    def _register(self) -> None:
        add = self.add_route
        add("GET", PREFIX + "/contacts", self._list_contacts)
        add("GET", PREFIX + _C, self._get_contact)
        add("GET", PREFIX + _C + "/contactLists", lambda r: self._sub(r, "contactLists"))
        add("GET", PREFIX + _C + "/contactTags", lambda r: self._sub(r, "contactTags"))
        add("GET", PREFIX + _C + "/fieldValues", lambda r: self._sub(r, "fieldValues"))
        add("POST", PREFIX + "/contact/sync", self._sync)
        add("POST", PREFIX + "/contacts", self._create)
        add("PUT", PREFIX + _C, self._put)
        add("DELETE", PREFIX + _C, self._delete)
        add("POST", PREFIX + "/contactLists", self._contact_list)
        add("GET", PREFIX + "/tags", self._tags)
        add("POST", PREFIX + "/tags", self._create_tag)
        add("POST", PREFIX + "/contactTags", self._contact_tag)
        add("DELETE", PREFIX + r"/contactTags/(?P<id>[^/]+)", self._delete_contact_tag)
        add("GET", PREFIX + "/fields", self._fields)
        add("GET", PREFIX + r"/lists/(?P<id>[^/]+)", self._list)
        add("POST", PREFIX + "/import/bulk_import", self._bulk_import)
        add("GET", PREFIX + "/import/info", self._import_info)
        add("POST", PREFIX + "/webhooks", self._create_webhook)
        add("GET", PREFIX + "/webhooks", self._list_webhooks)
        add("DELETE", PREFIX + r"/webhooks/(?P<id>[^/]+)", self._delete_webhook)

    @property
    def _base(self) -> str:
        return self.url + PREFIX

    def _contact_or_404(self, request: Request) -> Contact | Response:
        assert request.match is not None
        cid = request.match["id"]
        contact = self.account.contacts.get(cid)
        if contact is None:
            return _message(404, f"No result found for contact with id {cid}")
        return contact

    def _list_contacts(self, request: Request) -> Response:
        q = request.query
        try:
            limit = min(int(request.arg("limit") or 20), MAX_LIMIT)
            offset = int(request.arg("offset") or 0)
            after_id = int(request.arg("id_greater") or 0)
        except ValueError:
            return _message(400, "Invalid pagination parameter")
        ids = {i for v in q.get("ids", []) + q.get("ids[]", []) for i in v.split(",") if i}
        bounds = {}
        for name in ("updated_after", "updated_before", "created_after", "created_before"):
            raw = request.arg(f"filters[{name}]")
            if raw:
                try:
                    bounds[name] = _parse_time(raw)
                except ValueError:
                    return _message(400, f"Invalid date for filters[{name}]")
        email, listid, status = request.arg("email"), request.arg("listid"), request.arg("status")
        with self.account.lock:
            rows = sorted(self.account.contacts.values(), key=lambda c: int(c.id))
            if (request.arg("orders[id]") or "ASC").upper() == "DESC":
                rows.reverse()
            picked = [
                c
                for c in rows
                if int(c.id) > after_id
                and (not ids or c.id in ids)
                and (email is None or c.email.lower() == email.strip().lower())
                and (listid is None or listid in c.lists)
                and (status is None or listid is None or c.lists[listid].status == status)
                and ("updated_after" not in bounds or c.udate > bounds["updated_after"])
                and ("updated_before" not in bounds or c.udate < bounds["updated_before"])
                and ("created_after" not in bounds or c.cdate > bounds["created_after"])
                and ("created_before" not in bounds or c.cdate < bounds["created_before"])
            ]
            page = picked[offset : offset + limit]
            body: dict[str, Any] = {
                "contacts": [self.account.contact_json(c, self._base) for c in page],
                "meta": {"total": str(len(picked)), "page_input": {"limit": limit, "offset": offset}},
            }
            self._sideload(body, page, request.arg("include") or "")
        return Response.json(body)

    def _sideload(self, body: dict[str, Any], contacts: list[Contact], include: str) -> None:
        wanted = {part.strip() for part in include.split(",") if part.strip()}
        if "contactLists" in wanted:
            body["contactLists"] = [row for c in contacts for row in self.account.lists_json(c)]
        if wanted & {"contactTags", "contactTags.tag"}:
            body["contactTags"] = [row for c in contacts for row in self.account.tags_json(c)]
        if "contactTags.tag" in wanted:
            used = {t for c in contacts for t in c.tags}
            body["tags"] = [{"id": t, "tag": self.account.tags[t], "tagType": "contact"} for t in sorted(used, key=int)]
        if "fieldValues" in wanted:
            body["fieldValues"] = [row for c in contacts for row in self.account.values_json(c)]

    def _get_contact(self, request: Request) -> Response:
        found = self._contact_or_404(request)
        if isinstance(found, Response):
            return found
        with self.account.lock:  # GET /contacts/{id} sideloads its related rows [SPEC example]
            body = {
                "contact": self.account.contact_json(found, self._base),
                "contactLists": self.account.lists_json(found),
                "contactTags": self.account.tags_json(found),
                "fieldValues": self.account.values_json(found),
            }
        return Response.json(body)

    def _sub(self, request: Request, kind: str) -> Response:
        found = self._contact_or_404(request)
        if isinstance(found, Response):
            return found
        rows = {
            "contactLists": self.account.lists_json,
            "contactTags": self.account.tags_json,
            "fieldValues": self.account.values_json,
        }[kind](found)
        return Response.json({kind: rows, "meta": {"total": str(len(rows))}})

    def _envelope(self, request: Request, key: str) -> dict[str, Any] | Response:
        try:
            body = request.json()
        except ValueError:
            return _message(400, "Invalid JSON")
        inner = body.get(key) if isinstance(body, dict) else None
        if not isinstance(inner, dict):
            return _errors(422, f"The {key} is required", "field_missing", f"/data/attributes/{key}")
        return inner

    def _apply_values(self, contact: Contact, values: Any) -> Response | None:
        for item in values or ():
            fid = str(item.get("field", "")) if isinstance(item, dict) else ""
            if fid not in self.account.fields:
                return _errors(422, f"Field {fid or '?'} does not exist", "field_invalid", "/data/attributes/field")
            self.account.set_value(contact, fid, str(item.get("value") or ""))
        return None

    def _sync(self, request: Request) -> Response:
        inner = self._envelope(request, "contact")
        if isinstance(inner, Response):
            return inner
        email = str(inner.get("email") or "").strip()
        if not EMAIL.match(email):
            return _errors(422, "Email address is not valid.", "email_invalid")
        with self.account.lock:
            contact = self.account.find(email) or self.account.create(email)
            self.account.update(contact, inner)
            problem = self._apply_values(contact, inner.get("fieldValues"))
            if problem is not None:
                return problem
            body = {
                "contact": self.account.contact_json(contact, self._base),
                "fieldValues": self.account.values_json(contact),
            }
        self._notify("update", contact, source="api")
        return Response.json(body, 201)

    def _create(self, request: Request) -> Response:
        inner = self._envelope(request, "contact")
        if isinstance(inner, Response):
            return inner
        email = str(inner.get("email") or "").strip()
        if not EMAIL.match(email):
            return _errors(422, "Email address is not valid.", "email_invalid")
        with self.account.lock:
            if self.account.find(email) is not None:
                return _errors(422, "Email address already exists in the system.", "duplicate")
            contact = self.account.create(email)
            self.account.update(contact, inner)
            problem = self._apply_values(contact, inner.get("fieldValues"))
            if problem is not None:
                return problem
            body = {"contact": self.account.contact_json(contact, self._base)}
        return Response.json(body, 201)

    def _put(self, request: Request) -> Response:
        found = self._contact_or_404(request)
        if isinstance(found, Response):
            return found
        inner = self._envelope(request, "contact")
        if isinstance(inner, Response):
            return inner
        email = inner.get("email")
        with self.account.lock:
            if email is not None:
                if not EMAIL.match(str(email).strip()):
                    return _errors(422, "Email address is not valid.", "email_invalid")
                other = self.account.find(str(email))
                if other is not None and other.id != found.id:
                    return _errors(422, "Email address already exists in the system.", "duplicate")
            self.account.update(found, inner)
            problem = self._apply_values(found, inner.get("fieldValues"))
            if problem is not None:
                return problem
            body = {"contact": self.account.contact_json(found, self._base)}
        return Response.json(body)

    def _delete(self, request: Request) -> Response:
        found = self._contact_or_404(request)
        if isinstance(found, Response):
            return found
        self.account.delete(found)
        return Response.json({})

    def _contact_list(self, request: Request) -> Response:
        inner = self._envelope(request, "contactList")
        if isinstance(inner, Response):
            return inner
        list_id, status = str(inner.get("list", "")), str(inner.get("status", ""))
        contact = self.account.contacts.get(str(inner.get("contact", "")))
        if contact is None:
            return _errors(422, "Contact does not exist", "related_missing", "/data/attributes/contact")
        if list_id not in self.account.list_ids:
            return _errors(422, "List does not exist", "related_missing", "/data/attributes/list")
        if status not in (SUBSCRIBED, UNSUBSCRIBED):
            return _errors(422, "Status is invalid", "field_invalid", "/data/attributes/status")
        with self.account.lock:
            current = contact.lists.get(list_id)
            # No API call re-subscribes a person who unsubscribed, unless it claims sourceid 4 [SPEC].
            if (
                not (status == SUBSCRIBED and current is not None and current.status == UNSUBSCRIBED)
                or str(inner.get("sourceid", "")) == "4"
            ):
                self.account.set_status(contact, list_id, status)
            rows = [row for row in self.account.lists_json(contact) if row["list"] == list_id]
            body = {"contacts": [self.account.contact_json(contact, self._base)], "contactList": rows[0]}
        return Response.json(body, 201)

    def _tags(self, request: Request) -> Response:
        search = (request.arg("search") or "").lower()
        limit, offset = min(int(request.arg("limit") or 20), MAX_LIMIT), int(request.arg("offset") or 0)
        with self.account.lock:
            rows = [
                {"id": tid, "tag": name, "tagType": "contact", "description": ""}
                for tid, name in sorted(self.account.tags.items(), key=lambda kv: int(kv[0]))
                if search in name.lower()
            ]
        return Response.json({"tags": rows[offset : offset + limit], "meta": {"total": str(len(rows))}})

    def _create_tag(self, request: Request) -> Response:
        inner = self._envelope(request, "tag")
        if isinstance(inner, Response):
            return inner
        name = str(inner.get("tag") or "").strip()
        if not name:
            return _errors(422, "Tag name is required", "field_missing", "/data/attributes/tag")
        if self.account.tag_id(name, create=False) is not None:
            return _errors(422, "Tag name already exists", "duplicate", "/data/attributes/tag")
        tid = self.account.tag_id(name, create=True)
        return Response.json({"tag": {"id": tid, "tag": name, "tagType": inner.get("tagType", "contact")}}, 201)

    def _contact_tag(self, request: Request) -> Response:
        inner = self._envelope(request, "contactTag")
        if isinstance(inner, Response):
            return inner
        contact = self.account.contacts.get(str(inner.get("contact", "")))
        tid = str(inner.get("tag", ""))
        if contact is None or tid not in self.account.tags:
            return _errors(422, "Contact or tag does not exist", "related_missing", "/data/attributes/tag")
        row = self.account.add_tag(contact, tid)
        self._notify("contact_tag_added", contact, source="api")
        return Response.json({"contactTag": {"id": row, "contact": contact.id, "tag": tid}}, 201)

    def _delete_contact_tag(self, request: Request) -> Response:
        assert request.match is not None
        if not self.account.remove_row(request.match["id"]):
            return _message(404, f"No result found for ContactTag with id {request.match['id']}")
        return Response.json({})

    def _fields(self, request: Request) -> Response:
        rows = list(self.account.fields.values())
        return Response.json({"fields": rows, "meta": {"total": str(len(rows))}})

    def _list(self, request: Request) -> Response:
        assert request.match is not None
        lid = request.match["id"]
        if lid not in self.account.list_ids:
            return _message(404, f"No result found for List with id {lid}")
        return Response.json({"list": {"id": lid, "name": f"List {lid}", "stringid": f"list-{lid}"}})

    # -- bulk import -----------------------------------------------------------------------------
    def _bulk_import(self, request: Request) -> Response:
        try:
            body = request.json()
        except ValueError:
            return _message(400, "Invalid JSON")
        contacts = body.get("contacts") if isinstance(body, dict) else None
        if not isinstance(contacts, list) or not contacts:
            return Response.json({"success": 0, "message": "No contacts provided", "failureReasons": []}, 400)
        if len(contacts) > MAX_IMPORT:
            reason = f"A maximum of {MAX_IMPORT} contacts can be imported per request"
            return Response.json({"success": 0, "message": reason, "failureReasons": [reason]}, 400)
        with self._gate:
            now = time.monotonic()
            while self._import_times and self._import_times[0] <= now - 60:
                self._import_times.popleft()
            if len(self._import_times) >= IMPORTS_PER_MINUTE:
                reasons = ["Too many bulk import requests"]
                return Response.json({"success": 0, "message": "Rate limit exceeded.", "failureReasons": reasons}, 400)
            self._import_times.append(now)
        batch = str(uuid.uuid4())
        failures: list[dict[str, Any]] = []
        for index, item in enumerate(contacts):
            reason = self._import_one(item)
            if reason:
                failures.append({"index": index, "email": str(item.get("email", "")), "reason": reason})
        self._imports[batch] = {"total": len(contacts), "failures": failures}
        return Response.json({"Success": 1, "queued_contacts": len(contacts), "batchId": batch})

    def _import_one(self, item: Any) -> str:
        """Create or update one imported contact; never fires webhooks, never resubscribes [SPEC]."""
        if not isinstance(item, dict) or not EMAIL.match(str(item.get("email") or "").strip()):
            return "invalid email address"
        with self.account.lock:
            contact = self.account.find(str(item["email"])) or self.account.create(str(item["email"]))
            self.account.update(
                contact,
                {"firstName": item.get("first_name"), "lastName": item.get("last_name"), "phone": item.get("phone")},
            )
            for value in item.get("fields") or ():
                fid = str(value.get("id", ""))
                if fid in self.account.fields:
                    self.account.set_value(contact, fid, str(value.get("value") or ""))
            for name in item.get("tags") or ():
                self.account.add_tag(contact, str(self.account.tag_id(str(name), create=True)))
            for entry in item.get("unsubscribe") or ():
                lid = str(entry.get("listid", ""))
                if lid in self.account.list_ids:
                    self.account.set_status(contact, lid, UNSUBSCRIBED)
            for entry in item.get("subscribe") or ():
                lid = str(entry.get("listid", ""))
                current = contact.lists.get(lid)
                if lid in self.account.list_ids and (current is None or current.status != UNSUBSCRIBED):
                    self.account.set_status(contact, lid, SUBSCRIBED)
        return ""

    def _import_info(self, request: Request) -> Response:
        batch = self._imports.get(request.arg("batchId") or "")
        if batch is None:
            return _message(404, "No result found for import")
        failures = batch["failures"]
        return Response.json(
            {
                "status": "completed",
                "success": batch["total"] - len(failures),
                "failure": len(failures),
                "failureReasons": failures,
            }
        )

    # -- webhooks --------------------------------------------------------------------------------
    def _create_webhook(self, request: Request) -> Response:
        inner = self._envelope(request, "webhook")
        if isinstance(inner, Response):
            return inner
        url = str(inner.get("url") or "")
        if not url.startswith(("http://", "https://")):
            return _errors(422, "The url is invalid", "field_invalid", "/data/attributes/url")
        hook: dict[str, Any] = {
            "id": str(len(self._webhooks) + 1),
            "name": str(inner.get("name") or ""),
            "url": url,
            "events": list(inner.get("events") or ()),
            "sources": list(inner.get("sources") or ()),
            "listid": str(inner.get("listid") or "0"),
        }
        self._webhooks[hook["id"]] = hook
        return Response.json({"webhook": hook}, 201)

    def _list_webhooks(self, request: Request) -> Response:
        rows = list(self._webhooks.values())
        return Response.json({"webhooks": rows, "meta": {"total": str(len(rows))}})

    def _delete_webhook(self, request: Request) -> Response:
        assert request.match is not None
        if self._webhooks.pop(request.match["id"], None) is None:
            return _message(404, "No result found for Webhook")
        return Response.json({})

    def _notify(self, kind: str, contact: Contact, *, source: str, extra: Mapping[str, str] | None = None) -> None:
        """Deliver one form-encoded event to every webhook listening to it (at most once, no retry)."""
        for hook in list(self._webhooks.values()):
            if kind not in hook["events"] or source not in hook["sources"]:
                continue
            form = {
                "type": kind,
                "date_time": self.account.iso(self.account.now()),
                "initiated_by": source,
                "initiated_from": source,
                "contact[id]": contact.id,
                "contact[email]": contact.email,
                "contact[first_name]": contact.first_name,
                "contact[last_name]": contact.last_name,
                "contact[phone]": contact.phone,
                "list": self.list_id if kind in ("subscribe", "unsubscribe") else "0",
                **({"list[0][id]": self.list_id} if kind == "unsubscribe" else {}),
                **(extra or {}),
            }
            try:
                answer = requests.post(
                    hook["url"],
                    data=urlencode(form),
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    timeout=(2.0, 5.0),
                )
                status = answer.status_code
            except requests.RequestException:
                status = 0
            self.webhook_log.append((kind, source, status))
            if status == 410:  # answering 410 disables the hook [webhooks]
                self._webhooks.pop(str(hook["id"]), None)


def _parse_time(text: str) -> dt.datetime:
    """Dates in filters: ISO 8601 with or without an offset (no offset = UTC here), or a bare date."""
    value = dt.datetime.fromisoformat(text.strip().replace(" ", "T").replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
