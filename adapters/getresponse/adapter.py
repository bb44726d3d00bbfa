"""The GetResponse adapter: one campaign's contacts over the shared transport (providers/getresponse.md).

Reads page ``GET /contacts`` by ``changedOn`` (``_scan.py``) and fetch each contact's detail view for
its tags and custom field values; a periodic pass over Search Contacts type ``removed`` brings the
contacts that unsubscribed (hidden from the listing) as ``status: unsubscribed``. Writes follow the
find -> update / create recipe in ``_writes.py`` (creates answer 202 without an id).

``ProviderRecord.data`` is the contact's detail JSON plus ``nameParts`` ({first, last}: ``name`` split at
its first space), ``customFields`` ({name: value}) and ``status`` (``subscribed`` / ``unsubscribed``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, ClassVar, Final

from adapters._http import Transport
from adapters.base import Cursor, Page, ProviderRecord, WebhookEvent, WriteRequest, WriteResult
from adapters.errors import FatalProviderError, RetryableError
from adapters.getresponse import _writes as w
from adapters.getresponse._scan import Scan, read_token
from adapters.getresponse._wire import PROVIDER, ContactRefused, classify, format_time, parse_time
from adapters.getresponse.webhooks import parse_delivery, verify_delivery
from adapters.ratelimit import RateLimiter
from adapters.secret import Secret

log = logging.getLogger(__name__)

API_ROOT: Final = "https://api.getresponse.com/v3"
PAGE_SIZE: Final = 1000  # perPage 1-1000 [SKILL api-guide.md]; not validated server-side: always sent
MAX_CONNECTIONS: Final = 10  # simultaneous requests per account [LIMITS]
# Per account: 80 calls/s and 30,000 per 10 minutes [LIMITS]. The per-second one is kept 10% under: send
# and arrival times jitter, and a client pacing at exactly 80/s gets a few 429s.
DEFAULT_LIMITS: Final = ("72/1s", "30000/600s")
OPTOUT_TTL_S: Final = 60.0  # how long the campaign's removed-contacts list is trusted for creates
RECONCILE_EVERY: Final = dt.timedelta(days=1)


class GetResponseAdapter:
    """One GetResponse campaign. Satisfies ProviderAdapter, SupportsErase, SupportsFetchByIds, SupportsWebhooks."""

    lookback: ClassVar[dt.timedelta] = dt.timedelta(minutes=2)
    max_batch: ClassVar[int] = 100

    def __init__(
        self,
        *,
        api_key: Secret,
        campaign_id: str,
        name: str = "getresponse",
        base_url: str | None = None,
        domain: str | None = None,
        webhook_secret: Secret | None = None,
        page_size: int = PAGE_SIZE,
        rate_limit: str | None = None,
        reconcile_every: dt.timedelta = RECONCILE_EVERY,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = 5,
        max_wait_s: float = 300.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.name = name
        self.campaign_id = campaign_id
        self.page_size = max(1, min(int(page_size), PAGE_SIZE))
        self.reconcile_every = reconcile_every
        self._key = api_key.reveal()
        self._webhook_secret = webhook_secret.reveal() if webhook_secret else None
        self._clock = clock
        headers = {"X-Auth-Token": f"api-key {self._key}"}
        if domain:  # GetResponse MAX hosts need the account's domain [SKILL openapi.json servers]
            headers["X-Domain"] = domain
        self.transport = Transport(
            provider=PROVIDER,
            base_url=base_url or API_ROOT,
            headers=headers,
            limiter=account_limiter(self._key, rate_limit),
            max_connections=MAX_CONNECTIONS,
            secrets=(self._key,),
            classify=classify,
            attempts=attempts,
            max_wait_s=max_wait_s,
            sleep=sleep,
        )
        self._pool = ThreadPoolExecutor(max_workers=MAX_CONNECTIONS, thread_name_prefix="getresponse")
        self._lock = threading.Lock()
        self._meta = threading.Lock()  # one thread at a time reads or creates tags and custom fields
        self._tags: dict[str, str] | None = None  # name -> tagId
        self._fields: dict[str, str] | None = None  # name -> customFieldId
        self._optouts: tuple[float, dict[str, str]] | None = None  # (read at, email -> contactId)

    def __repr__(self) -> str:
        return f"GetResponseAdapter({self.name!r}, campaign {self.campaign_id!r})"

    # -- connection ---------------------------------------------------------------------------
    def check(self) -> None:
        self.transport.request("GET", "/accounts")
        try:
            self.transport.request("GET", f"/campaigns/{self.campaign_id}")
        except ContactRefused as exc:
            if exc.status in (400, 404):
                raise FatalProviderError(
                    f"{PROVIDER}: campaign (campaign_id) {self.campaign_id!r} not found", provider=PROVIDER, status=404
                ) from None
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.transport.close()

    # -- reading ------------------------------------------------------------------------------
    def read_contacts(self, cursor: Cursor) -> Iterator[Page]:
        """Pages in ``changedOn`` order, then (when due) the opted-out pass; every page cursor resumes.

        A read ends at the newest ``changedOn`` it saw (or its own start minus ``lookback``, if later);
        an incremental read starts ``lookback`` before its cursor and drops the ids its cursor already
        took at that second.
        """
        token = read_token(cursor.page_token)
        if token.get("pass") == "optouts":
            yield from self._optout_pass(Cursor.from_json(str(token["final"])), int(token.get("page") or 1))
            return
        started = str(token.get("started") or format_time(self._clock()))
        if token:
            scan = Scan.from_token(token)
        elif cursor.phase == "backfill" or cursor.updated_after is None:
            scan = Scan()
        else:
            scan = Scan(
                since=cursor.updated_after - self.lookback, prior=cursor.updated_after, prior_ids=cursor.boundary_ids
            )
        while True:
            rows = self._list_page(scan)
            keyed = [(str(row["contactId"]), _changed(row)) for row in rows]
            fresh = [row for row, key in zip(rows, keyed, strict=True) if not scan.taken(*key)]
            records = self._details(fresh)
            scan = scan.advance(keyed)
            if len(rows) >= self.page_size:
                mid = replace(cursor, page_token=scan.to_token(started=started))
                yield Page(records=records, next_cursor=mid)
                continue
            final = self._final(scan, cursor, started)
            if not self._reconcile_due(cursor):
                yield Page(records=records, next_cursor=final)
                return
            yield Page(records=records, next_cursor=self._optout_cursor(final, 1))
            yield from self._optout_pass(final, 1)
            return

    def _final(self, scan: Scan, cursor: Cursor, started: str) -> Cursor:
        """The newest ``changedOn`` read, or when this read began minus ``lookback`` if that is later.

        The second keeps idle cycles cheap: without it a quiet campaign would re-read (and fetch the
        details of) whatever changed in the ``lookback`` before its last change, every cycle.
        """
        after, ids = scan.boundary()
        floor = parse_time(started) - self.lookback
        if after is None or after < floor:
            after, ids = floor, frozenset()
        return Cursor(phase="incremental", updated_after=after, boundary_ids=ids, extra=dict(cursor.extra))

    def _reconcile_due(self, cursor: Cursor) -> bool:
        last = cursor.extra.get("optouts_read_at")
        try:
            return last is None or self._clock() - parse_time(last) >= self.reconcile_every
        except ValueError:
            return True

    @staticmethod
    def _optout_cursor(final: Cursor, page: int) -> Cursor:
        token = json.dumps({"pass": "optouts", "page": page, "final": final.to_json()}, sort_keys=True)
        return replace(final, page_token=token)

    def _optout_pass(self, final: Cursor, page: int) -> Iterator[Page]:
        """Every unsubscribed or removed contact of the campaign, as ``status: unsubscribed`` records."""
        while True:
            rows = self._search_removed(page)
            records = [self._optout_record(row) for row in rows if row.get("contactId") and row.get("email")]
            if len(rows) >= self.page_size:
                page += 1
                yield Page(records=records, next_cursor=self._optout_cursor(final, page))
                continue
            extra = {**final.extra, "optouts_read_at": format_time(self._clock())}
            yield Page(records=records, next_cursor=replace(final, page_token=None, extra=extra))
            return

    def _search_removed(self, page: int) -> list[dict[str, Any]]:
        body = {
            "subscribersType": ["removed"],
            "sectionLogicOperator": "or",
            "section": [
                {
                    "campaignIdsList": [self.campaign_id],
                    "logicOperator": "and",
                    "subscriberCycle": ["receiving_autoresponder", "not_receiving_autoresponder"],
                    "subscriptionDate": "all_time",
                    "conditions": [],
                }
            ],
        }
        answer = self.transport.request(
            "POST", "/search-contacts/contacts", params={"page": page, "perPage": self.page_size}, json=body
        ).json()
        return _rows(answer, "POST /search-contacts/contacts")

    @staticmethod
    def _optout_record(row: Mapping[str, Any]) -> ProviderRecord:
        data = {**row, "status": "unsubscribed", "nameParts": _name_parts(row.get("name"))}
        return ProviderRecord(remote_id=str(row["contactId"]), data=data, updated_at=_changed_or_none(row))

    def _list_page(self, scan: Scan) -> list[dict[str, Any]]:
        answer = self.transport.request("GET", "/contacts", params=scan.params(self.campaign_id, self.page_size))
        return [row for row in _rows(answer.json(), "GET /contacts") if row.get("contactId")]

    def _details(self, rows: Sequence[Mapping[str, Any]]) -> list[ProviderRecord]:
        """The detail view of each listed contact (tags, custom fields), up to 10 at a time."""
        found = self._pool.map(self._detail, [str(row["contactId"]) for row in rows])
        return [record for record in found if record is not None]

    def _detail(self, contact_id: str) -> ProviderRecord | None:
        try:
            contact = self.transport.request("GET", f"/contacts/{contact_id}").json()
        except ContactRefused as exc:
            if exc.status == 404:  # unsubscribed or removed since it was listed: the opt-out pass has it
                return None
            raise
        if not isinstance(contact, dict):
            raise RetryableError(f"{PROVIDER} GET /contacts/{{id}} -> 200 without a contact", provider=PROVIDER)
        return self._record(contact)

    @staticmethod
    def _record(contact: dict[str, Any]) -> ProviderRecord:
        custom = {
            str(v.get("name")): ", ".join(str(x) for x in (v.get("value") or ()))
            for v in contact.get("customFieldValues") or ()
            if isinstance(v, dict) and v.get("name")
        }
        data = {
            **contact,
            "nameParts": _name_parts(contact.get("name")),
            "customFields": custom,
            "status": "subscribed",
        }
        return ProviderRecord(remote_id=str(contact["contactId"]), data=data, updated_at=_changed_or_none(contact))

    def fetch_contacts(self, remote_ids: Sequence[str]) -> list[ProviderRecord]:
        """Current contacts by id (webhook hints): opted-out ones as ``status: unsubscribed``, gone ones deleted."""
        found = list(self._pool.map(self._detail, list(remote_ids)))
        missing = [rid for rid, record in zip(remote_ids, found, strict=True) if record is None]
        removed: dict[str, ProviderRecord] = {}
        if missing:
            page = 1
            while True:
                rows = self._search_removed(page)
                for row in rows:
                    if str(row.get("contactId")) in missing and row.get("email"):
                        removed[str(row["contactId"])] = self._optout_record(row)
                if len(rows) < self.page_size:
                    break
                page += 1
        return [
            record or removed.get(rid) or ProviderRecord(remote_id=rid, data={}, deleted=True)
            for rid, record in zip(remote_ids, found, strict=True)
        ]

    # -- writing ------------------------------------------------------------------------------
    def write_contacts(self, requests: Sequence[WriteRequest]) -> list[WriteResult]:
        """One result per request, in order; up to 10 contacts in flight (see ``_writes`` for the recipe)."""
        if len(requests) > self.max_batch:
            raise ValueError(f"at most {self.max_batch} requests per write call")
        batch = list(requests)
        wanted = [e for r in batch if r.remote_id is None for e in (r.previous_email, r.email) if e]
        known = self._lookup(wanted)
        return list(self._pool.map(w.each(batch, lambda r: self._write_one(r, known)), range(len(batch))))

    def _write_one(self, request: WriteRequest, known: Mapping[str, str] | None = None) -> WriteResult:
        body = w.body_of(request)
        contact_id = request.remote_id
        for email in (request.previous_email, request.email):
            if contact_id is None and email:
                contact_id = self.find_id(email) if known is None else known.get(email.strip().lower())
        if contact_id is not None:
            result = self._update(request, contact_id, body)
            if result is not None:
                return result
            self._forget_optouts()  # gone since it was linked: perhaps an unsubscribe the cached list predates
        if body.opts_out:  # never create an opted-out person
            return WriteResult(ref=request.ref, ok=False, error="opted out: not created", suppressed=True)
        if request.email.strip().lower() in self._opted_out():
            return WriteResult(ref=request.ref, ok=False, error="unsubscribed in GetResponse", suppressed=True)
        return self._create(request, body)

    def _update(self, request: WriteRequest, contact_id: str, body: w.Body) -> WriteResult | None:
        """Update (or remove, for an opt-out) a known contact; None when it is not there any more."""
        try:
            if body.opts_out:
                self.transport.request("DELETE", f"/contacts/{contact_id}")
                self._forget_optouts()
                return WriteResult(ref=request.ref, ok=True, remote_id=contact_id)
            main: dict[str, Any] = {}
            if body.name is not None:
                main["name"] = body.name
            if request.previous_email and request.previous_email != request.email:
                main["email"] = request.email
            if body.tags is not None:
                main["tags"] = [{"tagId": t} for t in self._tag_ids(body.tags)]
            if main:
                self.transport.request("POST", f"/contacts/{contact_id}", json=main)
            values = w.values_of(body.custom, self._field_ids())
            if values:
                self.transport.request(
                    "POST", f"/contacts/{contact_id}/custom-fields", json={"customFieldValues": values}
                )
        except ContactRefused as exc:
            if exc.status == 404:
                return None
            return w.failed(request, exc)
        return WriteResult(ref=request.ref, ok=True, remote_id=contact_id)

    def _create(self, request: WriteRequest, body: w.Body) -> WriteResult:
        payload: dict[str, Any] = {"email": request.email, "campaign": {"campaignId": self.campaign_id}}
        if body.name is not None:
            payload["name"] = body.name
        if body.tags:
            payload["tags"] = [{"tagId": t} for t in self._tag_ids(body.tags)]
        values = w.values_of({k: v for k, v in body.custom.items() if v is not None}, self._field_ids())
        if values:
            payload["customFieldValues"] = values
        try:
            self.transport.request("POST", "/contacts", json=payload, idempotent=False)
        except ContactRefused as exc:
            if not w.exists(exc):
                return w.failed(request, exc)
            contact_id = self.find_id(request.email)  # there already (or still queued): update, never re-create
            if contact_id is not None:
                return self._update(request, contact_id, body) or WriteResult(ref=request.ref, ok=True)
        return WriteResult(ref=request.ref, ok=True, remote_id=None)  # 202: the next read resolves the id

    def _lookup(self, emails: Sequence[str]) -> dict[str, str] | None:
        """Email -> contactId for many addresses at once, or None to find them one by one.

        One exact-match find costs a call per address; listing the campaign costs a call per 1000
        contacts. A batch (a migration, mostly) lists when that is cheaper. A contact the listing misses
        (removed meanwhile, or still queued) is caught by the create's 409 and updated after all.
        """
        if len(emails) < 3:
            return None
        head = self.transport.request(
            "GET", "/contacts", params={"query[campaignId]": self.campaign_id, "perPage": 1, "fields": "contactId"}
        )
        try:
            pages = -(-int(head.headers.get("TotalCount", "")) // PAGE_SIZE)
        except ValueError:
            return None
        if pages + 1 >= len(emails):
            return None
        wanted = {e.strip().lower() for e in emails}
        found: dict[str, str] = {}
        for page in range(1, pages + 1):
            params = [
                ("query[campaignId]", self.campaign_id),
                ("sort[createdOn]", "ASC"),  # edits do not move a contact between pages
                ("fields", "contactId,email"),
                ("perPage", str(PAGE_SIZE)),
                ("page", str(page)),
            ]
            for row in _rows(self.transport.request("GET", "/contacts", params=params).json(), "GET /contacts"):
                email = str(row.get("email", "")).lower()
                if email in wanted and row.get("contactId"):
                    found[email] = str(row["contactId"])
        return found

    def find_id(self, email: str) -> str | None:
        """The contactId of ``email`` in the campaign (exact match), or None (absent, queued or opted out)."""
        params = {
            "query[email]": email,
            "query[campaignId]": self.campaign_id,
            "additionalFlags": "exactMatch",
            "fields": "contactId,email",
            "perPage": 2,
        }
        rows = _rows(self.transport.request("GET", "/contacts", params=params).json(), "GET /contacts")
        wanted = email.strip().lower()
        return next((str(r["contactId"]) for r in rows if str(r.get("email", "")).lower() == wanted), None)

    def _opted_out(self) -> dict[str, str]:
        """The campaign's unsubscribed and removed contacts (email -> id), read at most once a minute."""
        with self._lock:
            cached = self._optouts
        if cached is not None and time.monotonic() - cached[0] < OPTOUT_TTL_S:
            return cached[1]
        emails: dict[str, str] = {}
        page = 1
        while True:
            rows = self._search_removed(page)
            emails.update({str(r["email"]).lower(): str(r.get("contactId")) for r in rows if r.get("email")})
            if len(rows) < self.page_size:
                break
            page += 1
        with self._lock:
            self._optouts = (time.monotonic(), emails)
        return emails

    def _forget_optouts(self) -> None:
        with self._lock:
            self._optouts = None

    def _tag_ids(self, names: Sequence[str]) -> list[str]:
        """Tag ids for names, creating missing tags; names GetResponse refuses are left out (logged)."""
        with self._meta:
            if self._tags is None:
                self._tags = {str(t["name"]): str(t["tagId"]) for t in self._all("/tags") if t.get("name")}
            known = self._tags
            out = []
            for name in names:
                if name not in known:
                    try:
                        tag = self.transport.request("POST", "/tags", json={"name": name}).json()
                        known[name] = str(tag["tagId"])
                    except ContactRefused as exc:
                        if exc.status == 409:  # created meanwhile elsewhere: read the tags again
                            self._tags = {str(t["name"]): str(t["tagId"]) for t in self._all("/tags") if t.get("name")}
                            known = self._tags
                        if name not in known:
                            log.warning("%s: tag name refused by GetResponse (%s); not written", PROVIDER, exc.status)
                            continue
                out.append(known[name])
            return out

    def _field_ids(self) -> dict[str, str]:
        with self._meta:
            if self._fields is None:
                rows = self._all("/custom-fields")
                self._fields = {str(f["name"]): str(f["customFieldId"]) for f in rows if f.get("name")}
            return self._fields

    def _all(self, path: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            rows = _rows(self.transport.request("GET", path, params={"page": page, "perPage": PAGE_SIZE}).json(), path)
            out.extend(rows)
            if len(rows) < PAGE_SIZE:
                return out
            page += 1

    # -- removal ------------------------------------------------------------------------------
    def erase_contact(self, *, remote_id: str | None, email: str) -> None:
        """``forget``: remove the contact from the campaign (GetResponse's API has no harder delete)."""
        contact_id = remote_id or (self.find_id(email) if email else None)
        if contact_id is None:
            return
        try:
            self.transport.request("DELETE", f"/contacts/{contact_id}")
        except ContactRefused as exc:
            if exc.status != 404:
                raise

    # -- webhooks -----------------------------------------------------------------------------
    def verify_webhook(self, *, method: str, url: str, headers: Mapping[str, str], body: bytes) -> None:
        verify_delivery(self._webhook_secret, url=url)

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        return parse_delivery(body, campaign_id=self.campaign_id)


class _Limits(RateLimiter):
    """Several windows at once (80 a second and 30,000 in 10 minutes): a call waits for each."""

    def __init__(self, limiters: Sequence[RateLimiter]) -> None:
        super().__init__(limiters[0].calls, limiters[0].per_s)
        self._all = tuple(limiters)

    def acquire(self) -> float:
        return sum(limiter.acquire() for limiter in self._all)

    def __repr__(self) -> str:
        return "+".join(repr(limiter) for limiter in self._all)


_LIMITERS: dict[tuple[str, str], RateLimiter] = {}
_LIMITERS_LOCK: Final = threading.Lock()


def account_limiter(api_key: str, spec: str | None) -> RateLimiter:
    """One limiter per account and spec, shared by every adapter on that API key.

    The default is GetResponse's published pair (80/s and 30,000 per 10 min); a configured
    ``rate_limit`` replaces both.
    """
    account = hashlib.sha256(api_key.encode()).hexdigest()
    key = (account, spec or "default")
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            specs = (spec,) if spec else DEFAULT_LIMITS
            _LIMITERS[key] = _Limits([RateLimiter.parse(s) for s in specs])
        return _LIMITERS[key]


def _rows(answer: Any, call: str) -> list[dict[str, Any]]:
    if not isinstance(answer, list):
        raise RetryableError(f"{PROVIDER} {call} -> 200 without a list", provider=PROVIDER)
    return [row for row in answer if isinstance(row, dict)]


EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _changed(row: Mapping[str, Any]) -> dt.datetime:
    """``changedOn`` (aware UTC); a contact without a readable one sorts first rather than vanishing."""
    return _changed_or_none(row) or EPOCH


def _changed_or_none(row: Mapping[str, Any]) -> dt.datetime | None:
    try:
        return parse_time(str(row["changedOn"]))
    except (KeyError, ValueError):
        return None


def _name_parts(name: Any) -> dict[str, str | None]:
    """GetResponse's one ``name`` as first (up to the first space) and last (the rest)."""
    text = str(name).strip() if isinstance(name, str) else ""
    first, _, last = text.partition(" ")
    return {"first": first or None, "last": last.strip() or None}


def create_adapter(name: str, options: Mapping[str, Any]) -> GetResponseAdapter:
    """Build from a ``[providers.<name>]`` table (secrets as Secret, ``type`` always present)."""
    api_key = options["api_key"]
    secret = options.get("webhook_secret")
    return GetResponseAdapter(
        name=name,
        api_key=api_key if isinstance(api_key, Secret) else Secret(str(api_key)),
        campaign_id=str(options["campaign_id"]),
        base_url=options.get("base_url"),
        domain=options.get("domain"),
        webhook_secret=secret if isinstance(secret, Secret) or secret is None else Secret(str(secret)),
        page_size=int(options.get("page_size") or PAGE_SIZE),
        rate_limit=options.get("rate_limit"),
    )
