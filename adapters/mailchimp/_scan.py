"""Reading an audience by ``last_changed`` without skipping anyone: the scan state and how it advances.

Mailchimp pages members by ``offset`` only, and a member edited during a scan moves to the end of a
``sort_field=last_changed`` listing, which shifts every later member one place down: plain offsets
would then skip one. So each page re-anchors the query at the newest ``last_changed`` it saw:
``since_last_changed = newest - 1 s`` (second precision; whether the bound is inclusive is unconfirmed,
providers/mailchimp.md pitfall 7, and this choice works either way), and drops, by id, the members
already taken at that newest second. Only when a whole page shares one second does the scan fall
back to an offset inside that second, stepping back a little to absorb a shift.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from adapters.base import Cursor, CursorError

ONE_SECOND: Final = dt.timedelta(seconds=1)
SHIFT_MARGIN: Final = 50  # members re-read when paging by offset inside one second (ids dedupe them)


def parse_time(text: str) -> dt.datetime:
    """``2024-05-01T09:30:02+00:00`` (or a zone-less form, taken as UTC) as an aware UTC datetime."""
    moment = dt.datetime.fromisoformat(text.strip().replace(" ", "T", 1).replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True, slots=True, kw_only=True)
class Scan:
    """Where a scan stands: the query (``since``, ``offset``) and what it has taken (``floor``, ``taken``)."""

    since: dt.datetime | None = None  # since_last_changed of the current query; None = the whole audience
    offset: int = 0
    floor: dt.datetime | None = None  # members older than this were taken
    taken: frozenset[str] = field(default_factory=frozenset)  # ids taken at exactly ``floor``
    ordered: bool = True  # False once the server is seen not to sort: plain offsets, nothing dropped
    newest: dt.datetime | None = None  # the newest last_changed read so far

    def already_taken(self, member_id: str, changed: dt.datetime) -> bool:
        if self.floor is None:
            return False
        return changed < self.floor or (changed == self.floor and member_id in self.taken)

    def unordered(self) -> Scan:
        """Page by plain offset from here on: the server does not sort by last_changed."""
        return replace(self, ordered=False, floor=None, taken=frozenset())

    def advance(self, page: Sequence[tuple[str, dt.datetime]], *, count: int) -> Scan:
        """The state after a page of (id, last_changed) as the server listed it."""
        if not page:
            return self
        top = max(changed for _, changed in page)
        newest = max(self.newest, top) if self.newest else top
        if not self.ordered or any(later < earlier for (_, earlier), (_, later) in itertools.pairwise(page)):
            # The server ignores sort_field: page by plain offset, drop nothing (the engine dedupes).
            return replace(self.unordered(), offset=self.offset + len(page), newest=newest)
        at_top = frozenset(i for i, changed in page if changed == top)
        if self.floor is None or top > self.floor:
            return Scan(since=top - ONE_SECOND, offset=0, floor=top, taken=at_top, newest=newest)
        # The whole page sat at ``floor``: step through that second by offset, re-reading a margin.
        step = max(len(page) - min(SHIFT_MARGIN, count // 2), 1)
        return replace(self, offset=self.offset + step, taken=self.taken | at_top, newest=newest)

    def token(self, extra: Mapping[str, Any] | None = None) -> str:
        return json.dumps(
            {
                "since": format_time(self.since) if self.since else None,
                "offset": self.offset,
                "ordered": self.ordered,
                "newest": format_time(self.newest) if self.newest else None,
                **(extra or {}),
            },
            sort_keys=True,
        )

    def cursor(self, *, phase: str, extra: Mapping[str, Any] | None = None) -> Cursor:
        return Cursor(
            phase="backfill" if phase == "backfill" else "incremental",
            page_token=self.token(extra),
            updated_after=self.floor,
            boundary_ids=self.taken,
        )

    @classmethod
    def from_cursor(cls, cursor: Cursor) -> tuple[Scan, dict[str, Any]]:
        """A scan resumed from a stored mid-scan cursor, and the token's other keys."""
        try:
            raw = json.loads(cursor.page_token or "")
            since = parse_time(raw["since"]) if raw.get("since") else None
            offset = int(raw.get("offset", 0))
            ordered = bool(raw.get("ordered", True))
            newest = parse_time(raw["newest"]) if raw.get("newest") else None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CursorError("stored Mailchimp cursor has an unreadable page token") from exc
        floor = cursor.updated_after.astimezone(dt.UTC) if cursor.updated_after else None
        scan = cls(since=since, offset=offset, floor=floor, taken=cursor.boundary_ids, ordered=ordered, newest=newest)
        return scan, raw
