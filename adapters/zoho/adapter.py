"""The Zoho CRM adapter: v8 Contacts over the shared transport, with the crmsync token manager.

Facts and sources: /work/shared/providers/zoho.md. Not the zohocrmsdk SDK: a process-wide singleton, not
thread-safe, silently follows ``api_domain`` to other hosts, no timeout on writes.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import requests

from adapters._http import Transport, request_id
from adapters.base import Cursor, Page, ProviderRecord, WebhookEvent, WriteRequest, WriteResult
from adapters.errors import AuthError, FatalProviderError, ProviderError, QuotaExhausted, RateLimited
from adapters.ratelimit import RateLimiter
from adapters.secret import Secret
from adapters.zoho import notifications
from adapters.zoho._cursor import (
    advance,
    already_taken,
    backfill_start,
    deleted_record,
    placeholder_last_name,
    record,
    settle,
)
from adapters.zoho._wire import IDS_MAX, PAGE_PARAM_ROW_CAP, PER_PAGE_MAX, UPSERT_MAX, format_zoho_time, parse_zoho_time
from adapters.zoho.auth import DATA_CENTERS, CachedToken, TokenManager, TokenStore, classify_accounts, domain_allowed

log = logging.getLogger(__name__)

PROVIDER: Final = "zoho"
CONTACTS: Final = "/crm/v8/Contacts"
ACCOUNTS: Final = "/crm/v8/Accounts"
CRITERIA_MAX: Final = 10  # conditions per search criteria (Search Records API)
# The fields a read asks for: v8 makes `fields` mandatory, at most 50 names (GR, pitfall 1).
READ_FIELDS: Final = (
    "Email",
    "Secondary_Email",
    "First_Name",
    "Last_Name",
    "Phone",
    "Mobile",
    "Account_Name",
    "Title",
    "Mailing_Country",
    "Mailing_State",
    "Mailing_City",
    "Email_Opt_Out",
    "Unsubscribed_Mode",
    "Unsubscribed_Time",
    "Tag",
    "Created_Time",
    "Modified_Time",
)
FIELDS_MAX: Final = 50
# https://zoho.com/crm/developer/docs/api/v8/notifications/enable.html: a channel token has at most 50 characters
# (the OAS says 256: the stricter limit holds for both).
NOTIFY_TOKEN_MAX: Final = 50
ONE_SECOND: Final = dt.timedelta(seconds=1)  # Modified_Time has second precision; the boundary second is re-read
DEFAULT_RATE_LIMIT: Final = "100/10s"  # Zoho publishes credits and concurrency (the real caps), no rate
DEFAULT_CONCURRENCY: Final = 5  # the Free edition's concurrency cap (3P): the lowest tier
# Item codes worth another try next cycle; the others are data errors a retry cannot fix (OAS API_Exception).
RETRYABLE_CODES: Final = frozenset({"RECORD_LOCKED", "LIMIT_EXCEEDED", "INTERNAL_ERROR", "TOO_MANY_REQUESTS"})


@dataclass(frozen=True, slots=True)
class Query:
    """One list request: changed since (If-Modified-Since), then a page token or a page number."""

    since: dt.datetime | None
    token: str | None = None
    page: int = 1


class ZohoCallRejected(FatalProviderError):
    """A 4xx with Zoho's envelope; ``code`` is Zoho's error code, ``items`` per-record results if any."""

    def __init__(self, message: str, *, code: str, items: list[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.code = code
        self.items = items


class ZohoAuthRefused(AuthError):
    """A 401/403 with Zoho's envelope; ``code`` says which (INVALID_TOKEN, OAUTH_SCOPE_MISMATCH, NO_PERMISSION...)."""

    def __init__(self, message: str, *, code: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.code = code


# 401 codes a new access token cannot cure: refreshing for them would only spend the refresh budget (OAUTH).
NOT_CURED_BY_REFRESH: Final = frozenset({"OAUTH_SCOPE_MISMATCH", "NO_PERMISSION"})


class ZohoAdapter:
    """Zoho CRM Contacts: read, upsert, tags, delete, notifications."""

    lookback: ClassVar[dt.timedelta] = dt.timedelta(seconds=30)
    max_batch: ClassVar[int] = UPSERT_MAX

    def __init__(
        self,
        *,
        name: str = "zoho",
        client_id: str,
        client_secret: Secret,
        refresh_token: Secret,
        data_center: str = "com",
        base_url: str | None = None,
        accounts_url: str | None = None,
        token_store: TokenStore | None = None,
        rate_limit: str | None = None,
        max_connections: int = DEFAULT_CONCURRENCY,
        notify_url: str | None = None,
        notify_token: Secret | None = None,
        extra_fields: Sequence[str] = (),
        page_size: int = PER_PAGE_MAX,
        attempts: int = 5,
        max_wait_s: float = 300.0,
        sleep: Any = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        if data_center not in DATA_CENTERS:
            raise ValueError(f"zoho: data_center must be one of {', '.join(DATA_CENTERS)}, not {data_center!r}")
        self.name = name
        self.data_center = data_center
        self._base_override = base_url.rstrip("/") if base_url else None
        default_api, default_accounts = DATA_CENTERS[data_center]
        secrets = [client_secret.reveal(), refresh_token.reveal()]
        if notify_token:
            secrets.append(notify_token.reveal())
        timing: dict[str, Any] = {"attempts": attempts, "max_wait_s": max_wait_s}
        if sleep is not None:
            timing["sleep"] = sleep
        limiter = RateLimiter.parse(rate_limit or DEFAULT_RATE_LIMIT)
        self._accounts = Transport(
            provider=PROVIDER,
            base_url=accounts_url or default_accounts,
            secrets=secrets,
            classify=classify_accounts,
            limiter=None,
            max_connections=2,
            **timing,
        )
        self._tokens = TokenManager(
            accounts=self._accounts,
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            store=token_store,
        )
        self._api = Transport(
            provider=PROVIDER,
            base_url=self._base_override or default_api,
            secrets=secrets,
            classify=_classify,
            limiter=limiter,
            max_connections=max_connections,
            **timing,
        )
        self._default_api = default_api
        self.fields = tuple(dict.fromkeys((*READ_FIELDS, *extra_fields)))
        if len(self.fields) > FIELDS_MAX:
            raise ValueError(f"zoho: at most {FIELDS_MAX} fields may be read, got {len(self.fields)}")
        if notify_token and len(notify_token.reveal()) > NOTIFY_TOKEN_MAX:
            raise ValueError(
                f"zoho: notify_token may have at most {NOTIFY_TOKEN_MAX} characters (a channel token's limit)"
            )
        self.notify_url = notify_url
        self.notify_token = notify_token
        if not 1 <= page_size <= PER_PAGE_MAX:
            raise ValueError(f"zoho: page_size must be 1..{PER_PAGE_MAX}")
        self.page_size = page_size
        self._now: Callable[[], dt.datetime] = clock or (lambda: dt.datetime.now(dt.UTC))
        self.credits_remaining: int | None = None  # X-API-CREDITS-REMAINING, when Zoho last sent it
        self._refused_domains: set[str] = set()
        self._account_ids: dict[str, str] = {}  # account name (lower-cased) -> id, as Zoho named it this run
        self._accounts_unavailable = False

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def stats(self) -> Any:
        return self._api.stats

    @property
    def token_refreshes(self) -> int:
        return self._tokens.refreshes

    def _base_for(self, token: CachedToken) -> str:
        """Config beats the token's api_domain; a foreign api_domain is never followed (pitfall 3)."""
        if self._base_override:
            return self._base_override
        domain = token.api_domain
        if domain and domain_allowed(domain, data_center=self.data_center, base_url=None):
            return domain.rstrip("/")
        if domain and domain not in self._refused_domains:
            self._refused_domains.add(domain)  # said once per domain, not on every call
            log.warning("zoho: ignoring an api_domain outside data centre %s", self.data_center)
        return self._default_api

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> requests.Response:
        """One CRM call; a 401 refreshes the token once and retries once, never more."""
        token = self._tokens.token()
        try:
            return self._send(token, method, path, params=params, json=json, headers=headers, idempotent=idempotent)
        except AuthError as exc:
            if exc.status != 401 or getattr(exc, "code", "") in NOT_CURED_BY_REFRESH:
                raise
        token = self._tokens.after_401(token.access_token)
        return self._send(token, method, path, params=params, json=json, headers=headers, idempotent=idempotent)

    def _send(
        self,
        token: CachedToken,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        idempotent: bool,
    ) -> requests.Response:
        if token.access_token not in self._api.secrets:
            self._api.add_secret(token.access_token)
        hdrs = {"Authorization": f"Zoho-oauthtoken {token.access_token}", **(headers or {})}
        base = self._base_for(token)
        url = path if base == self._api.base_url else base + path
        try:
            response = self._api.request(method, url, params=params, json=json, headers=hdrs, idempotent=idempotent)
        except RateLimited as exc:  # retries spent on 429: pause this provider's cycle (issue 5)
            raise QuotaExhausted(
                f"zoho {method} {path} -> 429 TOO_MANY_REQUESTS after retries: credits or concurrency spent",
                provider=PROVIDER,
                method=method,
                path=path,
                status=429,
            ) from exc
        # Credits are shared by every integration of the org; Zoho shows what is left once half is spent (3P).
        remaining = response.headers.get("X-API-CREDITS-REMAINING", "").strip()
        if remaining.isdigit():
            self.credits_remaining = int(remaining)
        return response

    def check(self) -> None:
        self.call("GET", CONTACTS, params={"fields": "Email", "per_page": 1})

    def close(self) -> None:
        self._api.close()
        self._accounts.close()

    # -- reading -------------------------------------------------------------------------------
    def read_contacts(self, cursor: Cursor) -> Iterator[Page]:
        if cursor.phase == "backfill":
            yield from self._backfill(cursor)
        else:
            yield from self._incremental(cursor)

    def _list(self, query: Query) -> requests.Response:
        params: dict[str, Any] = {
            "fields": ",".join(self.fields),
            "per_page": self.page_size,
            "sort_by": "Modified_Time",
            "sort_order": "asc",
        }
        if query.token:
            params["page_token"] = query.token  # with the same parameters: a token is bound to its query
        elif query.page > 1:
            params["page"] = query.page
        headers = {"If-Modified-Since": format_zoho_time(query.since)} if query.since else None
        return self.call("GET", CONTACTS, params=params, headers=headers)

    def _pages(
        self, query: Query, *, fallback: dt.datetime | None
    ) -> Iterator[tuple[list[ProviderRecord], Query | None]]:
        """Pages of one read, oldest first, each with the query for the next page (None: the last).

        Zoho's ``next_page_token`` first (GR, K60); without one, on from the last record's time (keyset), or
        the next ``page`` when a whole page shares one second. A refused token (24 h expiry, 100,000 rows)
        goes on from what was read, else from ``fallback``; a read that cannot advance is an error, not a loop.
        """
        last_time: dt.datetime | None = None
        last_ids: set[str] = set()
        while True:
            try:
                response = self._list(query)
            except ZohoCallRejected as exc:
                if not query.token:
                    raise
                log.info("zoho: page token refused (%s); going on from the watermark", exc.code)
                restart = last_time or fallback
                query = Query(since=restart - ONE_SECOND if restart else None)
                continue
            raw, info = _page_records(response)
            nxt = self._next_query(query, raw, info) if raw and _more(info, len(raw), self.page_size) else None
            records = [r for r in raw if not (r.updated_at == last_time and r.remote_id in last_ids)]
            if records and records[-1].updated_at is not None:
                if records[-1].updated_at != last_time:
                    last_time, last_ids = records[-1].updated_at, set()
                last_ids |= {r.remote_id for r in records if r.updated_at == last_time}
            yield records, nxt
            if nxt is None:
                return
            query = nxt

    def _next_query(self, query: Query, records: Sequence[ProviderRecord], info: Mapping[str, Any]) -> Query:
        token = info.get("next_page_token")
        if isinstance(token, str) and token:
            return Query(since=query.since, token=token)
        first, last = records[0].updated_at, records[-1].updated_at
        if first is not None and last is not None and first < last:
            return Query(since=last - ONE_SECOND)  # keyset: ids already read at `last` are dropped
        if query.page * self.page_size < PAGE_PARAM_ROW_CAP:
            return Query(since=query.since, page=query.page + 1)  # a full page within one second
        raise FatalProviderError(
            "zoho GET /crm/v8/Contacts -> more than 2,000 records share one Modified_Time and no page token",
            provider=PROVIDER,
            method="GET",
            path=CONTACTS,
        )

    def _backfill(self, cursor: Cursor) -> Iterator[Page]:
        began = backfill_start(cursor, self._now())
        cap = began - self.lookback  # edits made while we page are newer: the incremental reads them
        raw_since = cursor.extra.get("since")
        query = Query(
            since=parse_zoho_time(raw_since) if raw_since else None,
            token=cursor.page_token,
            page=int(cursor.extra.get("page") or 1),
        )
        current = cursor
        for records, nxt in self._pages(query, fallback=cursor.updated_after):
            fresh = [r for r in records if not already_taken(cursor, r)]
            if nxt is None:
                final = Cursor(
                    phase="incremental",
                    updated_after=began - self.lookback,
                    extra={"deleted_after": format_zoho_time(began - self.lookback)},
                )
                yield Page(records=fresh, next_cursor=final)
                return
            current = advance(current, records, phase="backfill", page_token=nxt.token, started=began, cap=cap)
            extra = {k: v for k, v in current.extra.items() if k not in ("since", "page")}
            if nxt.since is not None:
                extra["since"] = format_zoho_time(nxt.since)
            if nxt.page > 1:
                extra["page"] = str(nxt.page)
            current = Cursor(
                phase="backfill",
                page_token=nxt.token,
                updated_after=current.updated_after,
                boundary_ids=current.boundary_ids,
                extra=extra,
            )
            yield Page(records=fresh, next_cursor=current)

    def _incremental(self, cursor: Cursor) -> Iterator[Page]:
        """Changes since the watermark, oldest first; 304 when nothing changed (GR, K60).

        The lookback is applied where the watermark is set, not to every query: a record older than
        ``now - lookback`` is assumed visible, so the watermark never passes that horizon, and a quiet
        provider answers 304 instead of re-sending its last changes on every poll.
        """
        current = cursor
        horizon = (self._now() - self.lookback).replace(microsecond=0)
        since = cursor.updated_after - ONE_SECOND if cursor.updated_after else horizon
        for records, nxt in self._pages(Query(since=since), fallback=cursor.updated_after):
            fresh = [r for r in records if not already_taken(cursor, r)]
            advanced = advance(current, records, phase="incremental", page_token=None, started=None, cap=horizon)
            if nxt is None:  # the pass is complete: everything up to the horizon has been seen
                advanced = settle(advanced, records, horizon)
            if records or advanced != current:
                current = advanced
                yield Page(records=fresh, next_cursor=current)
        yield from self._deleted(current)

    def _deleted(self, cursor: Cursor) -> Iterator[Page]:
        """Deletions since the last read, newest first (the deleted-records list has no sort)."""
        horizon = (self._now() - self.lookback).replace(microsecond=0)
        raw_after = cursor.extra.get("deleted_after")
        after = parse_zoho_time(raw_after) if raw_after else (cursor.updated_after or horizon)
        page = 1
        while True:
            response = self.call(
                "GET",
                CONTACTS + "/deleted",
                params={"type": "all", "per_page": PER_PAGE_MAX, "page": page},
                headers={"If-Modified-Since": format_zoho_time(after)},
            )
            items, info = _body(response)
            records = [deleted_record(item) for item in items if isinstance(item, dict) and item.get("id")]
            more = bool(items) and _more(info, len(items), PER_PAGE_MAX)
            extra = dict(cursor.extra)
            if not more:  # moved only once every page is stored; never past the horizon
                extra["deleted_after"] = format_zoho_time(max(after, horizon))
            if records or not more:
                yield Page(
                    records=records,
                    next_cursor=Cursor(
                        phase=cursor.phase,
                        updated_after=cursor.updated_after,
                        boundary_ids=cursor.boundary_ids,
                        extra=extra,
                    ),
                )
            if not more:
                return
            page += 1

    def fetch_contacts(self, remote_ids: Sequence[str]) -> list[ProviderRecord]:
        """Current records by id, 100 a call; ids Zoho no longer has come back ``deleted=True``."""
        found: dict[str, ProviderRecord] = {}
        ids = list(dict.fromkeys(remote_ids))
        for start in range(0, len(ids), IDS_MAX):
            chunk = ids[start : start + IDS_MAX]
            response = self.call("GET", CONTACTS, params={"ids": ",".join(chunk), "fields": ",".join(self.fields)})
            records, _ = _page_records(response)
            found.update((r.remote_id, r) for r in records)
        return [found.get(i) or ProviderRecord(remote_id=i, data={}, deleted=True) for i in ids]

    # -- writing -------------------------------------------------------------------------------
    def write_contacts(self, requests: Sequence[WriteRequest]) -> list[WriteResult]:
        if len(requests) > UPSERT_MAX:
            raise ValueError(f"zoho: at most {UPSERT_MAX} records per upsert")
        if not requests:
            return []
        found = self._ids_for_changed_emails(requests)
        known = {r.ref: r.remote_id or found.get(r.ref) for r in requests}
        accounts = self._account_lookups(requests)
        answers: list[Any] = [None] * len(requests)
        # Known records are updated by id (PUT): an upsert matches on Email only and would make a twin of a
        # contact whose address changed. New ones are upserted on Email so that none is created twice.
        updates = [i for i, r in enumerate(requests) if known[r.ref]]
        creates = [i for i, r in enumerate(requests) if not known[r.ref]]
        if updates:
            items = [{**_item(requests[i], accounts), "id": known[requests[i].ref]} for i in updates]
            for i, answer in zip(updates, self._send_records("PUT", CONTACTS, items), strict=True):
                answers[i] = answer
        if creates:
            for i, answer in zip(creates, self._create(requests, creates, accounts), strict=True):
                answers[i] = answer
        results = [_write_result(r, a) for r, a in zip(requests, answers, strict=True)]
        inserted = {
            r.ref for r, a in zip(requests, answers, strict=True) if isinstance(a, dict) and a.get("action") == "insert"
        }
        return self._write_tags(requests, results, inserted)

    def _create(
        self, requests: Sequence[WriteRequest], indexes: Sequence[int], accounts: Mapping[str, str]
    ) -> list[Any]:
        """Upsert on Email; a record refused for a missing Last_Name matched nobody, so naming it is safe."""
        items = [_item(requests[i], accounts) for i in indexes]
        answers = self._send_records("POST", CONTACTS + "/upsert", items)
        missing = [k for k, a in enumerate(answers) if _is_missing_last_name(a) and not items[k].get("Last_Name")]
        if missing:  # Last_Name is mandatory for a new contact (pitfall 6): name it by its address
            retry = [{**items[k], "Last_Name": placeholder_last_name(requests[indexes[k]].email)} for k in missing]
            for k, answer in zip(missing, self._send_records("POST", CONTACTS + "/upsert", retry), strict=True):
                answers[k] = answer
        return answers

    def _send_records(
        self, method: str, path: str, items: list[dict[str, Any]], *, duplicate_check: str = "Email"
    ) -> list[Any]:
        """One answer per item, in the items' order (None where Zoho said nothing of one). An upsert matches
        records on ``duplicate_check``.
        """
        body: dict[str, Any] = {"data": items, "trigger": []}
        if path.endswith("/upsert"):
            body["duplicate_check_fields"] = [duplicate_check]
        try:
            answers, _ = _body(self.call(method, path, json=body))
        except ZohoCallRejected as exc:
            if not exc.items:
                raise
            answers = exc.items  # every record refused: Zoho answers 400 with per-record results
        return _aligned(answers, len(items), method=method, path=path)

    def _account_lookups(self, requests: Sequence[WriteRequest]) -> Mapping[str, str]:
        """Account ids for the company names of these writes, by lower-cased name.

        Zoho documents a lookup written as ``{"id": ..., "name": ...}`` (OAS v8.0 createRecords examples); a name
        alone is not documented. Names are searched (10 a call), the missing ones created through an upsert on
        Account_Name, Accounts' duplicate check field (OAS v8.0 upsertRecords). Without access to Accounts (scope,
        permission) the name alone is sent, as before, and the log says so once.
        """
        names = {
            str(value["name"]).strip()
            for r in requests
            if isinstance(value := r.fields.get("Account_Name"), Mapping) and value.get("name") and not value.get("id")
        }
        wanted = sorted(n for n in names if n and n.lower() not in self._account_ids)
        if wanted and not self._accounts_unavailable:
            try:
                for start in range(0, len(wanted), CRITERIA_MAX):
                    self._search_accounts(wanted[start : start + CRITERIA_MAX])
                missing = [n for n in wanted if n.lower() not in self._account_ids]
                for start in range(0, len(missing), UPSERT_MAX):
                    self._create_accounts(missing[start : start + UPSERT_MAX])
            except (ZohoCallRejected, AuthError) as exc:
                self._accounts_unavailable = True
                why = getattr(exc, "code", "") or exc.status
                log.warning("zoho: accounts cannot be looked up (%s); companies are written by name alone", why)
        return self._account_ids

    def _search_accounts(self, names: Sequence[str]) -> None:
        conditions = [f"(Account_Name:equals:{_criteria_value(n)})" for n in names]
        criteria = conditions[0] if len(conditions) == 1 else "(" + "or".join(conditions) + ")"
        response = self.call("GET", ACCOUNTS + "/search", params={"criteria": criteria, "fields": "Account_Name"})
        items, _ = _body(response)
        wanted = {n.lower() for n in names}
        for item in items:
            name = item.get("Account_Name") if isinstance(item, dict) else None
            if isinstance(name, str) and name.strip().lower() in wanted and item.get("id"):
                self._account_ids.setdefault(name.strip().lower(), str(item["id"]))

    def _create_accounts(self, names: Sequence[str]) -> None:
        answers = self._send_records("POST", ACCOUNTS + "/upsert", [{"Account_Name": n} for n in names],
                                     duplicate_check="Account_Name")
        for name, answer in zip(names, answers, strict=True):
            details = answer.get("details") if isinstance(answer, dict) and answer.get("status") == "success" else None
            if isinstance(details, Mapping) and details.get("id"):
                self._account_ids[name.lower()] = str(details["id"])

    def _ids_for_changed_emails(self, requests: Sequence[WriteRequest]) -> dict[str, str]:
        """An address changed and no id is known: find the record by its old address, or upsert makes a twin."""
        found: dict[str, str] = {}
        for r in requests:
            if r.remote_id is None and r.previous_email:
                record = self.find_by_email(r.previous_email)
                if record is not None:
                    found[r.ref] = record.remote_id
        return found

    def find_by_email(self, email: str) -> ProviderRecord | None:
        """The contact whose Email is ``email``. The search's ``email`` parameter looks in every email field
        (Secondary_Email too), so a hit is kept only when its Email is the address itself.
        """
        response = self.call("GET", CONTACTS + "/search", params={"email": email, "fields": ",".join(self.fields)})
        records, _ = _page_records(response)
        wanted = email.strip().lower()
        return next((r for r in records if str(r.data.get("Email") or "").strip().lower() == wanted), None)

    def _write_tags(
        self, requests: Sequence[WriteRequest], results: list[WriteResult], inserted: set[str]
    ) -> list[WriteResult]:
        """Tags through the bulk add/remove actions: one call per tag name and direction for the batch."""
        wanted = {r.ref: _tag_names(r.fields["Tag"]) for r in requests if "Tag" in r.fields}
        ok = {res.ref: res.remote_id for res in results if res.ok and res.remote_id and res.ref in wanted}
        if not ok:
            return results
        current = {ref: frozenset[str]() for ref in ok if ref in inserted}
        to_read = [rid for ref, rid in ok.items() if ref not in current]
        if to_read:
            by_id = {rec.remote_id: rec for rec in self.fetch_contacts(to_read)}
            for ref, rid in ok.items():
                if ref not in current:
                    current[ref] = _tag_names(by_id[rid].data.get("Tag"))
        failed: set[str] = set()
        for action in ("add_tags", "remove_tags"):
            per_tag: dict[str, list[str]] = {}
            for ref in ok:
                diff = wanted[ref] - current[ref] if action == "add_tags" else current[ref] - wanted[ref]
                for tag in diff:
                    per_tag.setdefault(tag, []).append(ref)
            for tag, refs in sorted(per_tag.items()):
                failed |= self._tag_call(action, tag, {ok[ref]: ref for ref in refs})
        return [
            WriteResult(ref=r.ref, ok=False, remote_id=r.remote_id, error="TAGS_NOT_WRITTEN", retryable=True)
            if r.ref in failed
            else r
            for r in results
        ]

    def _tag_call(self, action: str, tag: str, refs_by_id: Mapping[str, str]) -> set[str]:
        body = {"tags": [{"name": tag}], "ids": list(refs_by_id), "over_write": False}
        try:
            answers, _ = _body(self.call("POST", f"{CONTACTS}/actions/{action}", json=body))
        except ZohoCallRejected as exc:
            answers = exc.items or []
        done = {
            str(a.get("details", {}).get("id")) for a in answers if isinstance(a, dict) and a.get("status") == "success"
        }
        return {ref for rid, ref in refs_by_id.items() if rid not in done}

    def erase_contact(self, *, remote_id: str | None, email: str) -> None:
        """Delete for ``forget``: by id, else the record holding the address; then purge the recycle bin."""
        ids = [remote_id] if remote_id else []
        if not ids:
            record = self.find_by_email(email)
            ids = [record.remote_id] if record else []
        if not ids:
            return
        joined = ",".join(ids)
        try:
            self.call("DELETE", CONTACTS, params={"ids": joined, "wf_trigger": "false"})
        except ZohoCallRejected as exc:
            if exc.items is None:  # per-record "not found" means it is already gone
                raise
        # A deleted record waits 60 days in the recycle bin; erasure takes it out now. Only admins may
        # (NOT_SUPPORTED otherwise): then it is left for Zoho to purge, and the log says so.
        try:
            self.call("DELETE", "/crm/v8/settings/recycle_bin", params={"ids": joined})
        except (ZohoCallRejected, AuthError) as exc:
            if isinstance(exc, AuthError) and exc.status != 403:
                raise
            log.warning("zoho: could not purge %d erased record(s) from the recycle bin (%s)", len(ids), exc.status)

    # -- notifications -------------------------------------------------------------------------
    def ensure_watch(self, *, now: dt.datetime | None = None) -> dt.datetime:
        """Create or renew the Contacts watch channel for ``notify_url``; returns its expiry."""
        if not self.notify_url or not self.notify_token:
            raise ValueError("zoho: notify_url and notify_token are needed for notifications")
        return notifications.ensure_watch(self, self.notify_url, self.notify_token, now=now)

    def verify_webhook(self, *, method: str, url: str, headers: Mapping[str, str], body: bytes) -> None:
        notifications.verify(self.notify_token, self.notify_url, url=url, body=body)

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        return notifications.parse(body)


# -- helpers ---------------------------------------------------------------------------------------
def _classify(response: requests.Response) -> ProviderError | None:
    """Zoho specifics before the shared table: spent credits, and the error code of a 4xx."""
    status = response.status_code
    common: dict[str, Any] = {
        "provider": PROVIDER,
        "method": response.request.method or "",
        "path": _path(response),
        "status": status,
        "request_id": request_id(response.headers),
    }
    if status == 429 and response.headers.get("X-API-CREDITS-REMAINING", "").strip() == "0":
        return QuotaExhausted(f"zoho {common['method']} {common['path']} -> 429: API credits spent", **common)
    if status < 400 or status == 429 or status >= 500 or status == 408:
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    code = str(body.get("code") or "") if isinstance(body, dict) else ""
    # A refused page token is a 400 (OAS v8.0 getRecords); a 401 with its code is tolerated, and is no OAuth failure.
    if status in (401, 403) and code != "TOKEN_BOUND_DATA_MISMATCH":
        # The code tells the user what to fix: an expired token, a missing scope, a profile without permission.
        return ZohoAuthRefused(
            f"zoho {common['method']} {common['path']} -> {status} {code[:40]}".rstrip(), code=code[:40], **common
        )
    listed = next(
        (body[k] for k in ("data", "watch") if isinstance(body, dict) and isinstance(body.get(k), list)), None
    )
    items: list[Any] | None = listed
    if items and not code:
        first = items[0]
        code = str(first.get("code") or "") if isinstance(first, dict) else "RECORDS_REJECTED"
    return ZohoCallRejected(
        f"zoho {common['method']} {common['path']} -> {status} {code[:40]}", code=code, items=items, **common
    )


def _path(response: requests.Response) -> str:
    from urllib.parse import urlsplit

    return urlsplit(response.request.url or "").path


def _body(response: requests.Response) -> tuple[list[Any], dict[str, Any]]:
    if response.status_code in (204, 304) or not response.content:
        return [], {}
    body = response.json()
    if not isinstance(body, dict):
        return [], {}
    data = body.get("data")
    info = body.get("info")
    return (data if isinstance(data, list) else []), (info if isinstance(info, dict) else {})


def _more(info: Mapping[str, Any], count: int, per_page: int) -> bool:
    """Whether another page follows. ``more_records`` says so; an answer without it (an info object cut short)
    goes on after a full page or when it names a next page token, so that no page is lost.
    """
    more = info.get("more_records")
    if isinstance(more, bool):
        return more
    return count >= per_page or bool(info.get("next_page_token"))


def _page_records(response: requests.Response) -> tuple[list[ProviderRecord], dict[str, Any]]:
    items, info = _body(response)
    return [record(item) for item in items if isinstance(item, dict) and item.get("id")], info


def _item(request: WriteRequest, accounts: Mapping[str, str]) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for key, value in request.fields.items():
        if key in ("Tag", "id"):
            continue  # tags go through the tag actions; the id is ours to set
        if key == "Email_Opt_Out" and value is not True:
            continue  # never clear an opt-out from a sync (providers/zoho.md pitfall 7)
        if key == "Account_Name" and isinstance(value, Mapping):
            if not value.get("name"):
                continue  # blank is not a value: leave the account lookup alone
            found = accounts.get(str(value["name"]).strip().lower())
            # the documented shape of a lookup: its id, with its name
            item[key] = {**value, "id": found} if found and not value.get("id") else value
            continue
        item[key] = value
    item["Email"] = request.email
    return item


def _errors(answer: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The errors one item answer holds: itself, or those listed by MULTIPLE_OR_MULTI_ERRORS (OAS v8.0 upsert)."""
    details = answer.get("details")
    nested = details.get("errors") if isinstance(details, Mapping) else None
    if answer.get("code") == "MULTIPLE_OR_MULTI_ERRORS" and isinstance(nested, list):
        return [e for e in nested if isinstance(e, Mapping)] or [answer]
    return [answer]


def _detail(error: Mapping[str, Any], key: str) -> str:
    details = error.get("details")
    value = details.get(key) if isinstance(details, Mapping) else None
    return value if isinstance(value, str) else ""


def _criteria_value(value: str) -> str:
    """A value inside search criteria: Zoho reads parentheses, commas and backslashes as syntax unless escaped."""
    return "".join("\\" + c if c in "(),\\" else c for c in value)


def _is_missing_last_name(answer: Any) -> bool:
    if not isinstance(answer, dict) or answer.get("status") == "success":
        return False
    errors = _errors(answer)
    return any(e.get("code") == "MANDATORY_NOT_FOUND" and _detail(e, "api_name") == "Last_Name" for e in errors)


_DATA_INDEX: Final = re.compile(r"\$\.data\[(\d+)\]")


def _aligned(answers: list[Any], n: int, *, method: str, path: str) -> list[Any]:
    """Per-record answers in input order. Zoho answers in input order; an answer naming no record (its json_path
    outside ``$.data``) refuses the request as a whole, and a short list is placed by each error's json_path
    (what cannot be placed is None: no result, worth another try, as upserts and updates by id are idempotent).
    """
    paths = [_json_path(a) for a in answers]
    whole = next((a for a, jp in zip(answers, paths, strict=True) if jp and not jp.startswith("$.data")), None)
    if whole is not None:
        code = str(whole.get("code") or "ERROR")
        raise ZohoCallRejected(
            f"zoho {method} {path} -> request refused as a whole ({code[:40]})",
            code=code[:40],
            provider=PROVIDER,
            method=method,
            path=path,
        )
    if len(answers) == n:
        return answers
    placed: list[Any] = [None] * n
    for answer, jp in zip(answers, paths, strict=True):
        match = _DATA_INDEX.match(jp)
        if match and int(match[1]) < n:
            placed[int(match[1])] = answer
    return placed


def _json_path(answer: Any) -> str:
    if not isinstance(answer, dict) or answer.get("status") == "success":
        return ""
    return next((jp for e in _errors(answer) if (jp := _detail(e, "json_path"))), "")


def _write_result(request: WriteRequest, answer: Any) -> WriteResult:
    if not isinstance(answer, dict):
        return WriteResult(ref=request.ref, ok=False, error="NO_RESULT", retryable=True)
    if answer.get("status") == "success":
        details = answer.get("details")
        remote_id = str((details.get("id") if isinstance(details, Mapping) else None) or request.remote_id or "")
        if not remote_id:  # written, but which record is unknown: the next upsert on Email finds it again
            return WriteResult(ref=request.ref, ok=False, error="NO_ID", retryable=True)
        return WriteResult(ref=request.ref, ok=True, remote_id=remote_id)
    errors = _errors(answer)
    codes = [str(e.get("code") or "ERROR") for e in errors]
    error = "; ".join(f"{c} {_detail(e, 'api_name')}".strip() for c, e in zip(codes, errors, strict=True))
    return WriteResult(
        ref=request.ref,
        ok=False,
        remote_id=request.remote_id,
        error=error[:80],
        retryable=all(c in RETRYABLE_CODES for c in codes),
    )


def _tag_names(tags: Any) -> frozenset[str]:
    if not isinstance(tags, list | tuple | set | frozenset):
        return frozenset()
    return frozenset(
        str(t["name"]) if isinstance(t, Mapping) else str(t)
        for t in tags
        if (t.get("name") if isinstance(t, Mapping) else t)
    )


def create_adapter(name: str, options: Mapping[str, Any]) -> ZohoAdapter:
    """``[providers.<name>]`` with ``type = "zoho"``: see the module docstring of adapters.zoho."""

    def secret(key: str) -> Secret:
        value = options.get(key)
        if isinstance(value, Secret):
            return value
        if isinstance(value, str) and value:
            return Secret(value)
        raise ValueError(f"providers.{name}.{key} is required")

    client_id = options.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        client_id = secret("client_id").reveal()
    notify = options.get("notify_token")
    extra = options.get("extra_fields") or ()
    return ZohoAdapter(
        name=name,
        client_id=client_id,
        client_secret=secret("client_secret"),
        refresh_token=secret("refresh_token"),
        data_center=str(options.get("data_center") or "com"),
        base_url=options.get("base_url") or None,
        accounts_url=options.get("accounts_url") or None,
        rate_limit=options.get("rate_limit") or None,
        notify_url=options.get("notify_url") or None,
        notify_token=notify if isinstance(notify, Secret) else (Secret(notify) if notify else None),
        extra_fields=tuple(str(f) for f in extra),
        token_store=options.get("token_store"),
        max_connections=int(options.get("max_connections") or DEFAULT_CONCURRENCY),
        page_size=int(options.get("page_size") or PER_PAGE_MAX),
    )
