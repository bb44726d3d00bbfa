"""The durable staging file beside a file target: written per batch, merged by ``finish_writes()``.

One entry per line: a small JSON head ``["u"|"e", key, previous_key]``, a tab, the fields as JSON
(``json.dumps`` escapes tabs, so the first tab always ends the head). Reading the head alone is enough
to plan a merge; only the entries that win are read in full.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

UPSERT: Final = "u"
ERASE: Final = "e"
_TAIL_CHUNK: Final = 64 * 1024


def json_default(value: object) -> Any:
    """Sets (tags) as sorted lists, anything else JSON cannot say as text."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


# Valid inside JSON strings, but line breaks to str.splitlines(): escaped so naive readers see one line each.
_LINE_BREAKS: Final = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def dumps_line(value: Any) -> str:
    """One JSON text for a JSON Lines file: UTF-8 as is, with no character any reader takes for a newline."""
    return json.dumps(value, ensure_ascii=False, default=json_default).translate(_LINE_BREAKS)


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class MergePlan:
    """What the staging file asks of the target, planned from the entry heads alone."""

    final: dict[str, int | None] = field(default_factory=dict)  # key -> offset of its winning entry, None: remove
    base: dict[str, str] = field(default_factory=dict)  # key -> the key of the existing row it updates ("": none)
    columns: dict[str, None] = field(default_factory=dict)  # field names of upserts, first seen first

    @property
    def winners(self) -> frozenset[int]:
        return frozenset(offset for offset in self.final.values() if offset is not None)

    def updates(self) -> dict[str, str]:
        """Existing row key -> the staged key whose row replaces it (a renamed contact keeps its row)."""
        return {old: new for new, old in self.base.items() if old and self.final.get(new) is not None}

    def upsert(self, key: str, prev: str | None, offset: int) -> None:
        if prev and prev != key:
            self.final[prev] = None
            self.base[key] = self.base.pop(prev, prev)
        else:
            self.base.setdefault(key, key)
        self.final.pop(key, None)  # re-insert: the order of winners is the order of their entries
        self.final[key] = offset

    def erase(self, key: str) -> None:
        self.final[key] = None
        self.base[key] = ""  # a later create starts afresh: nothing of the erased row comes back


class Staging:
    """Append-only, fsynced per batch; a leftover from a crashed run is merged by the next finish."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def exists(self) -> bool:
        return self.path.exists()

    def append(self, entries: list[tuple[str, str, str | None, Mapping[str, Any]]]) -> None:
        """Write ``(op, key, previous_key, fields)`` entries durably before anyone is told ok."""
        lines = [dumps_line([op, key, prev]) + "\t" + dumps_line(fields) + "\n" for op, key, prev, fields in entries]
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

    def plan(self, *, with_columns: bool) -> MergePlan:
        """One pass over the heads: later entries win; a rename removes the old key; erase removes."""
        plan = MergePlan()
        for offset, head, body in self._entries():
            op, key, prev = head
            if op == ERASE:
                plan.erase(key)
                continue
            plan.upsert(key, prev, offset)
            if with_columns:
                plan.columns.update(dict.fromkeys(json.loads(body)))
        return plan

    def winning_bodies(self, plan: MergePlan) -> Iterator[tuple[str, str]]:
        """``(key, fields JSON)`` of each winning entry, in staging order."""
        winners = plan.winners
        for offset, head, body in self._entries():
            if offset in winners:
                yield head[1], body

    def _entries(self) -> Iterator[tuple[int, list[Any], str]]:
        offset = 0
        with self.path.open("rb") as handle:
            for raw in handle:
                start, offset = offset, offset + len(raw)
                if not raw.endswith(b"\n"):
                    return  # a torn last line: its batch was never acknowledged
                head, _, body = raw.decode("utf-8", "surrogateescape").partition("\t")
                yield start, json.loads(head), body

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
