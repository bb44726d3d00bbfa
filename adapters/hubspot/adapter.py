"""The HubSpot adapter: contacts through the official SDK (wrapped), consent, merges, erasure, webhooks."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Final

from adapters._http import TIMEOUT
from adapters.base import Cursor, Page, ProviderRecord, WebhookEvent, WriteRequest, WriteResult
from adapters.hubspot import webhooks
from adapters.hubspot._client import (
    DEFAULT_BASE_URL,
    DEFAULT_RATE_LIMIT,
    SEARCH_RATE,
    WINDOW_MARGIN,
    HubSpotClient,
    NotFound,
)
from adapters.hubspot._consent import ConsentReader, Unsubscriber, opt_out_times
from adapters.hubspot._read import (
    BASE_PROPERTIES,
    LIST_PAGE,
    SEARCH_PAGE,
    Reader,
    query_properties,
    read_body,
    to_record,
)
from adapters.hubspot._write import BATCH_MAX, Writer
from adapters.ratelimit import RateLimiter
from adapters.secret import Secret

LOOKBACK: Final = dt.timedelta(minutes=5)  # the search index trails writes [SEARCH]; bulk edits share instants
_LIMITERS: dict[str, tuple[RateLimiter, RateLimiter]] = {}
_LIMITERS_LOCK = threading.Lock()


def portal_limiters(
    base_url: str, token: str, rate_limit: str, search_rate_limit: str = SEARCH_RATE
) -> tuple[RateLimiter, RateLimiter]:
    """One burst limiter and one search limiter per portal (token), shared by every adapter on it."""
    key = hashlib.sha256(f"{base_url}\0{token}\0{rate_limit}\0{search_rate_limit}".encode()).hexdigest()
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            burst, search = RateLimiter.parse(rate_limit), RateLimiter.parse(search_rate_limit)
            _LIMITERS[key] = (
                RateLimiter(burst.calls, burst.per_s * WINDOW_MARGIN),
                RateLimiter(search.calls, search.per_s * WINDOW_MARGIN),
            )
        return _LIMITERS[key]


def _reveal(value: Secret | str | None) -> str | None:
    return value.reveal() if isinstance(value, Secret) else value


class HubSpotAdapter:
    """``ProviderAdapter`` plus ``SupportsErase``, ``SupportsFetchByIds``, ``SupportsOptOutTimes`` and
    ``SupportsWebhooks``.

    Records carry ``merged_ids`` (``hs_merged_object_ids``) and may answer with a survivor's id;
    consent is written by ``fields["properties"]["hs_email_optout"] == "true"`` (an unsubscribe).
    """

    lookback: ClassVar[dt.timedelta] = LOOKBACK
    max_batch: ClassVar[int] = BATCH_MAX

    def __init__(
        self,
        *,
        name: str = "hubspot",
        access_token: Secret | str,
        base_url: str = DEFAULT_BASE_URL,
        client_secret: Secret | str | None = None,
        rate_limit: str | None = None,
        search_rate_limit: str = SEARCH_RATE,
        properties: Sequence[str] = (),
        subscription_id: str | None = None,
        page_size: int = LIST_PAGE,
        search_page: int = SEARCH_PAGE,
        timeout: tuple[float, float] = TIMEOUT,
        attempts: int = 5,
        max_wait_s: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        token = _reveal(access_token) or ""
        if not token:
            raise ValueError(f"providers.{name}.access_token: missing")
        self.name = name
        self._secret = _reveal(client_secret)
        limiter, search_limiter = portal_limiters(base_url, token, rate_limit or DEFAULT_RATE_LIMIT, search_rate_limit)
        self.client = HubSpotClient(
            base_url=base_url, token=token, limiter=limiter, search_limiter=search_limiter, timeout=timeout,
            attempts=attempts, max_wait_s=max_wait_s, sleep=sleep,
        )  # fmt: skip
        self._properties = list(dict.fromkeys([*BASE_PROPERTIES, *properties]))
        self._consent = ConsentReader(self.client)
        self._reader = Reader(
            self.client, properties=self._properties, lookback=LOOKBACK, page_size=page_size,
            search_page=search_page, enrich=self._consent.enrich,
        )  # fmt: skip
        self._writer = Writer(self.client, Unsubscriber(self.client, subscription_id=subscription_id))

    def __repr__(self) -> str:
        return f"HubSpotAdapter({self.name!r})"

    # -- ProviderAdapter ---------------------------------------------------------------------
    def check(self) -> None:
        """One list call: reaches the portal, proves the token and the contacts read scope."""
        self.client.call("GET", "/crm/v3/objects/contacts", self.client.basic.get_page, limit=1, properties=["email"])

    def read_contacts(self, cursor: Cursor) -> Iterator[Page]:
        return self._reader.read(cursor)

    def write_contacts(self, requests: Sequence[WriteRequest]) -> list[WriteResult]:
        if len(requests) > self.max_batch:
            raise ValueError(f"hubspot: at most {self.max_batch} writes a call, got {len(requests)}")
        return self._writer.write(requests)

    def close(self) -> None:
        return  # the SDK's pools close with the process; nothing is buffered here

    # -- optional abilities ------------------------------------------------------------------
    def fetch_contacts(self, remote_ids: Sequence[str]) -> list[ProviderRecord]:
        """Current records by id; a merged-away id answers with its survivor; missing ids come back deleted."""
        out: list[ProviderRecord] = []
        ids = list(dict.fromkeys(str(i) for i in remote_ids))
        for start in range(0, len(ids), BATCH_MAX):
            chunk = ids[start : start + BATCH_MAX]
            body = read_body(chunk, self._properties)
            _, data = self.client.call("POST", "/crm/v3/objects/contacts/batch/read", self.client.batch.read, body)
            records = [to_record(r) for r in (data or {}).get("results") or []]
            covered = {r.remote_id for r in records} | {m for r in records for m in r.merged_ids}
            out += records
            out += [self._fetch_one(i) for i in chunk if i not in covered]
        return self._consent.enrich(out)

    def _fetch_one(self, remote_id: str) -> ProviderRecord:
        try:
            _, raw = self.client.call(
                "GET", "/crm/v3/objects/contacts/{contactId}", self.client.basic.get_by_id, remote_id,
                properties=query_properties(self._properties),
            )  # fmt: skip
        except NotFound:
            return ProviderRecord(remote_id=remote_id, data={"id": remote_id}, deleted=True)
        record = to_record(raw or {})
        if record.remote_id != remote_id and remote_id not in record.merged_ids:  # answered by the survivor
            record = ProviderRecord(
                remote_id=record.remote_id, data=record.data, updated_at=record.updated_at,
                merged_ids=(*record.merged_ids, remote_id),
            )  # fmt: skip
        return record

    def opt_out_times(self, remote_ids: Sequence[str]) -> dict[str, dt.datetime]:
        """``SupportsOptOutTimes``: from ``hs_email_optout``'s history, 50 contacts a call."""
        return opt_out_times(self.client, remote_ids)

    def erase_contact(self, *, remote_id: str | None, email: str) -> None:
        """GDPR delete by address (HubSpot then blocks it for good), and by id if the address moved."""
        purge = self.client.basic.purge
        path = "/crm/v3/objects/contacts/gdpr-delete"
        self.client.call("POST", path, purge, {"objectId": email.strip().lower(), "idProperty": "email"})
        if remote_id:
            with contextlib.suppress(NotFound):  # already gone with the address
                self.client.call("POST", path, purge, {"objectId": remote_id})

    def verify_webhook(self, *, method: str, url: str, headers: Mapping[str, str], body: bytes) -> None:
        webhooks.verify(self._secret, method=method, url=url, headers=headers, body=body)

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        return webhooks.parse(body)

    @property
    def calls(self) -> Mapping[str, int]:
        """Calls sent per ``METHOD path`` (retries included), for benchmarks and status."""
        return dict(self.client.calls)


def create_adapter(name: str, options: Mapping[str, Any]) -> HubSpotAdapter:
    """From ``[providers.<name>]``: access_token, base_url, client_secret, rate_limit, search_rate_limit,
    page_size, subscription_id, and ``properties`` (extra property names to read, a list or comma-separated).
    """
    extra = options.get("properties") or ()
    if isinstance(extra, str):
        extra = [p.strip() for p in extra.split(",") if p.strip()]
    return HubSpotAdapter(
        name=name,
        access_token=options["access_token"],
        base_url=str(options.get("base_url") or DEFAULT_BASE_URL),
        client_secret=options.get("client_secret"),
        rate_limit=options.get("rate_limit"),
        search_rate_limit=str(options.get("search_rate_limit") or SEARCH_RATE),
        properties=tuple(str(p) for p in extra),
        subscription_id=options.get("subscription_id"),
        page_size=int(options.get("page_size") or LIST_PAGE),
    )
