"""Zoho read cursors: records from wire JSON, watermarks that never skip, boundary ids, the horizon."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from adapters.base import Cursor, ProviderRecord
from adapters.zoho._wire import format_zoho_time, parse_zoho_time


def placeholder_last_name(email: str) -> str:
    """The Last_Name crmsync gives a new contact with none: Zoho requires one (providers/zoho.md pitfall 6)."""
    return email.split("@", 1)[0]


def _without_placeholder(item: Mapping[str, Any]) -> dict[str, Any]:
    """The record with a placeholder Last_Name left out, so that it never spreads to other providers as a name.

    A Last_Name that is exactly the local part of the record's own Email is read as that placeholder (also when a
    person typed it so: it is the same convention).
    """
    data = dict(item)
    email, last = data.get("Email"), data.get("Last_Name")
    if isinstance(email, str) and isinstance(last, str) and last and last == placeholder_last_name(email):
        del data["Last_Name"]
    return data


def record(item: Mapping[str, Any]) -> ProviderRecord:
    modified = item.get("Modified_Time")
    return ProviderRecord(
        remote_id=str(item["id"]),
        data=_without_placeholder(item),
        updated_at=parse_zoho_time(modified) if isinstance(modified, str) and modified else None,
    )


def deleted_record(item: Mapping[str, Any]) -> ProviderRecord:
    when = item.get("deleted_time")
    return ProviderRecord(
        remote_id=str(item["id"]),
        data=dict(item),
        deleted=True,
        updated_at=parse_zoho_time(when) if isinstance(when, str) and when else None,
    )


def already_taken(cursor: Cursor, record: ProviderRecord) -> bool:
    return record.updated_at == cursor.updated_after and record.remote_id in cursor.boundary_ids


def advance(
    cursor: Cursor,
    records: Sequence[ProviderRecord],
    *,
    phase: Any,
    page_token: str | None,
    started: dt.datetime | None,
    cap: dt.datetime | None = None,
) -> Cursor:
    """The watermark after a page sorted by Modified_Time ascending; never goes backwards nor past ``cap``."""
    times = [r.updated_at for r in records if r.updated_at is not None]
    after, boundary = cursor.updated_after, set(cursor.boundary_ids)
    last = watermark(times)
    if last is not None and cap is not None:
        last = min(last, cap)
    if last is not None and (after is None or last > after):
        after, boundary = last, set()
    if last is not None and last == after:
        boundary |= {r.remote_id for r in records if r.updated_at == last}
    extra = dict(cursor.extra)
    if started is not None:
        extra["started"] = format_zoho_time(started)
    return Cursor(
        phase=phase, page_token=page_token, updated_after=after, boundary_ids=frozenset(boundary), extra=extra
    )


def settle(cursor: Cursor, records: Sequence[ProviderRecord], horizon: dt.datetime) -> Cursor:
    """After a complete pass the watermark moves up to the horizon (ids read at exactly it stay taken)."""
    if cursor.updated_after is not None and cursor.updated_after >= horizon:
        return cursor
    taken = frozenset(r.remote_id for r in records if r.updated_at == horizon)
    return Cursor(phase=cursor.phase, updated_after=horizon, boundary_ids=taken, extra=dict(cursor.extra))


def watermark(times: Sequence[dt.datetime]) -> dt.datetime | None:
    """The time of the page's last record: the page is sorted by Modified_Time, oldest first.

    A page token may list records in the order of an earlier moment, so a record edited while we page
    shows a newer time out of order. Such an edit is newer than the read's start, and callers cap the
    watermark there (``now - lookback``), where the next read starts anyway.
    """
    return times[-1] if times else None


def backfill_start(cursor: Cursor, now: dt.datetime) -> dt.datetime:
    raw = cursor.extra.get("started")
    return parse_zoho_time(raw) if raw else now.replace(microsecond=0)
