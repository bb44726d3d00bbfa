"""The ``jsonl`` provider: one JSON object a line, keyed by canonical names (``email`` required)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import IO, Any, Final

from adapters.files._common import NO_EMAIL, NOT_UTF8, FileAdapter, KeepRows, Row, email_key, file_id
from adapters.files.repeats import laid_over
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
            if self.path.exists():
                handle = stack.enter_context(self.path.open("rb"))
                body_at = stack.enter_context(self.staging.bodies())
                for verdict, raw, data in _existing_lines(handle, keep):
                    if isinstance(verdict, str):
                        body = body_at(plan.staged_offset(verdict))
                        out.write(body if data is None else _laid_over(data, body))
                    else:
                        out.write(raw if raw.endswith(b"\n") else raw + b"\n")  # unreadable ones as they were
            for _, body in self.staging.new_bodies(plan):
                out.write(body)


def _laid_over(base: dict[str, Any], body: bytes) -> bytes:
    """The staged fields over the old line's: keys the mapping does not write (an ``id``) survive."""
    fields = json.loads(body)
    if base.keys() <= fields.keys():
        return body  # the staged line says it all, as it is (it ends with its "\n")
    base.update(fields)
    return (dumps_line(base) + "\n").encode("utf-8", "surrogateescape")


def _existing_lines(handle: IO[bytes], keep: KeepRows) -> Iterator[tuple[bool | str, bytes, dict[str, Any] | None]]:
    """The existing lines that stay, with ``keep``'s verdict (True to copy, or the staged key laid over it); the
    last line of a repeated contact is laid over what its earlier lines said, so its blanks keep their values.
    """
    offset = 0
    for line, raw in enumerate(handle, start=1):
        start, offset = offset, offset + len(raw)
        if not raw.strip():
            continue
        try:
            data = loads_line((raw.removeprefix(_BOM) if line == 1 else raw).decode("utf-8"))
        except ValueError:  # UnicodeDecodeError is one: an unreadable line is kept as it is
            data = None
        if not isinstance(data, dict):
            data = None
        key = None if data is None else email_key(data.get("email"))
        verdict = keep(key, line, start)
        if verdict is False:
            continue
        earlier = keep.earlier(key)
        if data is not None and earlier is not None:
            data = dict(laid_over(earlier, data))
            yield verdict, (dumps_line(data) + "\n").encode("utf-8", "surrogateescape"), data
        else:
            yield verdict, raw, data
