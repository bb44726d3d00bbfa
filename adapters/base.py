"""The shapes every adapter shares: records, pages, cursors, writes and the adapter protocols.

An adapter owns transport, auth, paging, rate limits and provider errors. It never maps fields
(``mappings/`` does) and never stores anything (``state/`` does); the engine joins them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

CURSOR_VERSION = 1


class CursorError(ValueError):
    """A stored cursor could not be read; it is surfaced, never quietly reset."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderRecord:
    """One contact as the provider returned it: its id, its raw payload, its own timestamp."""

    remote_id: str
    data: Mapping[str, Any]
    updated_at: dt.datetime | None = None  # aware UTC, the provider's own modification time
    deleted: bool = False
    merged_ids: tuple[str, ...] = ()  # ids this record absorbed (HubSpot merges)
    where: str | None = None  # where it was read, for errors: a file and line (an API record's id says it)


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectedRecord:
    """An input row that could not be read; reported, never fatal for the other rows."""

    where: str  # "contacts.csv:17" or a provider id: never the person's address
    message: str
    email: str | None = None  # for the --json report only, never for logs


@dataclass(frozen=True, slots=True, kw_only=True)
class Cursor:
    """A small versioned watermark that never goes backwards; stored as ``{"v": 1, ...}``."""

    phase: Literal["backfill", "incremental"] = "backfill"
    page_token: str | None = None  # backfill: the provider's opaque token
    updated_after: dt.datetime | None = None  # aware UTC; reads include it (minus lookback)
    boundary_ids: frozenset[str] = frozenset()  # ids already taken at exactly updated_after
    extra: Mapping[str, str] = field(default_factory=dict)  # provider specifics (a file's fingerprint)

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": CURSOR_VERSION,
                "phase": self.phase,
                "page_token": self.page_token,
                "updated_after": self.updated_after.isoformat() if self.updated_after else None,
                "boundary_ids": sorted(self.boundary_ids),
                "extra": dict(self.extra),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CursorError("stored cursor is not JSON") from exc
        if not isinstance(raw, dict) or raw.get("v") != CURSOR_VERSION:
            raise CursorError(f"stored cursor has an unknown version: {raw.get('v') if isinstance(raw, dict) else '?'}")
        after = raw.get("updated_after")
        return cls(
            phase=raw.get("phase", "backfill"),
            page_token=raw.get("page_token"),
            updated_after=dt.datetime.fromisoformat(after) if after else None,
            boundary_ids=frozenset(raw.get("boundary_ids") or ()),
            extra=dict(raw.get("extra") or {}),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """Records read in one call, and the cursor that is safe to store once they are stored."""

    records: Sequence[ProviderRecord]
    next_cursor: Cursor
    rejected: Sequence[RejectedRecord] = ()
    # earlier rows of one person in the page, laid under a later row (its values win, its blanks keep theirs: see
    # adapters/files/repeats.py): read only to report those that are invalid, so that every bad line is named
    superseded: Sequence[ProviderRecord] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteRequest:
    """One contact to create or update, already in the provider's own shape (from ``mappings/``)."""

    ref: str  # the engine's correlation key, echoed in the result
    remote_id: str | None  # None: create (or upsert by email where the provider can)
    email: str  # the current normalised address
    previous_email: str | None = None  # set when the address changed since the last write
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteResult:
    """The provider's answer for one WriteRequest; 2xx is not success until this says so."""

    ref: str
    ok: bool
    remote_id: str | None = None
    error: str | None = None  # no body, no address: the provider's error code and a short reason
    retryable: bool = False
    suppressed: bool = False  # the provider refuses because the person is suppressed (compliance)
    # The record as the provider answered the write that created it (its own shape, as a read returns it), when
    # the answer carries it: what the provider filled in itself (a default status, empty tags, the opt-in time it
    # stamped on the create, which is no confirmation by the person) becomes part of the base, so reading the
    # record back is no change.
    created: Mapping[str, Any] | None = None


@runtime_checkable
class ProviderAdapter(Protocol):
    """What the engine needs from every provider.

    ``read_contacts`` yields pages in order; each page's ``next_cursor`` is safe to store once its
    records are stored, and reading again from it never skips a record. ``write_contacts`` answers
    one ``WriteResult`` per request, in order, and raises only for failures of the whole call.
    """

    name: str  # the user's label for this connection
    lookback: ClassVar[dt.timedelta]  # overlap read below cursor.updated_after
    max_batch: ClassVar[int]  # the most records one write call takes

    def check(self) -> None:
        """Reach the provider and verify credentials and the list/module; raise ProviderError."""

    def read_contacts(self, cursor: Cursor) -> Iterator[Page]: ...

    def write_contacts(self, requests: Sequence[WriteRequest]) -> list[WriteResult]: ...

    def close(self) -> None: ...


@runtime_checkable
class SupportsFinishWrites(Protocol):
    """Writes are staged and become visible at once (files: an atomic replace). Idempotent."""

    def finish_writes(self) -> None: ...


@runtime_checkable
class SupportsOwnWrites(Protocol):
    """After ``finish_writes``: a cursor past what crmsync itself just wrote, or None.

    A file rewritten by crmsync would otherwise be read back whole next cycle, only to find its own echoes.
    The cursor is given only when nobody else changed the provider between crmsync's last full read and its
    write; the engine stores it as the sync cursor. Asking again gives None until the next write.
    """

    def cursor_after_writes(self) -> Cursor | None: ...


@runtime_checkable
class WritesLocally(Protocol):
    """Writes are this process's own work (a file), with no server to wait for. A migration then writes in
    its own thread: a batch written beside the next pages would only share the one interpreter with them.
    Other adapters' ``write_contacts`` may be called from a worker thread, one call at a time.
    """

    writes_locally: ClassVar[bool]


@runtime_checkable
class SupportsErase(Protocol):
    """Erase a person for ``forget`` (GDPR delete, permanent delete, row removal)."""

    def erase_contact(self, *, remote_id: str | None, email: str) -> None: ...


@runtime_checkable
class SupportsFetchByIds(Protocol):
    """Fetch current records by id (webhooks are hints). Missing ids come back ``deleted=True``."""

    def fetch_contacts(self, remote_ids: Sequence[str]) -> list[ProviderRecord]: ...


@runtime_checkable
class SupportsOptOutTimes(Protocol):
    """When each record's opt-out happened, for a provider whose records carry no such time (HubSpot: only a
    property's history has it). The engine asks only where that time decides between an opt-out and an opt-in;
    ids the provider cannot time are left out of the answer.
    """

    def opt_out_times(self, remote_ids: Sequence[str]) -> Mapping[str, dt.datetime]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookEvent:
    """One event of a webhook delivery: a hint naming a record, never the record's truth."""

    event_id: str  # unique per provider delivery (or a hash of the event when the provider has none)
    kind: str  # "created" | "updated" | "deleted" | "merged" | "unsubscribed" | "email_changed" | ...
    remote_id: str | None = None
    email: str | None = None
    occurred_at: dt.datetime | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class SupportsWebhooks(Protocol):
    """Verify and parse a provider's webhook delivery. Verification compares in constant time."""

    def verify_webhook(self, *, method: str, url: str, headers: Mapping[str, str], body: bytes) -> None:
        """Raise WebhookRejected when the signature, token or timestamp is wrong."""

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]: ...
