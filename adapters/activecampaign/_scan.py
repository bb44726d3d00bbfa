"""Where a read stands: the id keyset position, the ``updated_after`` window and the id sweep for deletions.

ActiveCampaign cannot sort by ``udate`` (providers/activecampaign.md, pitfall 1): a read pages the whole
window by id (``orders[id]=ASC&id_greater=``) and the window only moves, at the end, to the moment the read
began. Records already taken near that moment are remembered as ``id -> udate`` so the overlap
(``lookback``) does not hand them out twice. Deletes are invisible to polling (pitfall 4): ids are
assigned in order, so an id sweep finds the missing ones as gaps; the gaps already reported are kept
in the cursor as ranges (``"6-7,12-12"``) so each deletion is reported once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

Ranges = list[tuple[int, int]]


def parse_ranges(text: str | None) -> Ranges:
    out: Ranges = []
    for part in (text or "").split(","):
        if part:
            lo, _, hi = part.partition("-")
            out.append((int(lo), int(hi or lo)))
    return out


def format_ranges(ranges: Iterable[tuple[int, int]]) -> str:
    merged: Ranges = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return ",".join(f"{lo}-{hi}" for lo, hi in merged)


def new_ids(lo: int, hi: int, known: Ranges) -> Iterator[int]:
    """Ids in ``lo..hi`` (inclusive) not inside a known range."""
    i = lo
    for a, b in sorted(known):
        if b < i:
            continue
        if a > hi:
            break
        yield from range(i, min(a, hi + 1))
        i = max(i, b + 1)
    yield from range(i, hi + 1)


def gaps(previous: int, ids: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Missing id ranges between ``previous`` and each following id of an ascending run."""
    for current in ids:
        if current > previous + 1:
            yield (previous + 1, current - 1)
        previous = max(previous, current)


def dump(token: dict[str, Any]) -> str:
    return json.dumps(token, sort_keys=True, separators=(",", ":"))
