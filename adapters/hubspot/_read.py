"""Reading contacts: a backfill through the list endpoint, then incremental windows through search.

Search (https://developers.hubspot.com/docs/api-reference/search/guide) stops at 10,000 results per
query and answers 400 past them, and offsets shift when records change mid-scan. So every query starts
at the newest ``lastmodifieddate`` already seen (GTE, dropping ids already taken at exactly that time)
with offset 0: no query comes near the cap and nothing is truncated. When a whole page shares one
timestamp, that instant is drained by ``hs_object_id`` (EQ time, GT id) before the scan goes on with GT:
no endless loop when thousands of records share a timestamp.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final

from adapters.base import Cursor, Page, ProviderRecord
from adapters.errors import FatalProviderError
from adapters.hubspot._client import HubSpotClient

LIST_PAGE: Final = 100  # list endpoint maximum [GUIDE]
SEARCH_PAGE: Final = 200  # search maximum [SEARCH]
SEARCH_RESULT_CAP: Final = 10_000  # https://developers.hubspot.com/docs/api-reference/search/guide
MODIFIED: Final = "lastmodifieddate"  # contacts carry this one, not hs_lastmodifieddate [SEARCH]
BASE_PROPERTIES: Final = (
    "email", "firstname", "lastname", "phone", "company", "jobtitle", "country", "state", "city", "industry",
    "lifecyclestage", "crmsync_tags", "hs_email_optout", "hs_merged_object_ids", "hs_additional_emails",
    MODIFIED, "createdate", "hs_object_id",
)  # fmt: skip
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
STARTED: Final = "backfill_started"  # Cursor.extra key


def to_ms(when: dt.datetime) -> int:
    return (when - EPOCH) // dt.timedelta(milliseconds=1)


def from_ms(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


def parse_time(value: Any) -> dt.datetime | None:
    """HubSpot's time text (``2024-05-01T10:00:01.120Z``) or epoch milliseconds, as aware UTC."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if text.isdigit():
        return from_ms(int(text))
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def query_properties(names: Sequence[str]) -> list[str]:
    """``properties=`` values of a GET, for every reading of the parameter: the spec declares it ``explode: true``
    (one name a value, as the SDK sends) and describes it as "a comma separated list". So the joined list comes
    first and last (a server reading one value, the first or the last as web frameworks differ, and splitting it),
    and each name in between (a server reading every value whole, for which the joined value is an unknown
    property: "ignored", says the spec). HubSpot itself takes either.
    """
    names = list(dict.fromkeys(names))
    joined = ",".join(names)
    return [joined, *names, joined] if len(names) > 1 else names


def next_after(data: Any) -> str | None:
    """``paging.next.after`` of an answer, or None (any level missing or null)."""
    paging = data.get("paging") if isinstance(data, dict) else None
    nxt = paging.get("next") if isinstance(paging, dict) else None
    after = nxt.get("after") if isinstance(nxt, dict) else None
    return str(after) if after not in (None, "") else None


def read_body(
    ids: Sequence[str], properties: Sequence[str], *, by_email: bool = False, history: Sequence[str] = ()
) -> dict[str, Any]:
    """A ``batch/read`` body. The spec requires ``properties`` and ``propertiesWithHistory`` both (an empty list
    asks for no history): a strict implementation refuses a body without them [SPEC BatchReadInputSimplePublicObjectId].
    """
    body: dict[str, Any] = {"inputs": [{"id": i} for i in ids], "properties": list(properties),
                            "propertiesWithHistory": list(history)}  # fmt: skip
    if by_email:
        body["idProperty"] = "email"
    return body


def to_record(raw: dict[str, Any]) -> ProviderRecord:
    """A contact as read (``properties`` may be null or missing); ValueError for one without an id at all."""
    props = raw.get("properties") or {}
    found = raw.get("id") or props.get("hs_object_id")
    if found in (None, ""):  # an unreadable answer, never a record linked as "None"
        raise ValueError("hubspot: a contact without an id in the answer")
    rid = str(found)
    merged = tuple(m for m in str(props.get("hs_merged_object_ids") or "").split(";") if m.strip() and m != rid)
    return ProviderRecord(
        remote_id=rid,
        data=raw,
        updated_at=parse_time(props.get(MODIFIED)) or parse_time(raw.get("updatedAt")),
        deleted=bool(raw.get("archived")),
        merged_ids=merged,
    )


class _Scan:
    """Where the scan stands (newest time seen, ids taken there) and the cursor mark that never goes back."""

    def __init__(self, cursor: Cursor) -> None:
        self.mark = cursor.updated_after
        self.mark_ids = set(cursor.boundary_ids)
        self.pos: dt.datetime | None = None
        self.pos_ids: set[str] = set()
        self._boundary = (cursor.updated_after, frozenset(cursor.boundary_ids))

    def take(self, record: ProviderRecord) -> bool:
        """Whether to emit the record (not already taken); moves the position and the mark."""
        ts, rid = record.updated_at, record.remote_id
        if ts is None:
            return True
        taken = (ts == self._boundary[0] and rid in self._boundary[1]) or (ts == self.pos and rid in self.pos_ids)
        if self.pos is None or ts > self.pos:  # the position moves past dropped records too: no loop
            self.pos, self.pos_ids = ts, {rid}
        elif ts == self.pos:
            self.pos_ids.add(rid)
        if taken:
            return False
        if self.mark is None or ts > self.mark:
            self.mark, self.mark_ids = ts, {rid}
        elif ts == self.mark:
            self.mark_ids.add(rid)
        return True

    def cursor(self) -> Cursor:
        return Cursor(phase="incremental", updated_after=self.mark, boundary_ids=frozenset(self.mark_ids))

    def final(self, started: dt.datetime) -> Cursor:
        """After the last page: the read's own start when it is later than every change read.

        The next read starts ``lookback`` before it, as after a backfill, so records changed within the
        lookback are read once more and then no longer; a mark left at the newest change would make every
        idle cycle read that last window again.
        """
        if self.mark is None or started > self.mark:
            return Cursor(phase="incremental", updated_after=started)
        return self.cursor()


