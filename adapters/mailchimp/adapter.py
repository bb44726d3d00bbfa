"""The Mailchimp adapter: one audience's members over the shared transport (providers/mailchimp.md).

Reads page ``GET /lists/{id}/members`` by ``last_changed`` (``_scan.py``); writes go through batch
subscribe and ``/batches``, or a few direct member calls (``_writes.py``); ``forget`` is a permanent
delete, ordinary removals archive.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import requests
from requests.auth import HTTPBasicAuth

from adapters._http import TIMEOUT, Transport
from adapters.base import Cursor, CursorError, Page, ProviderRecord, WebhookEvent, WriteRequest, WriteResult
from adapters.errors import FatalProviderError, ProviderError, RetryableError
from adapters.mailchimp import _writes as w
from adapters.mailchimp._scan import Scan, format_time, parse_time
from adapters.mailchimp._wire import (
    PROVIDER,
    MemberRefused,
    api_root,
    classify,
    member_ref,
    split_hint,
    subscriber_hash,
)
from adapters.mailchimp.webhooks import WebhookVerifier, parse_delivery
from adapters.ratelimit import RateLimiter
from adapters.secret import Secret

PAGE_SIZE: Final = 1000  # GET members: count max 1000 [SPEC]
MAX_CONNECTIONS: Final = 10  # simultaneous connections per user [RL]
NEW_MEMBER_STATUSES: Final = frozenset({"pending", "subscribed"})
# The member keys a read asks for (``fields``): a field the resource does not have is an error, not ignored
# (https://mailchimp.com/developer/marketing/docs/methods-parameters/#partial-responses), so a single member
# is asked for these keys alone and the listing for them under ``members.`` plus its ``total_items``.
MEMBER_KEYS: Final = (
    "id",
    "email_address",
    "unique_email_id",
    "contact_id",
    "status",
    "merge_fields",
    "interests",
    "tags",
    "tags_count",
    "last_changed",
    "timestamp_opt",
    "list_id",
    "vip",
    "language",
)
MEMBER_FIELDS: Final = ",".join(MEMBER_KEYS)
# A member's ``tags`` lists at most 50 ("To retrieve all tags see Member Tags"), ``tags_count`` all of them:
# https://mailchimp.com/developer/marketing/api/list-members/ . A member with more is completed from its tags.
MEMBER_TAGS_SHOWN: Final = 50
LISTING_FIELDS: Final = ",".join(f"members.{name}" for name in MEMBER_KEYS) + ",total_items"
# /batches: [BULK] suggests polling from ~5 s, backing off to ~60 s. A status GET is a cheap call and
# the only cost of asking early, while a job already finished waits out the whole first pause: start
# at a quarter second and double, so a slow job costs two more polls than starting at 1 s would.
BATCH_POLL_FIRST_S: Final = 0.25
BATCH_POLL_MAX_S: Final = 60.0
# Up to this many operations go out as direct calls, MAX_CONNECTIONS at a time, instead of one /batches
# job: two rounds of calls finish before a job's first status poll would, and a one-contact webhook
# sync then waits for no job at all. Larger sets stay one job (SPEC promise 7: batch endpoints).
DIRECT_MAX_OPS: Final = 2 * MAX_CONNECTIONS
BATCH_DEADLINE_S: Final = 1800.0
RESULTS_ATTEMPTS: Final = 3  # downloads of a finished job's results, each with a fresh URL
# The most requests one write call takes. Only batch subscribe is capped (w.BATCH_MEMBERS a call [SPEC]):
# creates and opt-outs are split into calls of that size, while /batches takes any number of operations
# [BULK]. Capping whole calls at 500 cost a thousand updates two jobs, and two rounds of polls, where one
# does; at a page of members, a push of a thousand (the engine's candidate batch) is one job.
WRITE_MAX: Final = PAGE_SIZE
# Subscriber hash -> contact_id pairs remembered from reads (18 MB at most): a member deleted for good answers
# 404 to its hash, and only this names the contact_id its link is kept by. Writes are not remembered: a daemon
# reads its own creates back in its next poll anyway, and a migration, which never reads its target, would
# otherwise hold a pair for every member it created.
KNOWN_MEMBERS_MAX: Final = 100_000


class MailchimpAdapter:
    """One Mailchimp audience. Satisfies ProviderAdapter, SupportsErase, SupportsFetchByIds, SupportsWebhooks."""

    lookback: ClassVar[dt.timedelta] = dt.timedelta(minutes=2)
    max_batch: ClassVar[int] = WRITE_MAX

    def __init__(
        self,
        *,
        api_key: Secret,
        list_id: str,
        name: str = "mailchimp",
        base_url: str | None = None,
        webhook_secret: Secret | None = None,
        new_member_status: str = "pending",
        page_size: int = PAGE_SIZE,
        rate_limit: str | None = None,
        merge_fields: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = 5,
        max_wait_s: float = 300.0,
        batch_poll_s: float = BATCH_POLL_FIRST_S,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        if new_member_status not in NEW_MEMBER_STATUSES:
            raise ValueError("new_member_status must be 'pending' or 'subscribed'")
        self.name = name
        self.list_id = list_id
        self.new_member_status = new_member_status
        self.page_size = max(1, min(int(page_size), PAGE_SIZE))
        self.merge_fields = dict(merge_fields or {})
        self._key = api_key.reveal()
        self._sleep = sleep
        self._clock = clock
        self._poll_s = batch_poll_s
        self._auth = HTTPBasicAuth("crmsync", self._key)  # any user name, the key as password [FUND]
        self._verifier = WebhookVerifier(webhook_secret.reveal() if webhook_secret else None, clock=clock)
        self.transport = Transport(
            provider=PROVIDER,
            base_url=api_root(self._key, base_url),
            auth=self._auth,
            limiter=_account_limiter(self._key, rate_limit),
            max_connections=MAX_CONNECTIONS,
            secrets=(self._key,),
            classify=classify,
            attempts=attempts,
            max_wait_s=max_wait_s,
            sleep=sleep,
        )
        self._merge_tags: frozenset[str] | None = None
        self._tags: set[str] | None = None
        self._read_started: dt.datetime | None = None  # Mailchimp's clock when the current read began
        self._degraded = 0  # 1: the server refused sorting/field selection; 2: also since_last_changed
        self._results = requests.Session()  # /batches results live on a storage host: never send the key there
        self._linked: dict[str, str] = {}  # subscriber hash -> contact_id, oldest first (see KNOWN_MEMBERS_MAX)
        self._linked_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MailchimpAdapter({self.name!r}, list {self.list_id!r})"

    # -- connection ---------------------------------------------------------------------------
    def check(self) -> None:
        self.transport.request("GET", "/ping")
        try:
            self.transport.request("GET", f"/lists/{self.list_id}", params={"fields": "id,name,double_optin"})
        except FatalProviderError as exc:
            if exc.status == 404:
                raise FatalProviderError(
                    f"{PROVIDER}: audience (list_id) {self.list_id!r} not found", provider=PROVIDER, status=404
                ) from None
            raise
        if self.merge_fields:
            answer = self.transport.request("GET", f"/lists/{self.list_id}/merge-fields", params={"count": 1000})
            known = {f.get("tag") for f in answer.json().get("merge_fields", ())}
            missing = sorted(set(self.merge_fields.values()) - known)
            if missing:
                raise FatalProviderError(
                    f"{PROVIDER}: merge fields not in the audience: {', '.join(missing)}", provider=PROVIDER
                )

    def close(self) -> None:
        self.transport.close()
        self._results.close()

    # -- reading ------------------------------------------------------------------------------
    def read_contacts(self, cursor: Cursor) -> Iterator[Page]:
        """Pages in ``last_changed`` order; each page's cursor resumes without a gap (see ``_scan``).

        Only Mailchimp's own timestamps move the cursor, never this machine's clock: a finished backfill
        continues from the newest ``last_changed`` it read, and every incremental read starts
        ``lookback`` earlier than its cursor to catch late writes. An incremental read ends with a pass
        over members archived in the same window, which come back ``deleted=True`` (the members listing
        leaves archived members out).
        """
        self._read_started = None
        token = self._token(cursor)
        if token.get("pass") == "archived":
            # a cycle cut short in its archived pass: finish that, then read what changed since, as every cycle
            # does (a person's confirmed opt-in there would otherwise meet crmsync's push before its read)
            final = Cursor.from_json(str(token["final"]))
            yield from self._archived_pass(token, final)
            yield from self.read_contacts(final)
            return
        prior: tuple[dt.datetime | None, frozenset[str]] = (None, frozenset())
        if cursor.page_token:
            scan, _ = Scan.from_cursor(cursor)
            if token.get("prior"):
                prior = (parse_time(token["prior"]), frozenset(token.get("prior_ids") or ()))
        elif cursor.phase == "backfill" or cursor.updated_after is None:
            scan = Scan()
        else:
            scan = Scan(since=cursor.updated_after - self.lookback)
            prior = (cursor.updated_after, cursor.boundary_ids)
        extra = self._prior_extra(prior)
        for records, after, last in self._pages(scan, skip=prior):
            if not last:
                yield Page(records=records, next_cursor=after.cursor(phase=cursor.phase, extra=extra))
                continue
            final = self._final(after, prior, started=self._read_started)
            if prior[0] is None:  # a backfill: archived members are not contacts to copy
                yield Page(records=records, next_cursor=final)
                return
            archived = {"pass": "archived", "final": final.to_json(), "window": format_time(prior[0] - self.lookback)}
            yield Page(records=records, next_cursor=self._archived_cursor(Scan(), archived, final))
            yield from self._archived_pass(archived, final)

    @staticmethod
    def _token(cursor: Cursor) -> dict[str, Any]:
        if not cursor.page_token:
            return {}
        try:
            token = json.loads(cursor.page_token)
        except ValueError as exc:
            raise CursorError("stored Mailchimp cursor has an unreadable page token") from exc
        if not isinstance(token, dict):
            raise CursorError("stored Mailchimp cursor has an unreadable page token")
        return token

    def _archived_pass(self, token: Mapping[str, Any], final: Cursor) -> Iterator[Page]:
        window = parse_time(str(token["window"]))
        scan = Scan(
            since=parse_time(token["since"]) if token.get("since") else window,
            offset=int(token.get("offset") or 0),
            floor=parse_time(token["afloor"]) if token.get("afloor") else None,
            taken=frozenset(token.get("ataken") or ()),
        )
        base = {"pass": "archived", "final": token["final"], "window": token["window"]}
        pages = self._pages(scan, status="archived")
        while True:
            try:
                records, after, last = next(pages)
            except StopIteration:
                return
            except FatalProviderError as exc:
                if exc.status not in (400, 404):
                    raise
                # No way to list archived members here: deletions then arrive by webhook only.
                yield Page(records=[], next_cursor=final)
                return
            yield Page(records=records, next_cursor=final if last else self._archived_cursor(after, base, final))

    @staticmethod
    def _archived_cursor(scan: Scan, base: Mapping[str, Any], final: Cursor) -> Cursor:
        """Mid archived pass: the incremental cursor it will end with, plus where the pass stands."""
        extra = {**base, "afloor": format_time(scan.floor) if scan.floor else None, "ataken": sorted(scan.taken)}
        return replace(final, page_token=scan.token(extra))

    def _pages(
        self,
        scan: Scan,
        *,
        status: str | None = None,
        skip: tuple[dt.datetime | None, frozenset[str]] = (None, frozenset()),
    ) -> Iterator[tuple[list[ProviderRecord], Scan, bool]]:
        """(records not taken yet, the scan after the page, whether it was the last page), page by page."""
        while True:
            members = self._members_page(scan, status=status)
            if self._degraded and scan.ordered:
                scan = scan.unordered()
            keyed = [(str(m["id"]), _changed(m)) for m in members]
            records = [
                self._record(m, changed)
                for m, (mid, changed) in zip(members, keyed, strict=True)
                if not scan.already_taken(mid, changed) and not (changed == skip[0] and mid in skip[1])
            ]
            scan = scan.advance(keyed, count=self.page_size)
            last = len(members) < self.page_size
            yield records, scan, last
            if last:
                return

    @staticmethod
    def _prior_extra(prior: tuple[dt.datetime | None, frozenset[str]]) -> dict[str, Any]:
        after, ids = prior
        return {"prior": format_time(after), "prior_ids": sorted(ids)} if after else {}

    @staticmethod
    def _final(
        scan: Scan, prior: tuple[dt.datetime | None, frozenset[str]], *, started: dt.datetime | None = None
    ) -> Cursor:
        """The incremental cursor after a scan: the newest ``last_changed`` read, never going backwards.

        When Mailchimp's own clock (the ``Date`` of the read's first page) is later than anything read,
        the cursor moves there instead: the listing was read to its end, so nothing changed in between,
        and an idle list is then not read again and again within ``lookback`` of its last change.
        """
        cursor = MailchimpAdapter._final_from_scan(scan, prior)
        if started is None or cursor.updated_after is None:
            return cursor if started is None else Cursor(phase="incremental", updated_after=started)
        if started > cursor.updated_after:
            return Cursor(phase="incremental", updated_after=started)
        # The read began within the second of the newest change: that second is still open, and a later
        # edit in it keeps the same whole-second ``last_changed``. Members taken there are read again
        # next time rather than skipped as "already taken" (the engine drops what did not change).
        return replace(cursor, boundary_ids=frozenset())

    @staticmethod
    def _final_from_scan(scan: Scan, prior: tuple[dt.datetime | None, frozenset[str]]) -> Cursor:
        after, ids = prior
        newest = scan.newest or scan.floor
        if newest is None or (after is not None and newest < after):
            return Cursor(phase="incremental", updated_after=after, boundary_ids=ids if after else frozenset())
        taken = scan.taken if scan.floor == newest else frozenset()
        if after is not None and newest == after:
            taken |= ids
        return Cursor(phase="incremental", updated_after=newest, boundary_ids=taken)

    def _members_page(self, scan: Scan, *, status: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"count": self.page_size, "offset": scan.offset}
        if scan.since is not None and self._degraded < 2:
            params["since_last_changed"] = format_time(scan.since)
        if status is not None:
            params["status"] = status
        if not self._degraded:
            params.update(sort_field="last_changed", sort_dir="ASC", fields=LISTING_FIELDS)
        try:
            response = self.transport.request("GET", f"/lists/{self.list_id}/members", params=params)
            if self._read_started is None and status is None:
                self._read_started = _server_time(response)
            answer = response.json()
        except FatalProviderError as exc:
            # A server that refuses an optional parameter (sorting, field selection, then the time
            # filter) still gets read: unsorted pages are paged by plain offset (see Scan.advance).
            if exc.status != 400 or self._degraded >= 2 or status is not None:
                raise
            self._degraded += 1
            return self._members_page(scan)
        members = answer.get("members") if isinstance(answer, dict) else None
        if not isinstance(members, list):
            raise RetryableError(f"{PROVIDER} GET members -> 200 without a members list", provider=PROVIDER)
        listed = [_with_id(m) for m in members if isinstance(m, dict) and (m.get("id") or m.get("email_address"))]
        return [self._with_all_tags(m) for m in listed]

    def _with_all_tags(self, member: dict[str, Any]) -> dict[str, Any]:
        """The member with every tag it has: a listing or GET shows 50 at most, its tags endpoint all of them.

        Written back, a truncated list would make the tags past the 50th inactive (see ``w.operations``).
        """
        tags, count = member.get("tags"), member.get("tags_count")
        if not isinstance(tags, list):
            return member
        if isinstance(count, int) and not isinstance(count, bool):
            complete = count <= len(tags)
        else:  # no count given: a full first 50 may not be all
            complete = len(tags) < MEMBER_TAGS_SHOWN
        if complete:
            return member
        found: list[Any] = []
        try:
            while True:
                answer = self.transport.request(
                    "GET",
                    f"/lists/{self.list_id}/members/{member['id']}/tags",
                    params={"count": 1000, "offset": len(found)},
                ).json()
                page = answer.get("tags") if isinstance(answer, dict) else None
                if not isinstance(page, list) or not page:
                    break
                found += page
                if len(found) >= int(answer.get("total_items") or 0):
                    break
        except MemberRefused as exc:
            if exc.status != 404:  # gone since it was listed: what the listing showed is all there is
                raise
        return {**member, "tags": found} if len(found) > len(tags) else member

    def _record(self, member: Mapping[str, Any], changed: dt.datetime) -> ProviderRecord:
        ref = member_ref(member)  # contact_id: an address change in Mailchimp keeps the link
        self._remember(str(member["id"]), ref)
        return ProviderRecord(
            remote_id=ref,
            data=member,
            updated_at=changed if changed != EPOCH else None,
            deleted=member.get("status") == "archived",
        )

    def _remember(self, key: str, linked_by: str | None) -> None:
        """Note the contact_id a member's link is kept by; the oldest pairs make way past KNOWN_MEMBERS_MAX."""
        if not linked_by or linked_by == key:
            return
        with self._linked_lock:
            self._linked.pop(key, None)
            self._linked[key] = linked_by
            if len(self._linked) > KNOWN_MEMBERS_MAX:
                del self._linked[next(iter(self._linked))]

    def fetch_contacts(self, remote_ids: Sequence[str]) -> list[ProviderRecord]:
        """Current members by id (webhook hints: a hash, see ``_wire.split_hint``); a missing one comes back
        ``deleted=True``.

        A member deleted for good answers 404 to its hash, while its link is kept by its contact_id: the
        deletion names the contact_id when this adapter has read the member since it started (a hash it never
        saw can only be reported as itself). A member that answers to that contact_id moved to another
        address rather than left, and comes back as it is. After an address change the hint also names the
        old hash, which the record reports as absorbed (``merged_ids``): a link still kept by that hash, from
        before links were kept by contact_id, moves to the member instead of the person being held twice.
        """
        out = []
        for remote_id in remote_ids:
            key, was = split_hint(remote_id)
            member = self._member(key)
            linked = None
            if member is None:
                with self._linked_lock:
                    linked = self._linked.get(key)
                member = self._member(linked) if linked else None
            if member is None:
                out.append(ProviderRecord(remote_id=linked or key, data={}, deleted=True))
                continue
            record = self._record(_with_id(member), _changed(member))
            out.append(replace(record, merged_ids=(was,)) if was and was != record.remote_id else record)
        return out

    def _member(self, key: str) -> dict[str, Any] | None:
        """One member by hash or contact_id (member routes take both [SDK]), or None if there is none."""
        try:
            answer = self.transport.request(
                "GET", f"/lists/{self.list_id}/members/{key}", params={"fields": MEMBER_FIELDS}
            ).json()
        except MemberRefused as exc:
            if exc.status != 404:
                raise
            return None
        return self._with_all_tags(answer) if isinstance(answer, dict) else None

    # -- writing ------------------------------------------------------------------------------
    def write_contacts(self, requests: Sequence[WriteRequest]) -> list[WriteResult]:
        if len(requests) > self.max_batch:
            raise ValueError(f"at most {self.max_batch} requests per write call")
        if not requests:
            return []
        known = self._audience_merge_tags()
        plans = [w.plan(i, r, new_member_status=self.new_member_status) for i, r in enumerate(requests)]
        for p in plans:  # a merge tag the audience lacks would get the whole member refused
            if known is not None:
                p.merge_fields = {tag: value for tag, value in p.merge_fields.items() if tag in known}
        try:
            self._write(plans)
        except ProviderError as exc:
            # A call failed part-way (a 5xx or 429 that outlasted the retries, a job that vanished): what was
            # written is reported, the rest is retried later. With nothing written the error goes up, and the
            # provider stops this run (the next write call, meeting the same failure, stops it too).
            if not any(p.result is not None and p.result.ok for p in plans):
                raise
            for p in plans:
                if p.result is None:
                    p.done(ok=False, error=f"not written: {exc.status or type(exc).__name__}", retryable=True)
        for p in plans:
            if p.result is None:
                p.done(ok=False, error="not written", retryable=True)
        return [p.result for p in plans if p.result is not None]

    def _write(self, plans: list[w.Plan]) -> None:
        linked = [p for p in plans if not p.moved and p.request.remote_id]  # known members: no create pass
        gone = self._update(
            linked
            + self._create([p for p in plans if not p.moved and not p.request.remote_id])
            + [p for p in plans if p.moved]
        )
        if gone:  # an address change whose old member is not there: write the new address as any other
            for p in gone:
                p.moved = False
            self._update(self._create(gone))

    def _update(self, plans: list[w.Plan]) -> list[w.Plan]:
        """Steps 2 and 3 for members that exist (or moved); returns moved ones whose old member is gone."""
        self._opt_out([p for p in plans if p.opts_out and not p.moved])
        return self._operations([p for p in plans if p.moved or not p.opts_out])

    def _audience_merge_tags(self) -> frozenset[str] | None:
        """The audience's merge tags, read once per adapter; None (send everything) if they cannot be read."""
        if self._merge_tags is None:
            try:
                answer = self.transport.request(
                    "GET", f"/lists/{self.list_id}/merge-fields", params={"count": 1000, "fields": "merge_fields.tag"}
                ).json()
                tags = {str(f.get("tag")) for f in answer.get("merge_fields", ()) if isinstance(f, dict)}
            except (FatalProviderError, ValueError, AttributeError):
                return None
            self._merge_tags = frozenset(tags) if tags else None
        return self._merge_tags

    def _audience_tags(self, plans: Sequence[w.Plan]) -> frozenset[str]:
        """Every tag the audience has (its static segments, read once per adapter), plus those sent since.

        Knowing them is what lets a write remove a tag without reading each member first; if they cannot
        be read, tags are only added.
        """
        if self._tags is None:
            self._tags = set()
            offset = 0
            try:
                while True:
                    answer = self.transport.request(
                        "GET",
                        f"/lists/{self.list_id}/segments",
                        params={
                            "type": "static",
                            "count": 1000,
                            "offset": offset,
                            "fields": "segments.name,total_items",
                        },
                    ).json()
                    names = [str(s.get("name")) for s in answer.get("segments", ()) if isinstance(s, dict)]
                    self._tags.update(n for n in names if n)
                    offset += len(names)
                    if not names or offset >= int(answer.get("total_items") or 0):
                        break
            except (FatalProviderError, ValueError, AttributeError, TypeError):
                pass  # tags are then only added, never removed
        for p in plans:
            self._tags.update(p.tags or ())
        return frozenset(self._tags)

    def _create(self, plans: list[w.Plan]) -> list[w.Plan]:
        """Step 1: batch subscribe with update_existing false; returns the members that already exist."""
        existing: list[w.Plan] = []
        for chunk in _chunks(plans, w.BATCH_MEMBERS):
            body = {"members": [w.member_item(p, status=p.status_if_new) for p in chunk], "update_existing": False}
            existing += w.read_batch_subscribe(self._batch_subscribe(body), chunk)
        return existing

    def _opt_out(self, plans: list[w.Plan]) -> None:
        """Step 2: force the opt-out status on existing members (sync_tags only where tags were given)."""
        tagged, untagged = [p for p in plans if p.tags is not None], [p for p in plans if p.tags is None]
        for group in (*_chunks(tagged, w.BATCH_MEMBERS), *_chunks(untagged, w.BATCH_MEMBERS)):
            body = {
                "members": [w.member_item(p, status=str(p.status)) for p in group],
                "update_existing": True,
                "sync_tags": group[0].tags is not None,
            }
            for p in w.read_batch_subscribe(self._batch_subscribe(body), group):
                p.done(ok=False, error="not in the batch answer", retryable=True)

    def _batch_subscribe(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        # Re-sending is safe: a member created by a lost first attempt comes back as "exists".
        response = self.transport.request(
            "POST", f"/lists/{self.list_id}", json=body, params={"skip_merge_validation": "true"}
        )
        answer = response.json()
        if not isinstance(answer, dict):
            raise RetryableError(f"{PROVIDER} POST /lists/{{id}} -> 200 without a result", provider=PROVIDER)
        return answer

    def _operations(self, plans: list[w.Plan]) -> list[w.Plan]:
        """Step 3: upserts and tag changes (one /batches job, or a few direct calls); returns moved ones not found."""
        if not plans:
            return []
        gone: list[w.Plan] = []
        known_tags = self._audience_tags(plans)
        tag_ops = w.operations([p for p in plans if not p.moved], self.list_id, tags=True, known_tags=known_tags)
        results = self._run_ops(w.operations(plans, self.list_id, tags=False), tag_ops)
        sent = {op["operation_id"] for op in tag_ops}
        retag: list[w.Plan] = []
        for p in plans:
            status, title = results.get(f"m{p.index}", (0, ""))
            if status == 0:
                p.done(ok=False, error="no batch result", retryable=True)
            elif not w.settle(p, status, title):
                if p.moved:
                    gone.append(p)
                else:
                    p.done(ok=False, error="Resource Not Found", retryable=True)
            elif p.result is not None and p.result.ok and p.tags is not None:
                # Operations run in any order: a moved member (or one the upsert created) is tagged after.
                tag_status, _ = results.get(f"t{p.index}", (404, "")) if f"t{p.index}" in sent else (200, "")
                if p.moved or tag_status == 404:
                    p.moved = False
                    retag.append(p)
                elif tag_status >= 300:
                    p.result = None
                    w.settle(p, tag_status, "")
        retag_ops = w.operations(retag, self.list_id, tags=True, known_tags=known_tags)
        if retag_ops:
            sent = {op["operation_id"] for op in retag_ops}
            pending = [p for p in retag if f"t{p.index}" in sent]
            upserted = {p.index: p.result for p in pending}
            for p in pending:  # not written until the tags are: a call failing here leaves them unsettled
                p.result = None
            tag_results = self._run_ops(retag_ops)
            for p in pending:
                tag_status, title = tag_results.get(f"t{p.index}", (0, ""))
                if 0 < tag_status < 300:
                    p.result = upserted[p.index]
                elif not w.settle(p, tag_status or 503, title):
                    p.done(ok=False, error="Resource Not Found", retryable=True)
        return gone

    def _run_ops(self, *groups: list[dict[str, Any]]) -> dict[str, tuple[int, str]]:
        """operation_id -> (status, title): a few operations as direct calls, more as one /batches job.

        Direct calls go group by group (member upserts before their tag changes), so a member the upsert
        creates exists when it is tagged; a /batches job runs everything in any order (see _operations).
        """
        ops = [op for group in groups for op in group]
        if not ops:
            return {}
        if len(ops) <= DIRECT_MAX_OPS:
            return self._run_direct(groups)
        return self._run_batch(ops, groups)

    def _run_batch(
        self, ops: list[dict[str, Any]], groups: Sequence[list[dict[str, Any]]]
    ) -> dict[str, tuple[int, str]]:
        """Submit operations to /batches, wait for them, and read per-operation answers."""
        try:
            job = self.transport.request("POST", "/batches", json={"operations": ops}).json()
        except FatalProviderError as exc:
            if exc.status in (404, 405, 501):  # no /batches here (a proxy or a partial API): one call each
                return self._run_direct(groups)
            raise
        job_id = job.get("id") if isinstance(job, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise RetryableError(f"{PROVIDER} POST /batches -> answered without a batch id", provider=PROVIDER)
        waited, pause = 0.0, self._poll_s
        while job.get("status") != "finished":
            if waited > BATCH_DEADLINE_S:
                raise RetryableError(f"{PROVIDER} /batches job did not finish in time", provider=PROVIDER)
            self._sleep(pause)
            waited += pause
            pause = min(pause * 2, BATCH_POLL_MAX_S)
            job = self._batch_status(job_id)
        if job.get("errored_operations") == 0:  # "finished" alone is not success [BULK]
            return {str(op["operation_id"]): (200, "") for op in ops}
        return self._job_results(job_id, job)

    def _batch_status(self, job_id: str) -> dict[str, Any]:
        job = self.transport.request("GET", f"/batches/{job_id}").json()
        if not isinstance(job, dict):
            raise RetryableError(f"{PROVIDER} GET /batches/{{id}} -> 200 without a batch", provider=PROVIDER)
        return job

    def _job_results(self, job_id: str, job: Mapping[str, Any]) -> dict[str, tuple[int, str]]:
        """The job's per-operation answers. A results URL is valid for ten minutes and a new status call gives a
        new one (https://mailchimp.com/developer/marketing/guides/run-async-requests-batch-endpoint/), so a
        failed download (an expired link, a storage hiccup, a broken archive) asks for a fresh URL and tries again.
        """
        for attempt in range(1, RESULTS_ATTEMPTS):
            try:
                return w.read_results(self._download(str(job.get("response_body_url") or "")))
            except RetryableError:
                self._sleep(float(attempt))
                job = self._batch_status(job_id)
        return w.read_results(self._download(str(job.get("response_body_url") or "")))

    def _download(self, url: str) -> bytes:
        if not url:
            raise RetryableError(f"{PROVIDER} /batches finished without a results URL", provider=PROVIDER)
        # Mailchimp's results live on a storage host that must never see the key; a server that keeps
        # them on its own API host gets the same credentials as every other call.
        same_host = urlsplit(url).netloc == urlsplit(self.transport.base_url).netloc
        try:
            response = self._results.get(url, timeout=TIMEOUT, auth=self._auth if same_host else None)
            response.raise_for_status()
        except requests.RequestException as exc:
            raise RetryableError(f"{PROVIDER} /batches results: {type(exc).__name__}", provider=PROVIDER) from None
        return response.content

    def _run_direct(self, groups: Sequence[list[dict[str, Any]]]) -> dict[str, tuple[int, str]]:
        """Each operation as its own call, at most MAX_CONNECTIONS in flight (the transport caps them too).

        Every operation is an upsert, a PATCH at a known hash or a tag state: safe to retry, as in a job.
        """
        out: dict[str, tuple[int, str]] = {}
        with ThreadPoolExecutor(max_workers=MAX_CONNECTIONS, thread_name_prefix="mailchimp-op") as pool:
            for group in groups:
                answers = pool.map(self._run_one, group) if len(group) > 1 else map(self._run_one, group)
                out.update(zip((str(op["operation_id"]) for op in group), answers, strict=True))
        return out

    def _run_one(self, op: Mapping[str, Any]) -> tuple[int, str]:
        try:
            response = self.transport.request(
                op["method"], op["path"], data=op["body"], headers={"Content-Type": "application/json"}
            )
        except MemberRefused as exc:
            return exc.status or 400, exc.title
        except RetryableError as exc:  # retries spent (a 429 included): the record stays pending
            return exc.status or 503, ""
        return response.status_code, ""

    # -- removal ------------------------------------------------------------------------------
    def erase_contact(self, *, remote_id: str | None, email: str) -> None:
        """``forget``: permanent delete, irreversible; the address can never be re-imported [SPEC]."""
        for key in dict.fromkeys(k for k in (subscriber_hash(email) if email else None, remote_id) if k):
            try:
                self.transport.request("POST", f"/lists/{self.list_id}/members/{key}/actions/delete-permanent")
                return
            except MemberRefused as exc:
                if exc.status != 404:
                    raise
        # Not a member (any more): nothing to erase.

    def archive_contact(self, *, remote_id: str | None, email: str) -> None:
        """An ordinary removal: archive (reversible); a 404 means it is already gone."""
        key = subscriber_hash(email) if email else remote_id
        if not key:
            return
        try:
            self.transport.request("DELETE", f"/lists/{self.list_id}/members/{key}")
        except MemberRefused as exc:
            if exc.status != 404:
                raise

    # -- webhooks -----------------------------------------------------------------------------
    def verify_webhook(self, *, method: str, url: str, headers: Mapping[str, str], body: bytes) -> None:
        self._verifier.verify(method=method, url=url, headers=headers, body=body)

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        return parse_delivery(body, list_id=self.list_id)


EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LIMITERS: dict[tuple[str, str], RateLimiter] = {}
_LIMITERS_LOCK: Final = threading.Lock()


def _account_limiter(api_key: str, spec: str | None) -> RateLimiter | None:
    """One limiter per Mailchimp account and spec, shared by every adapter on that account.

    Mailchimp publishes no request rate, only the 10-connection cap, so there is none by default.
    """
    if not spec:
        return None
    account = hashlib.sha256(api_key.encode()).hexdigest()
    with _LIMITERS_LOCK:
        return _LIMITERS.setdefault((account, spec), RateLimiter.parse(spec))


def _chunks(plans: list[w.Plan], size: int) -> list[list[w.Plan]]:
    return [plans[start : start + size] for start in range(0, len(plans), size)]


def _changed(member: Mapping[str, Any]) -> dt.datetime:
    """``last_changed`` (aware UTC); a member without a readable one sorts first rather than vanishing."""
    try:
        return parse_time(str(member["last_changed"]))
    except (KeyError, ValueError):
        return EPOCH


def _with_id(member: dict[str, Any]) -> dict[str, Any]:
    """The member's id is its subscriber hash; computed from the address when a server leaves it out."""
    if not member.get("id"):
        member["id"] = subscriber_hash(str(member["email_address"]))
    return member


def create_adapter(name: str, options: Mapping[str, Any]) -> MailchimpAdapter:
    """Build from a ``[providers.<name>]`` table (secrets as Secret, ``type`` always present)."""
    api_key = options["api_key"]
    secret = options.get("webhook_secret")
    merge_fields = options.get("merge_fields") or {}
    return MailchimpAdapter(
        name=name,
        api_key=api_key if isinstance(api_key, Secret) else Secret(str(api_key)),
        list_id=str(options["list_id"]),
        base_url=options.get("base_url"),
        webhook_secret=secret if isinstance(secret, Secret) or secret is None else Secret(str(secret)),
        new_member_status=str(options.get("new_member_status") or "pending"),
        page_size=int(options.get("page_size") or PAGE_SIZE),
        rate_limit=options.get("rate_limit"),
        merge_fields={str(k): str(v) for k, v in merge_fields.items()},
    )


def _server_time(response: requests.Response) -> dt.datetime | None:
    """Mailchimp's clock from a response's ``Date`` header (UTC, whole seconds), if it sent one."""
    try:
        stamp = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError):
        return None
    return stamp.astimezone(dt.UTC) if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
