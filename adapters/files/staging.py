"""The durable staging file beside a file target: written per batch, merged by ``finish_writes()``.

One entry per line: a small JSON head ``["u"|"e", key, previous_key, (columns when they change)]``,
a tab, the fields as JSON (JSON escapes tabs, so the first tab always ends the head). Reading the heads
alone is enough to plan a merge; only the entries that win are read in full.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import orjson

UPSERT: Final = "u"
ERASE: Final = "e"
REMOVED: Final = -1  # MergePlan.final: the key's row goes
# MergePlan.final also remembers, in the same int, that a winner has been written in the place of an existing
# row: one dict entry per key however many rows are updated (staging offsets stay below 2**48).
_PLACED: Final = 1 << 48
_STAGED_MASK: Final = _PLACED - 1
_TAIL_CHUNK: Final = 64 * 1024


def json_default(value: object) -> Any:
    """Sets (tags) as sorted lists, anything else JSON cannot say as text."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, default=json_default)
# Valid inside JSON strings, but line breaks to str.splitlines(): escaped so naive readers see one line each.
_LINE_BREAKS: Final = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


# orjson reads integers past 64 bits as floats (json.loads keeps them exact): a line with so long a run of
# digits anywhere is read by the standard library, as is any line orjson refuses (NaN, lone surrogates).
_LONG_DIGITS: Final = re.compile(r"\d{19}")


def loads_line(text: str) -> Any:
    """One JSON text, read as ``json.loads`` reads it. A full read of a JSON Lines file parses every line,
    so orjson does it where it gives the same answer (a few times faster).
    """
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def dumps_line(value: Any) -> str:
    """One JSON text for a JSON Lines file: UTF-8 as is, with no character any reader takes for a newline."""
    text = _ENCODER.encode(value)
    if "\x85" in text or "\u2028" in text or "\u2029" in text:
        return text.translate(_LINE_BREAKS)
    return text


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class MergePlan:
    """What the staging file asks of the target, planned from the entry heads alone.

    Memory is one entry per staged key (its winning offset) plus two per rename or erase.
    """

    final: dict[str, int] = field(default_factory=dict)  # key -> its winning entry (see _PLACED), or REMOVED
    # A renamed contact's earlier addresses, oldest first, whose rows are its own; () after an erase or a
    # rename away: the address starts afresh. A key without an entry has only its own row.
    moved: dict[str, tuple[str, ...]] = field(default_factory=dict)
    columns: dict[str, None] = field(default_factory=dict)  # field names of upserts, first seen first
    # Keys erased or renamed away: their existing row never comes back, not even under a contact renamed
    # onto that address later.
    gone: set[str] = field(default_factory=set)

    def rows_of(self, key: str) -> tuple[str, ...]:
        """The addresses whose existing row the winner ``key`` may take, the first found first."""
        own = () if key in self.gone else (key,)
        return self.moved.get(key, ()) + own

    def is_winner(self, key: str) -> bool:
        return self.final.get(key, REMOVED) >= 0

    def place(self, key: str) -> None:
        """Remember that the winner ``key`` has been written where an existing row was."""
        self.final[key] |= _PLACED

    def is_placed(self, key: str) -> bool:
        return self.final.get(key, REMOVED) > _STAGED_MASK

    def unplace_all(self) -> None:
        """Forget every placement (a merge that starts again)."""
        for key, packed in self.final.items():
            if packed > _STAGED_MASK:
                self.final[key] = packed & _STAGED_MASK

    def staged_offset(self, key: str) -> int:
        """Where the winning entry of ``key`` starts in the staging file."""
        return self.final[key] & _STAGED_MASK

    def unplaced_winners(self) -> Iterator[tuple[int, str]]:
        """``(staging offset, key)`` of each winning entry not placed over an existing row, offsets ascending."""
        return ((packed, key) for key, packed in self.final.items() if 0 <= packed <= _STAGED_MASK)

    def upsert(self, key: str, prev: str | None, offset: int) -> None:
        if prev and prev != key:
            self.final[prev] = REMOVED
            # () when prev's row went already (erased, or this same rename, retried): key keeps its own rows
            earlier = self.rows_of(prev)
            self.moved.pop(prev, None)
            if earlier:
                self.moved[key] = earlier + self.moved.get(key, ())
            self.moved[prev] = ()  # whoever takes the old address later is someone else
            self.gone.add(prev)
        self.final.pop(key, None)  # re-insert: winners stay in the order of their entries
        self.final[key] = offset

    def erase(self, key: str) -> None:
        self.final[key] = REMOVED
        self.moved[key] = ()  # a later create starts afresh: nothing of the erased row comes back
        self.gone.add(key)