class Reader:
    def __init__(
        self,
        client: HubSpotClient,
        *,
        properties: Sequence[str],
        lookback: dt.timedelta,
        page_size: int = LIST_PAGE,
        search_page: int = SEARCH_PAGE,
        enrich: Callable[[list[ProviderRecord]], list[ProviderRecord]] = list,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._client = client
        self._properties = list(dict.fromkeys([*BASE_PROPERTIES, *properties]))
        self._lookback = lookback
        self._page_size = min(max(page_size, 1), LIST_PAGE)
        self._search_page = min(max(search_page, 1), SEARCH_PAGE)
        self._clock = clock
        self._enrich = enrich

    def read(self, cursor: Cursor) -> Iterator[Page]:
        if cursor.phase == "backfill":
            yield from self._backfill(cursor)
        else:
            yield from self._incremental(cursor)

    # -- backfill ----------------------------------------------------------------------------
    def _backfill(self, cursor: Cursor) -> Iterator[Page]:
        """List pages in id order. Each next page is already being read while the caller stores this one.

        The list call is a plain read of a position the previous answer named, so asking for it early
        changes nothing but the wait: the caller still gets pages one by one, in order, each with its own
        cursor, and an error surfaces when it asks for the page that failed. The same limiter paces it.
        """
        started = cursor.extra.get(STARTED) or self._clock().isoformat()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hubspot-read-ahead") as ahead:
            pending: Future[Any] = ahead.submit(self._list_page, cursor.page_token)
            try:
                while True:
                    body = pending.result()
                    after = next_after(body)
                    if after:
                        pending = ahead.submit(self._list_page, str(after))
                    records = self._enrich([to_record(r) for r in (body or {}).get("results") or []])
                    if after:
                        nxt = Cursor(phase="backfill", page_token=str(after), extra={STARTED: started})
                    else:  # incremental from the backfill's start minus the lookback: nothing changed meanwhile is lost
                        since = dt.datetime.fromisoformat(started) - self._lookback
                        nxt = Cursor(phase="incremental", updated_after=since)
                    yield Page(records=records, next_cursor=nxt)
                    if not after:
                        return
            finally:
                pending.cancel()  # a caller that stops early does not wait for a page it will not take

    def _list_page(self, after: str | None) -> Any:
        # archived is left to its default (false) rather than sent as the SDK's "False".
        kwargs: dict[str, Any] = {"limit": self._page_size, "properties": query_properties(self._properties)}
        if after:
            kwargs["after"] = after
        _, body = self._client.call("GET", "/crm/v3/objects/contacts", self._client.basic.get_page, **kwargs)
        return body

    # -- incremental -------------------------------------------------------------------------
    def _incremental(self, cursor: Cursor) -> Iterator[Page]:
        scan = _Scan(cursor)
        started: dt.datetime | None = None  # HubSpot's own clock when this read began
        start = to_ms(cursor.updated_after - self._lookback) if cursor.updated_after else 0
        operator = "GTE"
        while True:
            results, more = self._search(
                [{"propertyName": MODIFIED, "operator": operator, "value": str(start)}], MODIFIED
            )
            started = started or self._client.server_time
            records = [to_record(r) for r in results]
            last = not more
            taken = self._enrich([r for r in records if scan.take(r)])
            yield Page(records=taken, next_cursor=scan.final(started) if last and started else scan.cursor())
            if last:
                return
            if scan.pos is None or to_ms(scan.pos) <= start:
                if operator == "GT" or scan.pos is None:  # a full page that moved nothing: never spin on it
                    raise FatalProviderError(
                        "hubspot POST /crm/v3/objects/contacts/search -> a full page without progress",
                        provider="hubspot", method="POST", path="/crm/v3/objects/contacts/search",
                    )  # fmt: skip
                yield from self._drain(start, scan)  # a full page at one instant: go through it by id
                operator = "GT"
            else:
                operator = "GTE"
                start = to_ms(scan.pos)

    def _drain(self, at_ms: int, scan: _Scan) -> Iterator[Page]:
        last_id = 0
        while True:
            filters = [
                {"propertyName": MODIFIED, "operator": "EQ", "value": str(at_ms)},
                {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)},
            ]
            results, more = self._search(filters, "hs_object_id")
            records = [to_record(r) for r in results]
            yield Page(records=self._enrich([r for r in records if scan.take(r)]), next_cursor=scan.cursor())
            if not more or not records:
                return
            last_id = max(int(r.remote_id) for r in records)

    def _search(self, filters: list[dict[str, str]], sort: str) -> tuple[list[dict[str, Any]], bool]:
        """One first page of a query, and whether more match it.

        No ``after``: every query starts at its first result, and ``after`` is an opaque token HubSpot hands out
        (the spec's example is ``"NTI1Cg%3D%3D"``), so "0" need not be one. ``limit`` is a maximum, so a short
        page with ``paging.next`` is not the end; a full page without it is checked once more (cheap, never wrong).
        """
        body = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": self._properties,
            "limit": self._search_page,
        }
        _, data = self._client.call(
            "POST", "/crm/v3/objects/contacts/search", self._client.search_api.do_search, body, search=True
        )
        results = list((data or {}).get("results") or [])
        return results, bool(next_after(data)) or len(results) >= self._search_page
