"""The ActiveCampaign adapter: one account's contacts and one list's opt-in, over the shared transport.

Reads page ``GET /contacts`` by id within an ``updated_after`` window, with the configured list's status,
tags and field values sideloaded (``_scan.py``), and end with a periodic full sweep by id that reports
deleted contacts and changes that left ``udate`` alone; writes go through ``contact/sync`` or bulk import
(``_writes.py``). Facts: /work/shared/providers/activecampaign.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Final

from adapters._http import Transport
from adapters.activecampaign import _scan as s
from adapters.activecampaign import _writes as w
from adapters.activecampaign._wire import PROVIDER, ContactRefused, api_root, classify, format_time, parse_time
from adapters.activecampaign.webhooks import parse_delivery, verify_delivery
from adapters.base import Cursor, CursorError, Page, ProviderRecord, WebhookEvent, WriteRequest, WriteResult
from adapters.errors import FatalProviderError, RetryableError
from adapters.ratelimit import RateLimiter
from adapters.secret import Secret

PAGE_SIZE: Final = 100  # GET /contacts: limit max 100 [pagination]
# 5 requests a second per account, shared by every key [rate-limits]; the 10% margin keeps arrival jitter
# (a call sent at t+1.0 s may land before the one sent at t) from tipping the server's window into 429s.
RATE_LIMIT: Final = "5/1.1s"
MAX_CONNECTIONS: Final = 5  # more would only queue behind the 5/s limiter
INCLUDE: Final = "contactLists,contactTags.tag,fieldValues"  # sideloads (help.prospect2.com article 727, 3P)
RECONCILE_EVERY: Final = dt.timedelta(hours=24)

_LIMITERS: dict[tuple[str, str], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


class ActiveCampaignAdapter:
    """One ActiveCampaign account and list. ProviderAdapter, SupportsErase, SupportsFetchByIds, SupportsWebhooks."""

    lookback: ClassVar[dt.timedelta] = dt.timedelta(minutes=2)
    max_batch: ClassVar[int] = w.MAX_IMPORT

    def __init__(
        self,
        *,
        api_url: str,
        api_token: Secret,
        list_id: str,
        name: str = "activecampaign",
        base_url: str | None = None,
        page_size: int = PAGE_SIZE,
        rate_limit: str | None = None,
        webhook_token: Secret | None = None,
        reconcile_every: dt.timedelta = RECONCILE_EVERY,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = 5,
        max_wait_s: float = 300.0,
        import_poll_s: float = 2.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.name = name
        self.list_id = str(list_id)
        self.page_size = max(1, min(int(page_size), PAGE_SIZE))
        self.reconcile_every = reconcile_every
        self._token = api_token.reveal()
        self._webhook_token = webhook_token.reveal() if webhook_token else None
        self._clock = clock
        root = api_root(api_url, base_url)
        self.transport = Transport(
            provider=PROVIDER,
            base_url=root,
            headers={"Api-Token": self._token, "Accept": "application/json"},
            limiter=_account_limiter(root, self._token, rate_limit or RATE_LIMIT),
            max_connections=MAX_CONNECTIONS,
            secrets=(self._token,),
            classify=classify,
            attempts=attempts,
            max_wait_s=max_wait_s,
            sleep=sleep,
        )
        self.catalog = w.Catalog(self.transport)
        self.writer = w.Writer(
            self.transport, self.catalog, list_id=self.list_id, sleep=sleep, poll_s=import_poll_s, clock=clock
        )

    def __repr__(self) -> str:
        return f"ActiveCampaignAdapter({self.name!r}, list {self.list_id!r})"

    # -- connection ---------------------------------------------------------------------------
    def check(self) -> None:
        try:
            self.transport.request("GET", f"/lists/{self.list_id}")
        except FatalProviderError as exc:
            if exc.status == 404:
                raise FatalProviderError(
                    f"{PROVIDER}: list (list_id) {self.list_id!r} not found", provider=PROVIDER, status=404
                ) from None
            raise

    def close(self) -> None:
        self.transport.close()

    # -- reading ------------------------------------------------------------------------------
    def read_contacts(self, cursor: Cursor) -> Iterator[Page]:
        """Pages by id; the window moves to the read's start only at the end (see ``_scan``).

        A backfill (``Cursor()``) reads every contact and notes the id gaps it passes (never-reported
        deletions are not news); an incremental read takes ``updated_after`` minus ``lookback``. When the
        last sweep is older than ``reconcile_every``, an incremental read ends with one: every contact read
        again as it is now, plus ``deleted=True`` records for ids that went missing.
        """
        token = _token(cursor)
        if token.get("mode") == "sweep":
            yield from self._sweep(cursor, token)
            return
        backfill = cursor.phase == "backfill" or cursor.updated_after is None
        if token:
            started = parse_time(token["started"])
            window = parse_time(token["window"]) if token.get("window") else None
        else:
            started = self._clock()
            window = None if backfill or cursor.updated_after is None else cursor.updated_after - self.lookback
        after = int(token.get("after") or 0)
        seen: dict[str, str] = dict(token.get("seen") or {})
        known = s.parse_ranges(token.get("gaps")) if backfill else []
        prior: dict[str, str] = {} if backfill else _json_map(cursor.extra.get("seen"))
        horizon = started - self.lookback
        while True:
            contacts, body = self._contacts_page(after, window)
            records = []
            for contact in contacts:
                cid, changed = str(contact["id"]), _udate(contact)
                stamp = format_time(changed) if changed else ""
                if prior.get(cid) == stamp:
                    continue  # taken by the previous read, unchanged since
                records.append(self._record(contact, body, changed))
                if changed is not None and changed >= horizon:
                    seen[cid] = stamp
            ids = [int(c["id"]) for c in contacts]
            if backfill:
                known.extend(s.gaps(after, ids))
            after = max([after, *ids])
            if len(contacts) == self.page_size:
                state = {
                    "after": after,
                    "started": format_time(started),
                    "window": format_time(window) if window else None,
                    "seen": seen,
                    "gaps": s.format_ranges(known) if backfill else None,
                }
                yield Page(records=records, next_cursor=replace(cursor, page_token=s.dump(state)))
                continue
            final = self._final(cursor, started, seen, prior, backfill=backfill, known=known, top=after)
            if backfill or not self._sweep_due(cursor):
                yield Page(records=records, next_cursor=final)
                return
            sweep = {"mode": "sweep", "after": 0, "started": format_time(started), "gaps": final.extra.get("gaps", "")}
            yield Page(records=records, next_cursor=replace(final, page_token=s.dump(sweep)))
            yield from self._sweep(replace(final, page_token=s.dump(sweep)), sweep)
            return

    def _final(
        self,
        cursor: Cursor,
        started: dt.datetime,
        seen: Mapping[str, str],
        prior: Mapping[str, str],
        *,
        backfill: bool,
        known: s.Ranges,
        top: int,
    ) -> Cursor:
        """Incremental from the read's start; ids taken inside the coming overlap are remembered."""
        horizon = started - self.lookback
        kept = {cid: u for cid, u in {**prior, **seen}.items() if u and parse_time(u) >= horizon}
        extra = dict(cursor.extra)
        extra["seen"] = s.dump(kept)
        if backfill:
            extra.update(gaps=s.format_ranges(known), top=str(top), swept_at=format_time(started))
        else:
            extra["top"] = str(max(top, int(extra.get("top") or 0)))
        updated_after = started if cursor.updated_after is None else max(started, cursor.updated_after)
        return Cursor(phase="incremental", updated_after=updated_after, boundary_ids=frozenset(kept), extra=extra)

    def _sweep_due(self, cursor: Cursor) -> bool:
        swept = cursor.extra.get("swept_at")
        return not swept or self._clock() - parse_time(swept) >= self.reconcile_every

    def _sweep(self, cursor: Cursor, token: Mapping[str, Any]) -> Iterator[Page]:
        """Re-read every contact by id: ids missing since the last sweep come back deleted, and every record
        comes back as it is now, so changes that may leave ``udate`` alone (list status, tags, field values;
        pitfall 3) are caught at least once a ``reconcile_every``.
        """
        after = int(token.get("after") or 0)
        known = s.parse_ranges(token.get("gaps"))
        top = int(cursor.extra.get("top") or 0)
        while True:
            contacts, body = self._contacts_page(after, None)
            ids = [int(c["id"]) for c in contacts]
            found = list(s.gaps(after, ids))
            after = max([after, *ids])
            last = len(contacts) < self.page_size
            if last and top > after:
                found.append((after + 1, top))  # the newest contacts were deleted: no later id marks the gap
            gone = [i for lo, hi in found for i in s.new_ids(lo, hi, known)]
            known.extend(found)
            records = [ProviderRecord(remote_id=str(i), data={}, deleted=True) for i in gone]
            records += [self._record(c, body, _udate(c)) for c in contacts]
            if not last:
                state = {**token, "after": after, "gaps": s.format_ranges(known)}
                yield Page(records=records, next_cursor=replace(cursor, page_token=s.dump(state)))
                continue
            extra = {
                **cursor.extra,
                "gaps": s.format_ranges(known),
                "top": str(max(top, after)),
                "swept_at": str(token["started"]),
            }
            yield Page(records=records, next_cursor=replace(cursor, page_token=None, extra=extra))
            return

    def _contacts_page(self, after: int, window: dt.datetime | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        params: list[tuple[str, Any]] = [
            ("limit", self.page_size),
            ("orders[id]", "ASC"),
            ("id_greater", after),
            ("include", INCLUDE),
        ]
        if window is not None:
            params.append(("filters[updated_after]", format_time(window)))
        answer = self.transport.request("GET", "/contacts", params=params).json()
        return _contacts_of(answer), answer

    def _record(
        self, contact: Mapping[str, Any], body: Mapping[str, Any], changed: dt.datetime | None
    ) -> ProviderRecord:
        """The contact plus ``listStatus``, ``tags`` (names) and ``fields`` (by perstag) from the sideloads."""
        cid = str(contact["id"])
        status = next(
            (
                str(row.get("status"))
                for row in body.get("contactLists") or ()
                if str(row.get("contact")) == cid and str(row.get("list")) == self.list_id
            ),
            None,
        )
        names = {str(t.get("id")): str(t.get("tag")) for t in body.get("tags") or () if isinstance(t, dict)}
        tag_ids = [str(row.get("tag")) for row in body.get("contactTags") or () if str(row.get("contact")) == cid]
        perstags = self.catalog.perstags()
        values = {
            perstags[str(row.get("field"))]: row.get("value")
            for row in body.get("fieldValues") or ()
            if str(row.get("contact")) == cid and str(row.get("field")) in perstags
        }
        data = {
            **{k: v for k, v in contact.items() if k != "links"},
            "listStatus": status,
            "tags": sorted(names.get(t) or self.catalog.tag_name(t) for t in tag_ids),
            "fields": values,
        }
        return ProviderRecord(remote_id=cid, data=data, updated_at=changed)

    def fetch_contacts(self, remote_ids: Sequence[str]) -> list[ProviderRecord]:
        """Current contacts by id (webhook hints), 100 a call with ``ids[]``; missing ones come back deleted."""
        out: list[ProviderRecord] = []
        for start in range(0, len(remote_ids), PAGE_SIZE):
            chunk = [str(i) for i in remote_ids[start : start + PAGE_SIZE]]
            params: list[tuple[str, Any]] = [("limit", PAGE_SIZE), ("include", INCLUDE)]
            params += [("ids[]", i) for i in chunk]
            answer = self.transport.request("GET", "/contacts", params=params).json()
            found = {str(c["id"]): c for c in _contacts_of(answer)}
            for cid in chunk:
                contact = found.get(cid)
                if contact is None:
                    out.append(ProviderRecord(remote_id=cid, data={}, deleted=True))
                else:
                    out.append(self._record(contact, answer, _udate(contact)))
        return out

    # -- writing ------------------------------------------------------------------------------
    def write_contacts(self, requests: Sequence[WriteRequest]) -> list[WriteResult]:
        if len(requests) > self.max_batch:
            raise ValueError(f"at most {self.max_batch} requests per write call")
        return self.writer.write(requests)

    def erase_contact(self, *, remote_id: str | None, email: str) -> None:
        """``forget``: delete the contact (there is no softer delete in v3); gone already is fine."""
        if remote_id is None:
            answer = self.transport.request("GET", "/contacts", params={"email": email}).json()
            contacts = _contacts_of(answer)
            if not contacts:
                return
            remote_id = str(contacts[0]["id"])
        try:
            self.transport.request("DELETE", f"/contacts/{remote_id}")
        except ContactRefused as exc:
            if exc.status != 404:
                raise

    # -- webhooks -----------------------------------------------------------------------------
    def verify_webhook(self, *, method: str, url: str, headers: Mapping[str, str], body: bytes) -> None:
        verify_delivery(self._webhook_token, method=method, url=url)

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        return parse_delivery(body, list_id=self.list_id)


def _token(cursor: Cursor) -> dict[str, Any]:
    if not cursor.page_token:
        return {}
    try:
        token = json.loads(cursor.page_token)
    except ValueError:
        raise CursorError("stored ActiveCampaign cursor has an unreadable page token") from None
    if not isinstance(token, dict):
        raise CursorError("stored ActiveCampaign cursor has an unreadable page token")
    return token


def _json_map(text: str | None) -> dict[str, str]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        raise CursorError("stored ActiveCampaign cursor has an unreadable seen map") from None
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _contacts_of(answer: Any) -> list[dict[str, Any]]:
    contacts = answer.get("contacts") if isinstance(answer, dict) else None
    if not isinstance(contacts, list):
        raise RetryableError(f"{PROVIDER} GET /contacts -> 200 without a contacts list", provider=PROVIDER)
    return [c for c in contacts if isinstance(c, dict) and str(c.get("id") or "").isdigit()]


def _udate(contact: Mapping[str, Any]) -> dt.datetime | None:
    try:
        return parse_time(str(contact["udate"]))
    except (KeyError, ValueError):
        return None


def _account_limiter(root: str, token: str, spec: str) -> RateLimiter:
    """One limiter per account and spec: every adapter on one account shares its 5/s [rate-limits]."""
    account = hashlib.sha256(f"{root}|{token}".encode()).hexdigest()
    with _LIMITERS_LOCK:
        return _LIMITERS.setdefault((account, spec), RateLimiter.parse(spec))


def create_adapter(name: str, options: Mapping[str, Any]) -> ActiveCampaignAdapter:
    """Build from a ``[providers.<name>]`` table: api_url, api_token, list_id; base_url, page_size,
    rate_limit; webhook_token when the config accepts it.
    """
    token = options["api_token"]
    hook = options.get("webhook_token")
    return ActiveCampaignAdapter(
        name=name,
        api_url=str(options["api_url"]),
        api_token=token if isinstance(token, Secret) else Secret(str(token)),
        list_id=str(options["list_id"]),
        base_url=options.get("base_url"),
        page_size=int(options.get("page_size") or PAGE_SIZE),
        rate_limit=options.get("rate_limit"),
        webhook_token=hook if isinstance(hook, Secret) or hook is None else Secret(str(hook)),
    )
