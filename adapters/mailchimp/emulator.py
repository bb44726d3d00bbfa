"""A local Mailchimp Marketing API 3.0 (audience members, batches, webhooks) for tests, sandbox and benchmarks.

Behaviour follows /work/shared/providers/mailchimp.md: ``/3.0`` paths, Basic or Bearer auth with the API
key, problem+json errors, members paged by ``count`` (max 1000) and ``offset``, ``since_last_changed``
(strictly after, second precision), the MD5 subscriber hash, batch subscribe (max 500, 200 with per-member
errors), async ``/batches`` with a tar.gz of results, compliance state, forgotten (permanently deleted)
addresses and the 10-simultaneous-connections limit.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

import requests

from adapters._emulator import EmulatorServer, Request, Response
from adapters.mailchimp._emulator_wire import (
    batch_error,
    bool_param,
    fault_response,
    int_arg,
    ok,
    problem_response,
    query_time,
    seed_member,
    select_fields,
    status_value,
    tarball,
)
from adapters.mailchimp._store import (
    MEMBER_KEYS,
    OPTED_OUT,
    WRITABLE_STATUSES,
    Audience,
    Member,
    Problem,
    Webhook,
    check_email,
    compliance,
    forgotten,
    invalid,
    iso,
    not_found,
    subscriber_hash,
)

PREFIX: Final = "/3.0"
MAX_COUNT: Final = 1000  # GET members: count max 1000 [SPEC]
MAX_BATCH_MEMBERS: Final = 500  # POST /lists/{id}: up to 500 members per call [SPEC]
MAX_CONNECTIONS: Final = 10  # simultaneous connections per user [RL]
DEFAULT_KEY: Final = "0123456789abcdef0123456789abcdef-us1"
DEFAULT_LIST: Final = "a1b2c3d4e5"
SORT_FIELDS: Final = frozenset({"timestamp_opt", "timestamp_signup", "last_changed"})
MERGE_FIELD_KEYS: Final = frozenset(
    {
        "_links",
        "default_value",
        "display_order",
        "help_text",
        "list_id",
        "merge_id",
        "name",
        "options",
        "public",
        "required",
        "tag",
        "type",
    }
)
TAG_KEYS: Final = frozenset({"id", "name", "date_added"})
SEGMENT_KEYS: Final = frozenset(
    {"_links", "created_at", "id", "list_id", "member_count", "name", "options", "type", "updated_at"}
)
_L = r"/lists/(?P<list>[^/]+)"
_M = _L + r"/members/(?P<key>[^/]+)"
_FRIENDLY: Final = {"first_name": "FNAME", "last_name": "LNAME", "phone": "PHONE", "company": "COMPANY"}


class MailchimpEmulator(EmulatorServer):
    """Mailchimp on 127.0.0.1: one audience, seeding, user-like edits and fault injection.

    ``inject(Fault(...))`` queues failures; a fault with ``body=None`` answers with no body at all (the
    bare 403/429 Mailchimp sends when throttling). Call counters are per route (``call_count``); reads
    are GETs, writes every other method (``read_calls()`` / ``write_calls()``).
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_KEY,
        list_id: str = DEFAULT_LIST,
        merge_fields: Iterable[str] = (),
        max_connections: int = MAX_CONNECTIONS,
        clock: Callable[[], dt.datetime] | None = None,
        webhook_secret: str = "emulator-webhook-secret",  # noqa: S107 - a fixture, not a credential
        latency_s: float = 0.0,
        port: int = 0,
    ) -> None:
        super().__init__(port=port, latency_s=latency_s)
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.max_connections = max_connections
        self.audience = Audience(
            list_id=list_id, clock=clock or (lambda: dt.datetime.now(dt.UTC)), merge_fields=merge_fields
        )
        self.clock = self.audience.now  # the Date header tells Mailchimp's own time, as member timestamps do
        self.batch_polls_before_finished = 0  # GET /batches/{id} answers "started" this many times first
        self.refuse_params: set[str] = set()  # GET members answers 400 when one of these is sent
        self.refusals: Counter[str] = Counter()  # address -> batch writes still to refuse ([refuse_writes])
        self.webhook_log: list[tuple[str, str, int]] = []  # (event, source, HTTP status; 0 = unreachable)
        self.inflight = 0
        self.peak_inflight = 0
        self.connection_limit_hits = 0
        self._gate = threading.Lock()
        self._batches: dict[str, dict[str, Any]] = {}
        self._batch_results: dict[str, bytes] = {}
        self._batch_ids = itertools.count(1)
        self._register()

    # -- knobs --------------------------------------------------------------------------------
    @property
    def list_id(self) -> str:
        return self.audience.list_id

    @property
    def api_url(self) -> str:
        return self.url + PREFIX

    def sandbox_options(self) -> dict[str, Any]:
        """The crmsync ``[providers.mailchimp]`` options that reach this emulator."""
        return {
            "type": "mailchimp",
            "base_url": self.api_url,
            "api_key": self.api_key,
            "list_id": self.list_id,
            "webhook_secret": self.webhook_secret,
        }

    def seed(self, n: int, *, prefix: str = "contact") -> list[str]:
        """Add ``n`` members ``<prefix><i>@example.com`` with a realistic mix; returns their ``contact_id``s,
        the ids crmsync links members by (member routes take them too).
        """
        ids = []
        for i in range(n):
            status, merge, tags = seed_member(i)
            member = self.audience.create(f"{prefix}{i}@example.com", status=status, merge_fields=merge, tags=tags)
            ids.append(member.contact_id)
        return ids

    def member(self, key: str) -> dict[str, Any] | None:
        """The member's JSON as the API shows it (by hash, address or contact_id), or None."""
        found = self.audience.find(key)
        return self.audience.member_json(found) if found is not None else None

    def members(self) -> list[dict[str, Any]]:
        with self.audience.lock:
            return [self.audience.member_json(m) for m in self.audience.members.values()]

    def edit(self, key: str, **props: Any) -> dict[str, Any]:
        """A user's edit in the Mailchimp UI: merge tags (or first_name, ...), status, tags, email_address.

        Like Mailchimp, it fires the audience webhooks that listen to the ``user`` source.
        """
        member = self._need(key)
        merge = {_FRIENDLY.get(k, k): v for k, v in props.items() if k.isupper() or k in _FRIENDLY}
        with self.audience.lock:
            old_email, old_status = member.email, member.status
            if "status" in props:  # a person's own action: no compliance gate
                member.status = str(props["status"])
            self.audience.update(
                member, email=props.get("email_address"), merge_fields=merge or None, replace_tags=props.get("tags")
            )
            member.last_changed = self.audience.now()
            snapshot = self.audience.member_json(member)
        if member.email != old_email:
            self._notify("upemail", member.email, source="user", extra={"data[old_email]": old_email})
        elif member.status != old_status and member.status == "unsubscribed":
            self._notify(
                "unsubscribe", member.email, source="user", extra={"data[action]": "unsub", "data[reason]": "manual"}
            )
        elif member.status != old_status and member.status == "cleaned":
            self._notify("cleaned", member.email, source="user", extra={"data[reason]": "hard"})
        elif member.status != old_status and member.status == "subscribed":
            self._notify("subscribe", member.email, source="user")
        else:
            self._notify("profile", member.email, source="user")
        return snapshot

    def subscribe(self, email: str, **merge: str) -> str:
        """A person signs up through a form: a new subscribed member (fires ``subscribe`` webhooks)."""
        member = self.audience.create(email, status="subscribed", merge_fields=merge)
        self._notify("subscribe", member.email, source="user")
        return member.hash

    def resubscribe(self, email: str) -> bool:
        """The person signs up again through the audience's form and confirms the double opt-in mail: an
        explicit opt-in, subscribed with a fresh ``timestamp_opt`` (fires ``subscribe`` webhooks, source user).

        The person's own confirmation passes the compliance state that refuses an API ``subscribed``: an
        unsubscribed, pending or archived member comes back. A subscribed member stays as it is (the form
        answers "already subscribed"), and so does a cleaned one or one under compliance review: a cleaned
        address hard-bounced, so the confirmation mail never arrives. Returns whether the member opted in now.
        """
        member = self._need(subscriber_hash(email))
        with self.audience.lock:
            if member.status in ("subscribed", "cleaned") or member.compliance_review:
                return False
            now = self.audience.now()
            member.status, member.timestamp_opt, member.last_changed = "subscribed", iso(now), now
            member.archived_from = ""
        self._notify("subscribe", member.email, source="user")
        return True

    def unsubscribe(self, email: str) -> None:
        self.edit(subscriber_hash(email), status="unsubscribed")

    def clean(self, email: str) -> None:
        """A hard bounce: Mailchimp marks the member cleaned."""
        self.edit(subscriber_hash(email), status="cleaned")

    def delete(self, key: str) -> None:
        """Archive the member, as the UI's "archive" does."""
        member = self._need(key)
        self.audience.archive(member)
        self._notify("unsubscribe", member.email, source="admin", extra={"data[action]": "delete"})

    def forget(self, key: str) -> None:
        """Permanently delete: the address can never be re-imported through the API."""
        self.audience.delete_permanent(self._need(key))

    def flag_compliance(self, email: str) -> None:
        """Put an address under compliance review: no API call may subscribe it."""
        member = self._need(subscriber_hash(email))
        with self.audience.lock:
            member.compliance_review = True

    def refuse_writes(self, email: str, times: int = 1) -> None:
        """A partial batch failure: the next ``times`` writes of this address in a batch subscribe (``errors``),
        a ``/batches`` job (a 500 operation) or a direct upsert (a 500) fail, worth retrying, while the rest of
        the batch goes through.
        """
        with self.audience.lock:
            self.refusals[email.strip().lower()] += times

    def _refused(self, email: str) -> bool:
        key = email.strip().lower()
        with self.audience.lock:
            if self.refusals[key] <= 0:
                return False
            self.refusals[key] -= 1
            return True

    def read_calls(self) -> int:
        return self.call_count("GET")

    def write_calls(self) -> int:
        return sum(self.call_count(m) for m in ("POST", "PUT", "PATCH", "DELETE"))

    def webhook_delivery(
        self,
        event: str,
        email: str,
        *,
        secret_in_url: bool = True,
        signing_secret: str | None = None,
        fired_at: dt.datetime | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> tuple[str, dict[str, str], bytes]:
        """An audience webhook POST as Mailchimp sends it: (url query, headers, form body)."""
        member = self.audience.find(subscriber_hash(email))
        when = (fired_at or self.audience.now()).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        form: dict[str, str] = {"type": event, "fired_at": when, "data[list_id]": self.list_id}
        if event == "upemail":
            old = (extra or {}).get("old_email", "")
            form.update({"data[new_id]": "f" * 10, "data[new_email]": email, "data[old_email]": old})
        else:
            form.update(
                {
                    "data[id]": (member.unique_email_id if member else "0" * 10),
                    "data[email]": email,
                    "data[email_type]": "html",
                    "data[ip_opt]": "198.51.100.7",
                }
            )
            if member is not None:
                for tag, value in member.merge_fields.items():
                    if not isinstance(value, dict):
                        form[f"data[merges][{tag}]"] = str(value)
                form["data[merges][EMAIL]"] = member.email
        form.update(extra or {})
        body = urlencode(form).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "MailChimp"}
        if signing_secret is not None:
            t = str(int(time.time()))
            mac = hmac.new(signing_secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
            headers["X-Mailchimp-Signature"] = f"t={t},v1={mac}"
        query = urlencode({"secret": self.webhook_secret}) if secret_in_url else ""
        return query, headers, body

    def _notify(self, event: str, email: str, *, source: str, extra: Mapping[str, str] | None = None) -> None:
        """Deliver to the audience webhooks that want this event from this source (never under a lock:
        a receiver may call back). A 410 answer disables the webhook, as Mailchimp does.
        """
        with self.audience.lock:
            hooks = [h for h in self.audience.webhooks.values() if h.events.get(event) and h.sources.get(source)]
        for hook in hooks:
            _, headers, body = self.webhook_delivery(
                event, email, secret_in_url=False, signing_secret=hook.signing_secret, extra=extra
            )
            try:
                status = requests.post(hook.url, data=body, headers=headers, timeout=(2.0, 10.0)).status_code
            except requests.RequestException:
                status = 0
            self.webhook_log.append((event, source, status))
            if status == 410:
                with self.audience.lock:
                    self.audience.webhooks.pop(hook.id, None)

    def _need(self, key: str) -> Member:
        member = self.audience.find(key)
        if member is None:
            raise KeyError("no such member")
        return member

    def start(self) -> MailchimpEmulator:
        # A short poll interval: stop() waits for it, and tests start and stop one emulator each.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="mailchimp-emulator", daemon=True
        )
        self._thread.start()
        return self

    def __enter__(self) -> MailchimpEmulator:
        return self.start()

    # -- dispatch: connection limit, auth, bodiless faults, problem+json --------------------------
    def dispatch(self, request: Request) -> Response | None:
        with self._gate:
            self.inflight += 1
            self.peak_inflight = max(self.peak_inflight, self.inflight)
            over = self.inflight > self.max_connections
            if over:
                self.connection_limit_hits += 1
        try:
            if over:
                return problem_response(
                    Problem(429, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.")
                )
            return self._dispatch(request)
        finally:
            with self._gate:
                self.inflight -= 1

    def _dispatch(self, request: Request) -> Response | None:
        if self.latency_s:
            time.sleep(self.latency_s)
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if method != request.method or not match:
                continue
            with self._lock:
                self.calls[f"{method} {pattern.pattern[:-2]}"] += 1
            fault = self._take_fault(request.method, request.path)
            if fault is not None:
                return fault_response(fault)
            if not request.path.startswith("/_emulator/"):
                refused = self._check_auth(request)
                if refused is not None:
                    return refused
            request.match = match
            try:
                return handler(request)
            except Problem as problem:
                return problem_response(problem)
        return problem_response(not_found())

    def _check_auth(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        key = ""
        if header.lower().startswith("basic "):
            try:
                key = base64.b64decode(header[6:].strip()).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                key = ""
        elif header.lower().startswith(("bearer ", "apikey ")):
            key = header.split(" ", 1)[1].strip()
        if not header:
            return problem_response(Problem(401, "API Key Missing", "Your request did not include an API key."))
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return problem_response(
                Problem(
                    401,
                    "API Key Invalid",
                    "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
                )
            )
        return None

    # -- routes -------------------------------------------------------------------------------
    def _register(self) -> None:
        p = PREFIX
        self.add_route("GET", p + r"/ping", lambda r: ok({"health_status": "Everything's Chimpy!"}))
        self.add_route("GET", p + _L, self._get_list)
        self.add_route("POST", p + _L, self._batch_subscribe)
        self.add_route("GET", p + _L + r"/merge-fields", self._merge_fields)
        self.add_route("GET", p + _L + r"/segments", self._segments)
        self.add_route("GET", p + _L + r"/members", self._list_members)
        self.add_route("POST", p + _L + r"/members", self._create_member)
        self.add_route("GET", p + _M, self._get_member)
        self.add_route("PUT", p + _M, self._put_member)
        self.add_route("PATCH", p + _M, self._patch_member)
        self.add_route("DELETE", p + _M, self._archive_member)
        self.add_route("GET", p + _M + r"/tags", self._get_tags)
        self.add_route("POST", p + _M + r"/tags", self._post_tags)
        self.add_route("POST", p + _M + r"/actions/delete-permanent", self._delete_permanent)
        self.add_route("GET", p + _L + r"/webhooks", self._list_webhooks)
        self.add_route("POST", p + _L + r"/webhooks", self._create_webhook)
        self.add_route("DELETE", p + _L + r"/webhooks/(?P<wid>[^/]+)", self._delete_webhook)
        self.add_route("POST", p + r"/batches", self._submit_batch)
        self.add_route("GET", p + r"/batches/(?P<bid>[^/]+)", self._get_batch)
        self.add_route("GET", r"/_emulator/batch-results/(?P<bid>[^/]+)\.tar\.gz", self._batch_result)

    def _audience(self, request: Request) -> Audience:
        assert request.match is not None
        if request.match.group("list") != self.audience.list_id:
            raise not_found()
        return self.audience

    def _member(self, request: Request) -> Member:
        assert request.match is not None
        found = self._audience(request).find(request.match.group("key"))
        if found is None:
            raise not_found()
        return found

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            raise invalid("We encountered an unspecified JSON parsing error.") from None
        if not isinstance(body, dict):
            raise invalid("The resource submitted could not be validated.")
        return body

    def _get_list(self, request: Request) -> Response:
        audience = self._audience(request)
        with audience.lock:
            counts = {
                s: sum(1 for m in audience.members.values() if m.status == s)
                for s in ("subscribed", "unsubscribed", "cleaned")
            }
        payload = {
            "id": audience.list_id,
            "web_id": 1,
            "name": audience.name,
            "double_optin": audience.double_optin,
            "stats": {
                "member_count": counts["subscribed"],
                "unsubscribe_count": counts["unsubscribed"],
                "cleaned_count": counts["cleaned"],
            },
        }
        return ok(select_fields(payload, request.arg("fields"), request.arg("exclude_fields")))

    def _segments(self, request: Request) -> Response:
        """Tags are static segments; only those are kept here."""
        audience = self._audience(request)
        kind = request.arg("type")
        if kind not in (None, "", "static", "saved", "fuzzy"):
            raise invalid("The value for type is not valid.")
        count = int_arg(request, "count", 10)
        if count > MAX_COUNT:
            raise invalid(f"The count parameter must be at most {MAX_COUNT}.")
        offset = int_arg(request, "offset", 0)
        with audience.lock:
            rows = (
                []
                if kind in ("saved", "fuzzy")
                else [
                    {
                        "id": tag_id,
                        "name": name,
                        "type": "static",
                        "list_id": audience.list_id,
                        "member_count": sum(1 for m in audience.members.values() if name in m.tags),
                    }
                    for name, tag_id in audience.tag_ids.items()
                ]
            )
        payload = {"segments": rows[offset : offset + count], "list_id": audience.list_id, "total_items": len(rows)}
        return ok(select_fields(payload, request.arg("fields"), request.arg("exclude_fields"), item_keys=SEGMENT_KEYS))

    def _merge_fields(self, request: Request) -> Response:
        audience = self._audience(request)
        fields = [
            {
                "merge_id": i + 1,
                "tag": tag,
                "name": tag.title(),
                "type": "address" if tag == "ADDRESS" else "text",
                "required": False,
                "list_id": audience.list_id,
            }
            for i, tag in enumerate(audience.merge_tags)
        ]
        payload = {"merge_fields": fields, "list_id": audience.list_id, "total_items": len(fields), "_links": []}
        return ok(
            select_fields(payload, request.arg("fields"), request.arg("exclude_fields"), item_keys=MERGE_FIELD_KEYS)
        )

    def _list_members(self, request: Request) -> Response:
        audience = self._audience(request)
        refused = sorted(self.refuse_params & set(request.query))
        if refused:  # a knob: play a server that lacks an optional parameter
            raise invalid(f"The parameter {refused[0]} is not supported.")
        count = int_arg(request, "count", 10)
        offset = int_arg(request, "offset", 0)
        if count > MAX_COUNT:
            raise invalid(f"The count parameter must be at most {MAX_COUNT}.")
        status = request.arg("status")
        if status and status not in WRITABLE_STATUSES | {"archived"}:
            raise invalid("The value for status is not valid.")
        since = request.arg("since_last_changed")
        before = request.arg("before_last_changed")
        since_at = query_time(since, "since_last_changed") if since else None
        before_at = query_time(before, "before_last_changed") if before else None
        sort_field = request.arg("sort_field")
        if sort_field and sort_field not in SORT_FIELDS:
            raise invalid("The value for sort_field is not valid.")
        if request.arg("sort_dir") not in (None, "", "ASC", "DESC"):  # an enum of the two [SPEC]
            raise invalid("The value for sort_dir is not valid.")
        with audience.lock:
            rows = [
                m
                for m in audience.members.values()
                if (m.status == status if status else m.status != "archived")
                and (since_at is None or m.last_changed > since_at)
                and (before_at is None or m.last_changed < before_at)
            ]
            if sort_field:
                rows.sort(
                    key=lambda m: getattr(m, sort_field) if sort_field != "last_changed" else m.last_changed,
                    reverse=request.arg("sort_dir") == "DESC",
                )
            page = [audience.member_json(m) for m in rows[offset : offset + count]]
        payload = {"members": page, "list_id": audience.list_id, "total_items": len(rows), "_links": []}
        return ok(select_fields(payload, request.arg("fields"), request.arg("exclude_fields"), item_keys=MEMBER_KEYS))

    def _get_member(self, request: Request) -> Response:
        member = self._member(request)
        return ok(
            select_fields(
                self.audience.member_json(member),
                request.arg("fields"),
                request.arg("exclude_fields"),
                keys=MEMBER_KEYS,
            )
        )

    def _create_member(self, request: Request) -> Response:
        audience = self._audience(request)
        body = self._body(request)
        email = check_email(body.get("email_address"))
        status = status_value(body.get("status"), "status", required=True)
        existing = audience.find(subscriber_hash(email))
        if existing is not None and existing.status != "archived":
            raise Problem(
                400, "Member Exists", f"{email} is already a list member. Use PUT to insert or update list members."
            )
        member = self._add_or_revive(existing, email, status, body, tags=body.get("tags") or ())
        return ok(audience.member_json(member))

    def _add_or_revive(
        self, existing: Member | None, email: str, status: str, body: Mapping[str, Any], *, tags: Iterable[str]
    ) -> Member:
        audience = self.audience
        if existing is None:
            return audience.create(
                email, status=status, merge_fields=body.get("merge_fields"), tags=tags, interests=body.get("interests")
            )
        # An archived member comes back with the status sent; its old status is not restored.
        with audience.lock:
            if status == "subscribed" and (existing.archived_from in OPTED_OUT or existing.compliance_review):
                raise compliance(existing.email)
            existing.status = status
            audience.update(
                existing, merge_fields=body.get("merge_fields"), tags_add=tags, interests=body.get("interests")
            )
            existing.last_changed = audience.now()
        return existing

    def _put_member(self, request: Request) -> Response:
        audience = self._audience(request)
        assert request.match is not None
        key = request.match.group("key")
        body = self._body(request)
        existing = audience.find(key)
        email = check_email(body.get("email_address") or (existing.email if existing else None))
        if re.fullmatch(r"[0-9a-f]{32}", key) and key != subscriber_hash(email):
            raise invalid("The subscriber hash does not match the email address.")
        if self._refused(email):  # refuse_writes: a direct upsert fails like one operation of a batch
            raise Problem(500, "Internal Server Error", "An unexpected error occurred.")
        status = status_value(body.get("status"), "status", required=False)
        if_new = status_value(body.get("status_if_new"), "status_if_new", required=False)
        if existing is None or existing.status == "archived":
            if not (status or if_new):
                raise invalid(
                    "The resource submitted could not be validated. For field-specific details, see the "
                    "'errors' array.",
                    field_name="status_if_new",
                    message="This value should not be blank.",
                )
            if existing is None and subscriber_hash(email) in audience.forgotten:
                raise forgotten(email)
            member = self._add_or_revive(existing, email, status or if_new, body, tags=())
            self._notify("subscribe", member.email, source="api")
            return ok(audience.member_json(member))
        if audience.update(
            existing, status=status or None, merge_fields=body.get("merge_fields"), interests=body.get("interests")
        ):
            self._notify("profile", existing.email, source="api")
        return ok(audience.member_json(existing))

    def _patch_member(self, request: Request) -> Response:
        member = self._member(request)
        body = self._body(request)
        status = status_value(body.get("status"), "status", required=False)
        email = check_email(body["email_address"]) if body.get("email_address") else None
        if member.status == "archived" and not status:
            raise not_found()
        self.audience.update(
            member,
            email=email,
            status=status or None,
            merge_fields=body.get("merge_fields"),
            interests=body.get("interests"),
        )
        return ok(self.audience.member_json(member))

    def _archive_member(self, request: Request) -> Response:
        member = self._member(request)
        if member.status == "archived":
            raise not_found()
        self.audience.archive(member)
        self._notify("unsubscribe", member.email, source="api", extra={"data[action]": "delete"})
        return Response.empty(204)

    def _delete_permanent(self, request: Request) -> Response:
        member = self._member(request)
        self.audience.delete_permanent(member)
        return Response.empty(204)

    def _get_tags(self, request: Request) -> Response:
        """A member's tags, paged like every collection (count 10 by default, 1000 at most)."""
        member = self._member(request)
        count = int_arg(request, "count", 10)
        if count > MAX_COUNT:
            raise invalid(f"The count parameter must be at most {MAX_COUNT}.")
        offset = int_arg(request, "offset", 0)
        tags = [{"id": self.audience.tag_id(t), "name": t, "date_added": iso(member.last_changed)} for t in member.tags]
        payload = {"tags": tags[offset : offset + count], "total_items": len(tags), "_links": []}
        return ok(select_fields(payload, request.arg("fields"), request.arg("exclude_fields"), item_keys=TAG_KEYS))

    def _post_tags(self, request: Request) -> Response:
        member = self._member(request)
        body = self._body(request)
        tags = body.get("tags")
        if not isinstance(tags, list):
            raise invalid(
                "The resource submitted could not be validated.",
                field_name="tags",
                message="This value should be of type iterable.",
            )
        add: list[str] = []
        remove: list[str] = []
        for tag in tags:
            if not isinstance(tag, dict) or not tag.get("name") or tag.get("status") not in {"active", "inactive"}:
                raise invalid(
                    "The resource submitted could not be validated.",
                    field_name="tags",
                    message="Each tag needs a name and a status of active or inactive.",
                )
            (add if tag["status"] == "active" else remove).append(str(tag["name"]))
        self.audience.update(member, tags_add=add, tags_remove=remove)
        return Response(status=204, headers={"Content-Type": "application/json; charset=utf-8"})

    # -- batch subscribe ----------------------------------------------------------------------
    def _batch_subscribe(self, request: Request) -> Response:
        audience = self._audience(request)
        body = self._body(request)
        members = body.get("members")
        if not isinstance(members, list):
            raise invalid(
                "The resource submitted could not be validated.",
                field_name="members",
                message="This value should not be blank.",
            )
        if len(members) > MAX_BATCH_MEMBERS:
            raise invalid(
                f"You may only add or update up to {MAX_BATCH_MEMBERS} members per call.",
                field_name="members",
                message="This collection should contain 500 elements or less.",
            )
        for i, item in enumerate(members):  # each needs status or status_if_new (anyOf in the reference)
            if not isinstance(item, dict) or not (item.get("status") or item.get("status_if_new")):
                raise invalid(
                    "The resource submitted could not be validated. For field-specific details, see the "
                    "'errors' array.",
                    field_name=f"members.item:{i}.status",
                    message="This value should not be blank.",
                )
        update_existing = bool(body.get("update_existing", False))
        sync_tags = bool(body.get("sync_tags", False))
        skip_dupes = bool_param(request, "skip_duplicate_check")
        bool_param(request, "skip_merge_validation")
        created: list[dict[str, Any]] = []
        updated: list[dict[str, Any]] = []
        errors: list[dict[str, str]] = []
        seen: set[str] = set()
        for item in members:
            raw_email = str(item.get("email_address") or "")
            try:
                h = subscriber_hash(check_email(raw_email))
                if h in seen:
                    if skip_dupes:
                        continue
                    raise invalid(f"{raw_email} is a duplicate in this request.")
                seen.add(h)
                if self._refused(raw_email):
                    errors.append(
                        batch_error(raw_email, "The member could not be saved; try again later.", "ERROR_GENERIC")
                    )
                    continue
                outcome, member = self._batch_one(audience, item, update_existing=update_existing, sync_tags=sync_tags)
            except _Exists as exists:
                errors.append(batch_error(raw_email, str(exists), "ERROR_CONTACT_EXISTS"))
                continue
            except Problem as problem:
                errors.append(
                    batch_error(
                        raw_email, problem.detail, "ERROR_GENERIC", problem.errors[0] if problem.errors else None
                    )
                )
                continue
            (created if outcome == "created" else updated).append(audience.member_json(member))
            self._notify("subscribe" if outcome == "created" else "profile", member.email, source="api")
        return ok(
            {
                "new_members": created,
                "updated_members": updated,
                "errors": errors,
                "total_created": len(created),
                "total_updated": len(updated),
                "error_count": len(errors),
                "_links": [],
            }
        )

    def _batch_one(
        self, audience: Audience, item: Mapping[str, Any], *, update_existing: bool, sync_tags: bool
    ) -> tuple[str, Member]:
        email = check_email(item.get("email_address"))
        status = status_value(item.get("status"), "status", required=False)
        if_new = status_value(item.get("status_if_new"), "status_if_new", required=False)
        tags = item.get("tags") or []
        if not isinstance(tags, list):
            raise invalid(
                "Tags must be a list of names.", field_name="tags", message="This value should be of type array."
            )
        existing = audience.find(subscriber_hash(email))
        if existing is None or existing.status == "archived":
            if existing is None and subscriber_hash(email) in audience.forgotten:
                raise forgotten(email)
            return "created", self._add_or_revive(existing, email, status or if_new, item, tags=tags)
        if not update_existing:
            raise _Exists(
                f"{email} is already a list member, do you want to update? please provide "
                "update_existing:true in the request body"
            )
        with audience.lock:
            audience.update(
                existing,
                status=status or None,  # status_if_new alone leaves an existing member's status as it is
                merge_fields=item.get("merge_fields"),
                replace_tags=tags if sync_tags else None,
                tags_add=() if sync_tags else tags,
                interests=item.get("interests"),
            )
        return "updated", existing

    # -- webhooks -----------------------------------------------------------------------------
    def _list_webhooks(self, request: Request) -> Response:
        audience = self._audience(request)
        with audience.lock:
            hooks = [
                {
                    "id": w.id,
                    "url": w.url,
                    "events": w.events,
                    "sources": w.sources,
                    "list_id": audience.list_id,
                    "signing_enabled": True,
                    "signing_secret": "",
                }
                for w in audience.webhooks.values()
            ]
        return ok({"webhooks": hooks, "list_id": audience.list_id, "total_items": len(hooks)})

    def _create_webhook(self, request: Request) -> Response:
        audience = self._audience(request)
        body = self._body(request)
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise invalid(
                "The resource submitted could not be validated.",
                field_name="url",
                message="This value should be a valid URL.",
            )
        hook_id = hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest()[:10]
        secret = hashlib.sha256(f"{hook_id}{time.time_ns()}".encode()).hexdigest()
        events = {
            k: bool((body.get("events") or {}).get(k, False))
            for k in ("subscribe", "unsubscribe", "profile", "cleaned", "upemail", "campaign")
        }
        sources = {k: bool((body.get("sources") or {}).get(k, False)) for k in ("user", "admin", "api")}
        with audience.lock:
            audience.webhooks[hook_id] = Webhook(
                id=hook_id, url=url, events=events, sources=sources, signing_secret=secret
            )
        return ok(
            {
                "id": hook_id,
                "url": url,
                "events": events,
                "sources": sources,
                "list_id": audience.list_id,
                "signing_enabled": True,
                "signing_secret": secret,
            }
        )

    def _delete_webhook(self, request: Request) -> Response:
        audience = self._audience(request)
        assert request.match is not None
        with audience.lock:
            if audience.webhooks.pop(request.match.group("wid"), None) is None:
                raise not_found()
        return Response.empty(204)

    # -- /batches -----------------------------------------------------------------------------
    def _submit_batch(self, request: Request) -> Response:
        body = self._body(request)
        operations = body.get("operations")
        if not isinstance(operations, list) or not operations:
            raise invalid(
                "The resource submitted could not be validated.",
                field_name="operations",
                message="This value should not be blank.",
            )
        for i, op in enumerate(operations):
            if (
                not isinstance(op, dict)
                or op.get("method") not in {"GET", "POST", "PUT", "PATCH", "DELETE"}
                or not isinstance(op.get("path"), str)
            ):
                raise invalid(
                    "The resource submitted could not be validated.",
                    field_name=f"operations.item:{i}",
                    message="Each operation needs a method and a path.",
                )
            if "body" in op and not isinstance(op["body"], str):  # the body is a JSON *string* [BULK]
                raise invalid(
                    "Schema describes string, object found instead",
                    field_name=f"operations.item:{i}.body",
                    message="Schema describes string, object found instead",
                )
        batch_id = f"b{next(self._batch_ids):09d}"
        submitted = iso(self.audience.now())
        results = [self._run_operation(op) for op in operations]
        errored = sum(1 for r in results if r["status_code"] >= 400)
        self._batch_results[batch_id] = tarball(batch_id, results)
        with self._lock:
            self._batches[batch_id] = {
                "id": batch_id,
                "status": "finished",
                "total_operations": len(operations),
                "finished_operations": len(operations),
                "errored_operations": errored,
                "submitted_at": submitted,
                "completed_at": iso(self.audience.now()),
                "response_body_url": f"{self.url}/_emulator/batch-results/{batch_id}.tar.gz",
                "_polls": self.batch_polls_before_finished,
            }
        return ok(
            {
                "id": batch_id,
                "status": "pending",
                "total_operations": len(operations),
                "finished_operations": 0,
                "errored_operations": 0,
                "submitted_at": submitted,
                "completed_at": "",
                "response_body_url": "",
            }
        )

    def _run_operation(self, op: Mapping[str, Any]) -> dict[str, Any]:
        params = op.get("params") or {}
        path = PREFIX + "/" + str(op["path"]).lstrip("/")
        inner = Request(
            method=str(op["method"]),
            path=path,
            query={k: [str(v)] for k, v in params.items()} if isinstance(params, dict) else parse_qs(str(params)),
            headers={},
            body=str(op.get("body") or "").encode(),
        )
        response: Response | None = None
        if self._refused(self._operation_email(op, path)):
            response = problem_response(Problem(500, "Internal Server Error", "An unexpected error occurred."))
        for method, pattern, handler in () if response is not None else self._routes:
            match = pattern.match(path)
            if method == inner.method and match and not path.startswith("/_emulator/"):
                inner.match = match
                try:
                    response = handler(inner)
                except Problem as problem:
                    response = problem_response(problem)
                break
        if response is None:
            response = problem_response(not_found())
        return {
            "status_code": response.status,
            "operation_id": op.get("operation_id"),
            "response": response.body.decode() or "{}",
        }

    def _operation_email(self, op: Mapping[str, Any], path: str) -> str:
        """The address a member operation of a batch is about (its body's, else the member's at that hash)."""
        found = re.search(r"/members/([0-9a-f]{32})", path)
        if not found:
            return ""
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            return str(json.loads(str(op.get("body") or "{}")).get("email_address") or "") or self._member_email(
                found[1]
            )
        return self._member_email(found[1])

    def _member_email(self, key: str) -> str:
        member = self.audience.find(key)
        return member.email if member is not None else ""

    def _get_batch(self, request: Request) -> Response:
        assert request.match is not None
        with self._lock:
            batch = self._batches.get(request.match.group("bid"))
            if batch is None:
                raise not_found()
            if batch["_polls"] > 0:
                batch["_polls"] -= 1
                view = {
                    **batch,
                    "status": "started",
                    "finished_operations": 0,
                    "completed_at": "",
                    "response_body_url": "",
                }
            else:
                view = dict(batch)
        view.pop("_polls", None)
        return ok(view)

    def _batch_result(self, request: Request) -> Response:
        assert request.match is not None
        data = self._batch_results.get(request.match.group("bid"))
        if data is None:
            return Response(
                status=404, body=b"<Error><Code>NoSuchKey</Code></Error>", headers={"Content-Type": "application/xml"}
            )
        return Response(status=200, body=data, headers={"Content-Type": "application/x-gzip"})


class _Exists(Exception):
    """A batch member that exists while update_existing is false."""