class Staging:
    """Append-only, fsynced per batch; a leftover from a crashed run is merged by the next finish."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._columns: tuple[str, ...] | None = None  # of the last upsert: heads name columns only when they change

    def exists(self) -> bool:
        return self.path.exists()

    def append(self, entries: list[tuple[str, str, str | None, Mapping[str, Any]]]) -> None:
        """Write ``(op, key, previous_key, fields)`` entries durably before anyone is told ok."""
        lines = []
        for op, key, prev, fields in entries:
            head: list[Any] = [op, key, prev]
            columns = tuple(fields)
            if op == UPSERT and columns != self._columns:
                head.append(columns)
                self._columns = columns
            lines.append(f"{dumps_line(head)}\t{dumps_line(fields)}\n")
        handle = self._open()
        handle.write("".join(lines).encode("utf-8", "surrogateescape"))
        handle.flush()
        os.fsync(handle.fileno())

    def _open(self) -> IO[bytes]:
        if self._file is None:
            existed = self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            self._file = os.fdopen(fd, "r+b")
            _drop_torn_tail(self._file)
            if not existed:
                fsync_dir(self.path.parent)
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._columns = None

    def plan(self) -> MergePlan:
        """One pass over the heads: later entries win; a rename removes the old key; erase removes."""
        plan = MergePlan()
        for offset, raw in self._lines():
            head = loads_line(raw.partition(b"\t")[0].decode("utf-8", "surrogateescape"))
            if head[0] == ERASE:
                plan.erase(head[1])
                continue
            plan.upsert(head[1], head[2], offset)
            if len(head) > 3:
                plan.columns.update(dict.fromkeys(head[3]))
        return plan

    def new_bodies(self, plan: MergePlan) -> Iterator[tuple[str, bytes]]:
        """``(key, fields JSON line)`` of each winning entry not placed over an existing row, in staging order."""
        winners = plan.unplaced_winners()
        wanted = next(winners, None)
        for offset, raw in self._lines():
            if wanted is None:
                return
            if offset == wanted[0]:
                yield wanted[1], raw.partition(b"\t")[2]
                wanted = next(winners, None)

    @contextlib.contextmanager
    def bodies(self) -> Iterator[Callable[[int], bytes]]:
        """Read entries by offset (``MergePlan.staged_offset``): the fields JSON line of the entry there."""
        with self.path.open("rb") as handle:

            def body_at(offset: int) -> bytes:
                handle.seek(offset)
                return handle.readline().partition(b"\t")[2]

            yield body_at

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        offset = 0
        with self.path.open("rb") as handle:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    return  # a torn last line: its batch was never acknowledged
                yield offset, raw
                offset += len(raw)

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
        fsync_dir(self.path.parent)


def _drop_torn_tail(handle: IO[bytes]) -> None:
    """Cut a half-written last line (a crash mid-append) so the next entry starts on its own line."""
    size = handle.seek(0, os.SEEK_END)
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        handle.seek(start)
        chunk = handle.read(end - start)
        if end == size and chunk.endswith(b"\n"):
            return
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            handle.truncate(start + cut + 1)
            return
        end = start
    handle.truncate(0)
