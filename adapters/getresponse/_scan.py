"""Keyset paging over ``GET /contacts`` sorted by ``changedOn``: where a read stands, as a page token.

GetResponse pages by page number only, and an edited contact jumps to the end of a ``changedOn`` order,
so plain page numbers would skip. Each request filters ``query[changedOn][from]`` at the newest
``changedOn`` read so far and starts again at page 1; the ids already read at exactly that second are
kept (``seen``) and dropped from the next answer. Only when a whole page shares one second does the
scan move to the next page number of the same filter (the seen ids still guard against repeats).

Known limit: within one second holding more than a page of contacts, a contact of that second that
moves *back* a place while it is paged (another of that second was edited meanwhile) can be passed
over until its own next change; an incremental read re-reads ``lookback`` before its cursor, which
catches it when the second is recent.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.base import CursorError
from adapters.getresponse._wire import format_time, parse_time


@dataclass(frozen=True, slots=True)
class Scan:
    since: dt.datetime | None = None  # the query[changedOn][from] filter (inclusive, whole seconds)
    page: int = 1
    seen: frozenset[str] = frozenset()  # ids already read whose changedOn == since
    prior: dt.datetime | None = None  # the stored cursor's updated_after: ids below are not skipped
    prior_ids: frozenset[str] = field(default_factory=frozenset)  # the stored cursor's boundary ids

    def params(self, campaign_id: str, per_page: int) -> list[tuple[str, str]]:
        out = [
            ("query[campaignId]", campaign_id),
            ("sort[changedOn]", "ASC"),
            ("perPage", str(per_page)),
            ("page", str(self.page)),
        ]
        if self.since is not None:
            out.append(("query[changedOn][from]", format_time(self.since)))
        return out

    def taken(self, contact_id: str, changed: dt.datetime) -> bool:
        """Already read by this scan, or by the read that stored the cursor."""
        return (changed == self.since and contact_id in self.seen) or (
            changed == self.prior and contact_id in self.prior_ids
        )

    def advance(self, keyed: Sequence[tuple[str, dt.datetime]]) -> Scan:
        """The scan after a page of (contactId, changedOn), in the order the server sent them."""
        if not keyed:
            return self
        newest = max(changed for _, changed in keyed)
        at_newest = frozenset(cid for cid, changed in keyed if changed == newest)
        if self.since is None or newest > self.since:
            return Scan(since=newest, page=1, seen=at_newest, prior=self.prior, prior_ids=self.prior_ids)
        return Scan(
            since=self.since, page=self.page + 1, seen=self.seen | at_newest, prior=self.prior, prior_ids=self.prior_ids
        )

    def boundary(self) -> tuple[dt.datetime | None, frozenset[str]]:
        """(updated_after, boundary ids) for the incremental cursor after the scan; never backwards."""
        if self.since is None or (self.prior is not None and self.since < self.prior):
            return self.prior, self.prior_ids
        if self.since == self.prior:
            return self.since, self.seen | self.prior_ids
        return self.since, self.seen

    def to_token(self, **extra: Any) -> str:
        return json.dumps(
            {
                "since": format_time(self.since) if self.since else None,
                "page": self.page,
                "seen": sorted(self.seen),
                "prior": format_time(self.prior) if self.prior else None,
                "prior_ids": sorted(self.prior_ids),
                **extra,
            },
            sort_keys=True,
        )

    @classmethod
    def from_token(cls, token: dict[str, Any]) -> Scan:
        try:
            return cls(
                since=parse_time(token["since"]) if token.get("since") else None,
                page=max(int(token.get("page") or 1), 1),
                seen=frozenset(str(i) for i in token.get("seen") or ()),
                prior=parse_time(token["prior"]) if token.get("prior") else None,
                prior_ids=frozenset(str(i) for i in token.get("prior_ids") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CursorError("stored GetResponse cursor has an unreadable page token") from exc


def read_token(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        token = json.loads(text)
    except ValueError as exc:
        raise CursorError("stored GetResponse cursor has an unreadable page token") from exc
    if not isinstance(token, dict):
        raise CursorError("stored GetResponse cursor has an unreadable page token")
    return token
