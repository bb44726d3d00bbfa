"""The ``jsonl`` provider: one JSON object a line, keyed by canonical names (``email`` required)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import IO, Any, Final

from adapters.files._common import NO_EMAIL, NOT_UTF8, FileAdapter, KeepRows, Row, email_key, file_id
from adapters.files.staging import MergePlan, dumps_line, loads_line

_BOM: Final = b"\xef\xbb\xbf"


def _not_object(line: int) -> str:
    return f"line {line} is not a JSON object"


class JsonlAdapter(FileAdapter):
    """Reads and writes one JSON Lines file; ``data`` of a record is the line's JSON object."""

    kind = "jsonl"

    def scan(self, handle: IO[bytes], *, offset: int, line: int) -> Iterator[Row]:
        handle.seek(offset)
        for raw in handle:
            start, offset, line = line + 1, offset + len(raw), line + 1
            body = raw.removeprefix(_BOM) if line == 1 else raw
            if not body.strip():
                continue
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                yield Row(start, offset, line, None, problem=NOT_UTF8)
                continue
            try:
                data = loads_line(text)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                yield Row(start, offset, line, None, problem=_not_object(start))
                continue
            key = email_key(data.get("email"))
            if key is None:
                yield Row(start, offset, line, None, problem=NO_EMAIL)
                continue
            yield Row(start, offset, line, data, key, None, file_id(data.get("id")))

    def write_merged(self, out: IO[bytes], plan: MergePlan, keep: KeepRows) -> None:
        with contextlib.ExitStack() as stack:
            handle = stack.enter_context(self.path.open("rb")) if self.path.exists() else None
            if handle is not None:
                _copy_kept_lines(out, handle, keep)
            for key, body in self.staging.winning_bodies(plan):
                old = keep.old_row(key)
                base = _object_at(handle, old) if old is not None and handle is not None else None
                out.write(body if base is None else _laid_over(base, body))


def _laid_over(base: dict[str, Any], body: bytes) -> bytes:
    """The staged fields over the old line's: keys the mapping does not write (an ``id``) survive."""
    fields = json.loads(body)
    if base.keys() <= fields.keys():
        return body  # the staged line says it all, as it is (it ends with its "\n")
    base.update(fields)
    return (dumps_line(base) + "\n").encode("utf-8", "surrogateescape")


def _object_at(handle: IO[bytes], offset: int) -> dict[str, Any] | None:
    handle.seek(offset)
    data = json.loads(handle.readline())
    return data if isinstance(data, dict) else None


def _copy_kept_lines(out: IO[bytes], handle: IO[bytes], keep: KeepRows) -> None:
    offset = 0
    for line, raw in enumerate(handle, start=1):
        start, offset = offset, offset + len(raw)
        if not raw.strip():
            continue
        try:
            data = loads_line((raw.removeprefix(_BOM) if line == 1 else raw).decode("utf-8"))
        except ValueError:  # UnicodeDecodeError is one: an unreadable line is kept as it is
            data = None
        key = email_key(data.get("email")) if isinstance(data, dict) else None
        if keep(key, line, start):
            out.write(raw if raw.endswith(b"\n") else raw + b"\n")  # unreadable lines are kept as they were
