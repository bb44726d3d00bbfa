"""A local Zoho CRM (accounts token endpoint + CRM API v8 Contacts) for tests, sandbox and benchmarks.

Faithful to /work/shared/providers/zoho.md: ``Zoho-oauthtoken`` auth with expiring access tokens and the
refresh budget, ``api_domain`` in the token answer, the mandatory ``fields`` list, 200 a page, ``page`` only
to 2,000 rows and ``page_token`` beyond, ``If-Modified-Since``/304, upsert with per-record results,
the deleted-records list, tag actions, notification channels, credits and concurrency (429).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math
import queue
import random
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from adapters._emulator import EmulatorServer, Fault, Request, Response
from adapters.zoho._emulator_watch import API, Channel, Delivery, WatchChannels, bad
from adapters.zoho._store import Org, format_time, render
from adapters.zoho._wire import (
    DELETED_PER_PAGE_MAX,
    PAGE_PARAM_ROW_CAP,
    PAGE_TOKEN_ROW_CAP,
    PER_PAGE_MAX,
    UPSERT_MAX,
    error_body,
    parse_zoho_time,
    record_error,
)

CLIENT_ID: Final = "1000.EMULATORCLIENT"
CLIENT_SECRET: Final = "emulator-client-secret"  # noqa: S105 - the emulator's own fixed credential
REFRESH_TOKEN: Final = "1000.emulator.refresh"  # noqa: S105
TOKEN_PATH: Final = "/oauth/v2/token"  # noqa: S105
SCOPE: Final = "ZohoCRM.modules.ALL ZohoCRM.settings.ALL ZohoCRM.notifications.ALL"
CREDIT_COST_PER_WRITE_RECORDS: Final = 10  # upsert: 1 credit per 10 records (3P) — providers/zoho.md "Limits"
FIELDS_MAX: Final = 50
TAG_IDS_MAX: Final = 500
SORTABLE: Final = ("id", "Created_Time", "Modified_Time")


@dataclass(slots=True)
class _TokenQuery:
    ids: list[str]
    fields: list[str]
    per_page: int
    offset: int
    expires: float
    bound: tuple[str | None, ...]  # the query's parameters: a token request must repeat them unchanged


class ZohoEmulator(WatchChannels):
    """Zoho accounts + CRM on 127.0.0.1. ``api_domain`` is what the token endpoint advertises."""

    def __init__(
        self,
        *,
        port: int = 0,
        latency_s: float = 0.0,
        token_ttl_s: int = 3600,
        refresh_budget: int = 10,  # access tokens per refresh token per 10 minutes (OAUTH)
        credits: int = 50_000,  # per rolling 24 h; Standard edition base (K93)
        max_concurrency: int = 10,  # Standard edition (3P)
        tz: dt.tzinfo = dt.timezone(dt.timedelta(hours=5, minutes=30)),
        page_token_row_cap: int = PAGE_TOKEN_ROW_CAP,
        work_s: float = 0.0,  # time a CRM call holds its concurrency slot (to provoke the cap)
    ) -> None:
        self.server = EmulatorServer(port=port, latency_s=latency_s)
        self.org = Org()
        self.tz = tz
        self.token_ttl_s = token_ttl_s
        self.refresh_budget = refresh_budget
        self.credits_total = credits
        self.credits_used = 0
        self.max_concurrency = max_concurrency
        self.page_token_row_cap = page_token_row_cap
        self.work_s = work_s
        self.api_domain: str | None = None  # None: this server's URL
        self.refusals: Counter[str] = Counter()  # address -> upserts and updates still to refuse ([refuse_writes])
        self.page_tokens = True  # False: never offer next_page_token (an older or partial implementation)
        self.grant_params_from = "both"  # where the token endpoint reads its parameters: both, query or body
        # True: a lookup written without its id is refused (Zoho documents lookups as {"id", "name"}; whether a
        # name alone is taken is undocumented, so the default stays lenient).
        self.lookup_needs_id = False
        self.expires_in_ms = False  # True: older answers, expires_in in ms beside expires_in_sec (the SDK reads both)
        self.client_id, self.client_secret, self.refresh_token = CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN
        self.access_tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self.token_grants: list[float] = []  # times of refresh grants answered with a token
        self.channels: dict[str, Channel] = {}
        self.deliveries: list[Delivery] = []
        self._page_tokens: dict[str, _TokenQuery] = {}
        self._in_flight = 0
        self._lock = threading.Lock()
        self._rng = random.Random(7)  # noqa: S311 - sample data, not security
        self._outbox: queue.Queue[tuple[Channel, dict[str, Any]] | None] = queue.Queue()
        self._notifier: threading.Thread | None = None
        self._routes()

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    @property
    def accounts_url(self) -> str:
        return self.url + TOKEN_PATH

    def start(self) -> ZohoEmulator:
        self.server.start()
        self._notifier = threading.Thread(target=self._deliver_loop, name="zoho-notify", daemon=True)
        self._notifier.start()
        return self

    def stop(self) -> None:
        self._outbox.put(None)
        self.server.stop()

    def __enter__(self) -> ZohoEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sandbox_options(self) -> dict[str, Any]:
        """Crmsync config options for this emulator (``[providers.zoho]``)."""
        return {
            "type": "zoho",
            "base_url": self.url,
            "accounts_url": self.accounts_url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
            "data_center": "com",
        }

    # -- knobs ---------------------------------------------------------------------------------
    def inject(self, *faults: Fault) -> None:
        self.server.inject(*faults)

    def refuse_writes(self, email: str, times: int = 1) -> None:
        """A partial batch failure: the next ``times`` writes of this address fail item by item with
        ``RECORD_LOCKED`` (worth retrying) while the rest of each batch goes through.
        """
        with self.org.lock:
            self.refusals[email.strip().lower()] += times

    def _refused(self, item: Any) -> bool:
        if not isinstance(item, dict):
            return False
        record = self.org.contacts.get(str(item.get("id"))) if item.get("id") is not None else None
        key = str(item.get("Email") or (record or {}).get("Email") or "").strip().lower()
        if self.refusals[key] <= 0:
            return False
        self.refusals[key] -= 1
        return True

    def call_count(self, method: str | None = None, pattern: str | None = None) -> int:
        return self.server.call_count(method, pattern)

    def reads(self) -> int:
        """CRM GET calls (record pages, by-id fetches, deleted lists, search, settings)."""
        return self.server.call_count("GET", "/crm/")

    def writes(self) -> int:
        """CRM calls that change data (upsert, tag actions, deletes, watch changes)."""
        return sum(self.server.call_count(m, "/crm/") for m in ("POST", "PUT", "PATCH", "DELETE"))

    def refreshes(self) -> int:
        return len(self.token_grants)

    def reset_counters(self) -> None:
        self.server.reset_counters()
        self.token_grants.clear()

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (a daemon waking after an hour)."""
        with self._lock:
            self.access_tokens = dict.fromkeys(self.access_tokens, 0.0)

    def credits_remaining(self) -> int:
        return max(0, self.credits_total - self.credits_used)

    def seed(self, n: int, *, prefix: str = "contact") -> list[str]:
        with self.org.lock:
            start = len(self.org.contacts)
            ids = []
            for i in range(start, start + n):
                values = self.org.seed_values(i, prefix, self._rng)
                record = self.org.insert(values)
                tags = [t for t in ("vip", "newsletter", "partner") if self._rng.random() < 0.25]
                if tags:
                    self.org.set_tags(record, tags, add=True)
                ids.append(record["id"])
            return ids

    def contact(self, record_id: str) -> dict[str, Any] | None:
        with self.org.lock:
            record = self.org.contacts.get(record_id)
            return render(record, None, self.tz) if record else None

    def find(self, email: str) -> dict[str, Any] | None:
        with self.org.lock:
            found = self.org.by_email(email)
            return render(found[0], None, self.tz) if found else None

    def all_contacts(self) -> list[dict[str, Any]]:
        with self.org.lock:
            return [render(r, None, self.tz) for r in self.org.contacts.values()]

    def edit(self, record_id: str, **values: Any) -> None:
        """A user edit in the CRM: bumps Modified_Time and notifies watch channels."""
        with self.org.lock:
            self.org.update(self.org.contacts[record_id], values)
        self._notify("edit", [record_id], list(values))

    def unsubscribe(self, email: str) -> str:
        """A user opts the contact out in Zoho's UI; one already opted out has nothing to opt out of."""
        with self.org.lock:
            record = self.org.by_email(email)[0]
            if record.get("Email_Opt_Out") is True:
                return str(record["id"])
            self.org.update(record, {"Email_Opt_Out": True})
        self._notify("edit", [record["id"]], ["Email_Opt_Out"])
        return str(record["id"])

    def delete(self, record_id: str) -> None:
        with self.org.lock:
            self.org.delete(record_id)
        self._notify("delete", [record_id], [])

    def merge(self, master_id: str, *other_ids: str) -> None:
        """Find & Merge in the CRM: the master keeps its values, fills blanks and tags from the others,
        which are deleted (they show in the deleted-records list).
        """
        with self.org.lock:
            master = self.org.contacts[master_id]
            fill: dict[str, Any] = {}
            tags: set[str] = set()
            for other_id in other_ids:
                other = self.org.contacts[other_id]
                fill.update({k: v for k, v in other.items() if v not in (None, "", []) and not master.get(k)})
                tags |= {t["name"] for t in other.get("Tag") or ()}
                self.org.delete(other_id)
            self.org.update(master, fill)
            if tags:
                self.org.set_tags(master, tags, add=True)
        self._notify("edit", [master_id], sorted(fill))
        self._notify("delete", list(other_ids), [])

    def freeze_clock(self, at: dt.datetime | None) -> None:
        """Stop the org's clock at ``at`` (every change in one second), or let it run again with None."""
        with self.org.lock:
            self.org.frozen = at.astimezone(dt.UTC).replace(microsecond=0) if at else None

    def advance_clock(self, seconds: float) -> None:
        """Move the org's clock on (Modified_Time has second precision, so tests step it)."""
        with self.org.lock:
            self.org.clock_offset += dt.timedelta(seconds=seconds)

    def wait_deliveries(self, n: int, timeout_s: float = 5.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        while len(self.deliveries) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.deliveries)

    # -- routing -------------------------------------------------------------------------------
    def _routes(self) -> None:
        add = self.server.add_route
        add("POST", TOKEN_PATH, self._token)
        crm: list[tuple[str, str, Callable[[Request], tuple[Response, int]]]] = [
            ("GET", API + "/Contacts", self._list),
            ("GET", API + "/Contacts/deleted", self._deleted),
            ("GET", API + "/Contacts/search", self._search),
            ("GET", API + r"/Contacts/(?P<id>\d+)", self._get_one),
            ("POST", API + "/Contacts/upsert", self._upsert),
            ("PUT", API + "/Contacts", self._update),
            ("POST", API + r"/Contacts/actions/(?P<action>add_tags|remove_tags)", self._tags),
            ("DELETE", API + "/Contacts", self._delete_many),
            ("DELETE", API + r"/Contacts/(?P<id>\d+)", self._delete_one),
            ("GET", API + "/Accounts/search", self._search_accounts),
            ("POST", API + "/Accounts/upsert", self._upsert_accounts),
            ("GET", API + "/settings/fields", self._fields_meta),
            ("DELETE", API + "/settings/recycle_bin", self._purge),
            ("GET", API + "/actions/watch", self._watch_list),
            ("POST", API + "/actions/watch", self._watch_enable),
            ("PUT", API + "/actions/watch", self._watch_enable),
            ("PATCH", API + "/actions/watch", self._watch_patch),
            ("DELETE", API + "/actions/watch", self._watch_disable),
        ]
        for method, pattern, handler in crm:
            add(method, pattern, self._guarded(handler))

    def _guarded(self, handler: Callable[[Request], tuple[Response, int]]) -> Callable[[Request], Response]:
        """Auth, concurrency and credits around one CRM call, in Zoho's order."""

        def serve(request: Request) -> Response:
            refused = self._authenticate(request)
            if refused is not None:
                return refused
            with self._lock:
                if self._in_flight >= self.max_concurrency:
                    return Response.json(error_body("TOO_MANY_REQUESTS", "concurrency limit exceeded"), 429)
                if self.credits_remaining() <= 0:
                    return Response.json(
                        error_body("TOO_MANY_REQUESTS", "the API credit limit has been exceeded"),
                        429,
                        {"X-API-CREDITS-REMAINING": "0"},
                    )
                self._in_flight += 1
            try:
                if self.work_s:
                    time.sleep(self.work_s)
                response, cost = handler(request)
            finally:
                with self._lock:
                    self._in_flight -= 1
            with self._lock:
                self.credits_used += cost
                if self.credits_used * 2 >= self.credits_total:  # shown once half is spent (3P, AE)
                    response.headers["X-API-CREDITS-REMAINING"] = str(self.credits_remaining())
            return response

        return serve

    def _authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != "Zoho-oauthtoken" or not token:
            return Response.json(error_body("AUTHENTICATION_FAILURE", "Authentication failed"), 401)
        with self._lock:
            expires = self.access_tokens.get(token)
        if expires is None or expires <= time.time():
            return Response.json(error_body("INVALID_TOKEN", "invalid oauth token"), 401)
        return None

    # -- accounts ------------------------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        form = _form(request, self.grant_params_from)
        if form.get("grant_type") != "refresh_token":
            return Response.json({"error": "unsupported_grant_type"})
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return Response.json({"error": "invalid_client"})  # Zoho answers 200 with an error key
        if form.get("refresh_token") != self.refresh_token:
            return Response.json({"error": "invalid_code"})
        now = time.time()
        with self._lock:
            recent = [t for t in self.token_grants if now - t < 600]
            if len(recent) >= self.refresh_budget:
                return Response.json(
                    {
                        "error_description": "You have made too many requests continuously. "
                        "Please try again after some time.",
                        "error": "Access Denied",
                        "status": "failure",
                    },
                    400,
                )
            self.token_grants.append(now)
            token = "1000." + secrets.token_hex(16)
            self.access_tokens[token] = now + self.token_ttl_s
        answer: dict[str, Any] = {
            "access_token": token,
            "scope": SCOPE,
            "api_domain": self.api_domain or self.url,
            "token_type": "Bearer",
            "expires_in": self.token_ttl_s,
        }
        if self.expires_in_ms:
            answer.update(expires_in=self.token_ttl_s * 1000, expires_in_sec=self.token_ttl_s)
        return Response.json(answer)

    # -- reading -------------------------------------------------------------------------------
    def _list(self, request: Request) -> tuple[Response, int]:
        ids_arg = request.arg("ids")
        if ids_arg is not None:
            return self._by_ids(request, ids_arg), 1
        page_token = request.arg("page_token")
        if page_token is not None:
            if request.arg("page") is not None:
                return bad("AMBIGUITY_DURING_PROCESSING", "You cannot use both page and page_token."), 1
            return self._token_page(page_token, _bound(request)), 1
        fields, refused = self._fields_arg(request)
        if refused is not None:
            return refused, 1
        per_page, page = _int_arg(request, "per_page", PER_PAGE_MAX), _int_arg(request, "page", 1)
        if per_page is None or not 1 <= per_page <= PER_PAGE_MAX:
            return bad("INVALID_DATA", "invalid per_page", param_name="per_page", maximum=PER_PAGE_MAX), 1
        if page is None or page < 1:
            return bad("INVALID_DATA", "invalid page", param_name="page"), 1
        if page * per_page > PAGE_PARAM_ROW_CAP:
            return bad(
                "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                "You can only get the first 2000 records without using page_token param.",
                limit=PAGE_PARAM_ROW_CAP,
            ), 1
        ordered, refused = self._query(request)
        if refused is not None:
            return refused, 1
        if not ordered:
            return Response.empty(304 if request.headers.get("if-modified-since") else 204), 1
        expires = time.time() + 86_400  # a page token lives 24 h (K60)
        query = _TokenQuery(ordered, fields, per_page, (page - 1) * per_page, expires, _bound(request))
        return self._page(query, page), 1

    def _query(self, request: Request) -> tuple[list[str], Response | None]:
        sort_by = request.arg("sort_by", "id") or "id"
        order = request.arg("sort_order", "desc" if sort_by != "id" else "asc")
        if sort_by not in SORTABLE or order not in ("asc", "desc"):
            return [], bad("INVALID_DATA", "invalid sort_by or sort_order", param_name="sort_by")
        since_raw = request.headers.get("if-modified-since")
        since = None
        if since_raw:
            try:
                since = _header_time(since_raw)
            except ValueError:
                return [], bad("INVALID_DATA", "invalid If-Modified-Since", param_name="If-Modified-Since")
        with self.org.lock:
            rows = [r for r in self.org.contacts.values() if since is None or r["Modified_Time"] > since]
            rows.sort(key=lambda r: (r[sort_by] if sort_by != "id" else int(r["id"]), int(r["id"])))
        if order == "desc":
            rows.reverse()
        return [r["id"] for r in rows], None

    def _fields_arg(self, request: Request) -> tuple[list[str], Response | None]:
        raw = request.arg("fields")
        if not raw:
            return [], Response.json(
                error_body("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", param_name="fields"),
                400,
            )
        fields = [f for f in raw.split(",") if f]
        if len(fields) > FIELDS_MAX:
            return [], bad("LIMIT_EXCEEDED", "fields exceeds the limit", param_name="fields", limit=FIELDS_MAX)
        unknown = [f for f in fields if not self.org.known_field(f)]
        if unknown:
            return [], bad("INVALID_DATA", "invalid field name", api_name=unknown[0])
        return fields, None

    def _token_page(self, token: str, bound: tuple[str | None, ...]) -> Response:
        with self._lock:
            query = self._page_tokens.get(token)
        if query is None or query.bound != bound:  # a 400, not a 401 (OAS v8.0 getRecords examples)
            return bad(
                "TOKEN_BOUND_DATA_MISMATCH",
                "The page_token given seems to be invalid or input param is added or altered or deleted",
                param_name="page_token",
            )
        if query.expires < time.time():
            return bad("EXPIRED_VALUE", "The value provided has expired.", param_name="page_token")
        if query.offset >= self.page_token_row_cap:
            return bad(
                "PAGINATION_LIMIT_EXCEEDED",
                "You can only get up to first 100000 records using page_token param.",
                limit=self.page_token_row_cap,
            )
        return self._page(query, None)

    def _page(self, query: _TokenQuery, page: int | None) -> Response:
        end = query.offset + query.per_page
        window = query.ids[query.offset : end]
        with self.org.lock:
            data = [render(self.org.contacts[i], query.fields, self.tz) for i in window if i in self.org.contacts]
        more = end < len(query.ids)
        info: dict[str, Any] = {
            "per_page": query.per_page,
            "count": len(data),
            "page": page if page is not None else end // query.per_page,
            "more_records": more,
            "next_page_token": None,
            "previous_page_token": None,
            "page_token_expiry": None,
        }
        if more and self.page_tokens:
            token = secrets.token_hex(24)
            follow = _TokenQuery(query.ids, query.fields, query.per_page, end, query.expires, query.bound)
            with self._lock:
                self._page_tokens[token] = follow
            info["next_page_token"] = token
            info["page_token_expiry"] = format_time(dt.datetime.fromtimestamp(query.expires, dt.UTC), self.tz)
        return Response.json({"data": data, "info": info})

    def _by_ids(self, request: Request, ids_arg: str) -> Response:
        fields, refused = self._fields_arg(request)
        if refused is not None:
            return refused
        ids = [i for i in ids_arg.split(",") if i]
        if len(ids) > 100:
            return bad("LIMIT_EXCEEDED", "ids exceeds the limit", param_name="ids", limit=100)
        with self.org.lock:
            data = [render(self.org.contacts[i], fields, self.tz) for i in ids if i in self.org.contacts]
        if not data:
            return Response.empty(204)
        info = {"per_page": len(data), "count": len(data), "page": 1, "more_records": False}
        return Response.json({"data": data, "info": info})

    def _get_one(self, request: Request) -> tuple[Response, int]:
        assert request.match is not None
        with self.org.lock:
            record = self.org.contacts.get(request.match["id"])
            if record is None:
                return Response.empty(204), 1
            return Response.json({"data": [render(record, None, self.tz)]}), 1

    def _search(self, request: Request) -> tuple[Response, int]:
        email = request.arg("email")
        criteria = request.arg("criteria") or ""
        exact = None
        if email is None and criteria.startswith("(Email:equals:") and criteria.endswith(")"):
            exact = criteria[len("(Email:equals:") : -1]
        if not email and not exact:
            return bad("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", param_name="criteria"), 1
        with self.org.lock:
            found = self.org.by_email(exact) if exact else self.org.by_any_email(email or "")
            data = [render(r, None, self.tz) for r in found]
        if not data:
            return Response.empty(204), 1
        return Response.json(
            {"data": data, "info": {"per_page": 200, "count": len(data), "page": 1, "more_records": False}}
        ), 1

    def _deleted(self, request: Request) -> tuple[Response, int]:
        kind = request.arg("type", "all")
        per_page, page = _int_arg(request, "per_page", PER_PAGE_MAX), _int_arg(request, "page", 1)
        if kind not in ("all", "recycle", "permanent"):
            return bad("INVALID_DATA", "invalid type", param_name="type"), 1
        if per_page is None or not 1 <= per_page <= DELETED_PER_PAGE_MAX or page is None or page < 1:
            return bad("INVALID_DATA", "invalid per_page or page", param_name="per_page"), 1
        since_raw = request.headers.get("if-modified-since")
        try:
            since = _header_time(since_raw) if since_raw else None
        except ValueError:
            return bad("INVALID_DATA", "invalid If-Modified-Since", param_name="If-Modified-Since"), 1
        with self.org.lock:
            rows = [
                d for d in self.org.deleted if kind in ("all", d.kind) and (since is None or d.deleted_time > since)
            ]
        rows.sort(key=lambda d: (d.deleted_time, int(d.id)), reverse=True)  # newest first
        window = rows[(page - 1) * per_page : page * per_page]
        if not window:
            return Response.empty(304 if since_raw and page == 1 else 204), 1
        data = [
            {
                "deleted_by": {"name": "Emulator Admin", "id": "5550000000000001"},
                "id": d.id,
                "display_name": d.display_name,
                "type": d.kind,
                "created_by": {"name": "Emulator Admin", "id": "5550000000000001"},
                "deleted_time": format_time(d.deleted_time, self.tz),
            }
            for d in window
        ]
        info = {"per_page": per_page, "count": len(data), "page": page, "more_records": page * per_page < len(rows)}
        return Response.json({"data": data, "info": info}), 1

    def _fields_meta(self, request: Request) -> tuple[Response, int]:
        if request.arg("module") != "Contacts":
            return bad("INVALID_MODULE", "the module name given seems to be invalid", param_name="module"), 1
        names = sorted(n for n in self._meta_fields() if n != "id")
        return Response.json({"fields": [_field_meta(n, i) for i, n in enumerate(names)]}), 1

    def _meta_fields(self) -> set[str]:
        from adapters.zoho._store import STANDARD_FIELDS

        return set(STANDARD_FIELDS) | self.org.custom_fields

    # -- writing -------------------------------------------------------------------------------
    def _upsert(self, request: Request) -> tuple[Response, int]:
        return self._write(request, upsert=True)

    def _update(self, request: Request) -> tuple[Response, int]:
        """Update Records: ``PUT /Contacts``, each item names its ``id`` (at most 100)."""
        return self._write(request, upsert=False)

    def _write(self, request: Request, *, upsert: bool) -> tuple[Response, int]:
        try:
            body = request.json()
        except json.JSONDecodeError:
            return bad("INVALID_DATA", "body is not valid JSON"), 1
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return bad("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", param_name="data"), 1
        if len(items) > UPSERT_MAX:
            return bad("LIMIT_EXCEEDED", "the number of records exceeds the limit", limit=UPSERT_MAX), 1
        dup_fields = body.get("duplicate_check_fields") or ["Email"]
        if not isinstance(dup_fields, list) or any(f not in ("Email", "Secondary_Email") for f in dup_fields):
            return bad("INVALID_DATA", "invalid duplicate_check_fields", api_name="duplicate_check_fields"), 1
        results: list[dict[str, Any]] = []
        touched: list[tuple[str, str, list[str]]] = []
        with self.org.lock:
            for index, item in enumerate(items):
                if not upsert and not (isinstance(item, dict) and item.get("id")):
                    result = record_error(
                        "MANDATORY_NOT_FOUND",
                        "required field not found",
                        api_name="id",
                        json_path=f"$.data[{index}].id",
                    )
                elif self._refused(item):
                    result = record_error("RECORD_LOCKED", "the record is locked", json_path=f"$.data[{index}]")
                else:
                    result = self._upsert_one(index, item, dup_fields)
                results.append(result)
                if result["status"] == "success":
                    op = "insert" if result["action"] == "insert" else "edit"
                    touched.append((op, result["details"]["id"], sorted(item)))
        for op, record_id, names in touched:
            self._notify(op, [record_id], names)
        ok = sum(r["status"] == "success" for r in results)
        status = 200 if ok == len(results) else (207 if ok else 400)
        return Response.json({"data": results}, status), math.ceil(len(items) / CREDIT_COST_PER_WRITE_RECORDS)

    def _upsert_one(self, index: int, item: Any, dup_fields: Sequence[str]) -> dict[str, Any]:
        path = f"$.data[{index}]"
        if not isinstance(item, dict):
            return record_error("INVALID_DATA", "invalid data", json_path=path)
        invalid = _invalid_value(item)
        if invalid is not None:
            name, kind = invalid
            return record_error(
                "INVALID_DATA", "invalid data", expected_data_type=kind, api_name=name, json_path=f"{path}.{name}"
            )
        lookup = self._lookup(item.get("Account_Name"))
        if isinstance(lookup, str):
            return record_error(
                "INVALID_DATA",
                lookup,
                expected_data_type="lookup",
                api_name="Account_Name",
                json_path=f"{path}.Account_Name",
            )
        values = {k: v for k, v in item.items() if self.org.known_field(k) and k != "id"}
        if lookup is not None:
            values["Account_Name"] = lookup
        if item.get("id") is not None:
            record = self.org.contacts.get(str(item["id"]))
            if record is None:
                return record_error(
                    "INVALID_DATA", "the id given seems to be invalid", api_name="id", json_path=f"{path}.id"
                )
            return _success(self.org.update(record, values), "update", None, self.tz)
        for name in dup_fields:
            if not item.get(name):
                continue
            matches = [
                r for r in self.org.contacts.values() if str(r.get(name) or "").lower() == str(item[name]).lower()
            ]
            if len(matches) > 1:
                return record_error("DUPLICATE_DATA", "duplicate data", api_name=name, json_path=f"{path}.{name}")
            if matches:
                return _success(self.org.update(matches[0], values), "update", name, self.tz)
        if not item.get("Last_Name"):
            return record_error(
                "MANDATORY_NOT_FOUND", "required field not found", api_name="Last_Name", json_path=f"{path}.Last_Name"
            )
        return _success(self.org.insert(values), "insert", None, self.tz)

    def _lookup(self, value: Any) -> dict[str, str] | str | None:
        """The stored account lookup for a written one, or why it is refused; None when none was written."""
        if not isinstance(value, dict):
            return None
        if value.get("id") is not None:
            name = next((n for n, i in self.org.accounts.items() if i == str(value["id"])), None)
            return {"name": name, "id": str(value["id"])} if name else "the related id given seems to be invalid"
        if self.lookup_needs_id:
            return "invalid data"
        return dict(value)

    def _search_accounts(self, request: Request) -> tuple[Response, int]:
        """``(Account_Name:equals:X)``, alone or joined by ``or``; a backslash escapes parentheses and commas."""
        criteria = request.arg("criteria") or ""
        names = [_unescape(v).lower() for v in _ACCOUNT_EQUALS.findall(criteria)]
        if not names:
            return bad("INVALID_QUERY", "invalid query formed", param_name="criteria"), 1
        with self.org.lock:
            data = [{"Account_Name": n, "id": i} for n, i in self.org.accounts.items() if n.lower() in names]
        if not data:
            return Response.empty(204), 1
        return Response.json(
            {"data": data, "info": {"per_page": 200, "count": len(data), "page": 1, "more_records": False}}
        ), 1

    def _upsert_accounts(self, request: Request) -> tuple[Response, int]:
        try:
            body = request.json()
        except json.JSONDecodeError:
            return bad("INVALID_DATA", "body is not valid JSON"), 1
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items or len(items) > UPSERT_MAX:
            return bad("INVALID_DATA", "data must hold 1 to 100 records", param_name="data"), 1
        results = []
        with self.org.lock:
            for index, item in enumerate(items):
                name = item.get("Account_Name") if isinstance(item, dict) else None
                if not isinstance(name, str) or not name.strip():
                    results.append(
                        record_error(
                            "MANDATORY_NOT_FOUND",
                            "required field not found",
                            api_name="Account_Name",
                            json_path=f"$.data[{index}].Account_Name",
                        )
                    )
                    continue
                existing = next((n for n in self.org.accounts if n.lower() == name.strip().lower()), None)
                account = self.org.account(existing or name.strip())
                results.append(
                    {
                        "code": "SUCCESS",
                        "duplicate_field": "Account_Name" if existing else None,
                        "action": "update" if existing else "insert",
                        "details": {"id": account["id"]},
                        "message": "record updated" if existing else "record added",
                        "status": "success",
                    }
                )
        ok = sum(r["status"] == "success" for r in results)
        return Response.json({"data": results}, 200 if ok == len(results) else (207 if ok else 400)), 1

    def _tags(self, request: Request) -> tuple[Response, int]:
        assert request.match is not None
        add = request.match["action"] == "add_tags"
        try:
            body = request.json() or {}
        except json.JSONDecodeError:
            return bad("INVALID_DATA", "body is not valid JSON"), 1
        tags = body.get("tags") if isinstance(body, dict) else None
        ids = body.get("ids") if isinstance(body, dict) else None
        if ids is None and request.arg("ids"):
            ids = (request.arg("ids") or "").split(",")
        if not isinstance(tags, list) or not tags or not all(isinstance(t, dict) and t.get("name") for t in tags):
            return bad("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", param_name="tags"), 1
        if not isinstance(ids, list) or not ids:
            return bad("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", param_name="ids"), 1
        if len(ids) > TAG_IDS_MAX:
            return bad("LIMIT_EXCEEDED", "ids exceeds the limit", param_name="ids", limit=TAG_IDS_MAX), 1
        names = [str(t["name"]) for t in tags]
        results = []
        changed = []
        with self.org.lock:
            for record_id in ids:
                record = self.org.contacts.get(str(record_id))
                if record is None:
                    results.append(record_error("INVALID_DATA", "record not found", id=str(record_id)))
                    continue
                if add and body.get("over_write"):
                    record["Tag"] = []
                self.org.set_tags(record, names, add=add)
                changed.append(record["id"])
                results.append(
                    {
                        "code": "SUCCESS",
                        "status": "success",
                        "message": "tags updated successfully",
                        "details": {"id": record["id"], "tags": [dict(t) for t in record["Tag"]]},
                    }
                )
        if changed:
            self._notify("edit", changed, ["Tag"])
        ok = sum(r["status"] == "success" for r in results)
        payload = {"data": results, "wf_scheduler": False, "success_count": ok, "locked_count": 0}
        return Response.json(payload, 200 if ok == len(results) else (207 if ok else 400)), 1

    def _delete_many(self, request: Request) -> tuple[Response, int]:
        ids = [i for i in (request.arg("ids") or "").split(",") if i]
        if not ids:
            return bad("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", param_name="ids"), 1
        if len(ids) > 100:
            return bad("LIMIT_EXCEEDED", "ids exceeds the limit", param_name="ids", limit=100), 1
        results = [self._delete_result(i) for i in ids]
        ok = sum(r["status"] == "success" for r in results)
        return Response.json({"data": results}, 200 if ok == len(results) else (207 if ok else 400)), 1

    def _delete_one(self, request: Request) -> tuple[Response, int]:
        assert request.match is not None
        result = self._delete_result(request.match["id"])
        return Response.json({"data": [result]}, 200 if result["status"] == "success" else 400), 1

    def _delete_result(self, record_id: str) -> dict[str, Any]:
        with self.org.lock:
            gone = self.org.delete(record_id)
        if not gone:
            return record_error("INVALID_DATA", "the related id given seems to be invalid", id=record_id)
        self._notify("delete", [record_id], [])
        return {"code": "SUCCESS", "status": "success", "message": "record deleted", "details": {"id": record_id}}

    def _purge(self, request: Request) -> tuple[Response, int]:
        """Delete from the recycle bin for good (GDPR erasure); unknown ids are refused per id."""
        ids = [i for i in (request.arg("ids") or "").split(",") if i]
        if not ids:
            return bad("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", param_name="ids"), 1
        results = []
        with self.org.lock:
            binned = {d.id: d for d in self.org.deleted if d.kind == "recycle"}
            for record_id in ids:
                if record_id in binned:
                    binned[record_id].kind = "permanent"
                    results.append(
                        {
                            "code": "SUCCESS",
                            "status": "success",
                            "message": "record deleted",
                            "details": {"id": record_id},
                        }
                    )
                else:
                    results.append(record_error("INVALID_DATA", "the id given seems to be invalid", id=record_id))
        ok = sum(r["status"] == "success" for r in results)
        return Response.json({"data": results}, 200 if ok == len(results) else (207 if ok else 400)), 1


def _success(record: Mapping[str, Any], action: str, duplicate_field: str | None, tz: dt.tzinfo) -> dict[str, Any]:
    return {
        "code": "SUCCESS",
        "duplicate_field": duplicate_field,
        "action": action,
        "details": {
            "Modified_Time": format_time(record["Modified_Time"], tz),
            "Modified_By": {"name": "Emulator Admin", "id": "5550000000000001"},
            "Created_Time": format_time(record["Created_Time"], tz),
            "id": record["id"],
            "Created_By": {"name": "Emulator Admin", "id": "5550000000000001"},
        },
        "message": "record added" if action == "insert" else "record updated",
        "status": "success",
    }


def _invalid_value(item: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first value Zoho would refuse with INVALID_DATA, as (api_name, expected_data_type)."""
    for name in ("Email", "Secondary_Email"):
        value = item.get(name)
        if value is not None and (not isinstance(value, str) or "@" not in value or " " in value.strip()):
            return name, "email"
    for name in ("Phone", "Mobile"):
        value = item.get(name)
        if value is not None and (
            not isinstance(value, str) or len(value) > 30 or any(c not in "+-() .0123456789x" for c in value)
        ):
            return name, "phone"
    if "Email_Opt_Out" in item and not isinstance(item["Email_Opt_Out"], bool):
        return "Email_Opt_Out", "boolean"
    if "Account_Name" in item and item["Account_Name"] is not None and not isinstance(item["Account_Name"], dict):
        return "Account_Name", "lookup"
    return None


def _field_meta(name: str, index: int) -> dict[str, Any]:
    kinds = {
        "Email": "email",
        "Secondary_Email": "email",
        "Phone": "phone",
        "Mobile": "phone",
        "Email_Opt_Out": "boolean",
        "Created_Time": "datetime",
        "Modified_Time": "datetime",
        "Unsubscribed_Time": "datetime",
        "Account_Name": "lookup",
        "Owner": "ownerlookup",
        "Created_By": "ownerlookup",
        "Modified_By": "ownerlookup",
        "Tag": "text",
        "Data_Processing_Basis": "text",
    }
    json_types = {"boolean": "boolean", "lookup": "jsonobject", "ownerlookup": "jsonobject"}
    data_type = kinds.get(name, "text")
    return {
        "api_name": name,
        "id": str(5_550_000_000_010_000 + index),
        "data_type": data_type,
        "json_type": "jsonarray" if name == "Tag" else json_types.get(data_type, "string"),
        "field_label": name.replace("_", " "),
        "custom_field": name.endswith("__c"),
        "system_mandatory": name == "Last_Name",
        "read_only": name in ("Created_Time", "Modified_Time", "Created_By", "Modified_By", "Full_Name"),
        "length": 100,
        "visible": True,
    }


def _form(request: Request, where: str) -> dict[str, str]:
    """The grant's parameters: Zoho's pages show the query string, the SDK sends a form body."""
    from urllib.parse import parse_qs

    merged: dict[str, str] = {}
    if where in ("both", "query"):
        merged.update({k: v[0] for k, v in request.query.items() if v})
    if where in ("both", "body"):
        content = request.body.decode("utf-8", "replace")
        merged.update({k: v[0] for k, v in parse_qs(content, keep_blank_values=True).items() if v})
    return merged


_ACCOUNT_EQUALS: Final = re.compile(r"\(Account_Name:equals:((?:\\.|[^)\\])*)\)")


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def _header_time(text: str) -> dt.datetime:
    """Zoho documents ISO 8601 with an offset; an HTTP-date (RFC 9110) is taken too."""
    try:
        return parse_zoho_time(text)
    except ValueError:
        when = email.utils.parsedate_to_datetime(text)  # raises ValueError when it is neither
        if when.tzinfo is None:
            raise ValueError("no zone") from None
        return when.astimezone(dt.UTC)


def _bound(request: Request) -> tuple[str | None, ...]:
    names = ("fields", "per_page", "sort_by", "sort_order", "cvid", "ids")
    return (*(request.arg(n) for n in names), request.headers.get("if-modified-since"))


def _int_arg(request: Request, name: str, default: int) -> int | None:
    raw = request.arg(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return None
