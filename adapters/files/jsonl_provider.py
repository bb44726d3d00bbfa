"""The ``jsonl`` provider: one JSON object a line, keyed by canonical names (``email`` required)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Final

from adapters.files._common import NO_EMAIL, NOT_UTF8, FileAdapter, KeepRows, Row, email_key
from adapters.files.staging import MergePlan

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
                data = json.loads(text)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                yield Row(start, offset, line, None, problem=_not_object(start))
                continue
            key = email_key(data.get("email"))
            if key is None:
                yield Row(start, offset, line, None, problem=NO_EMAIL)
                continue
            yield Row(start, offset, line, data, key)

    def write_merged(self, out: IO[bytes], plan: MergePlan, keep: KeepRows) -> None:
        if self.path.exists():
            with self.path.open("rb") as handle:
                _copy_kept_lines(out, handle, keep)
        for _, body in self.staging.winning_bodies(plan):
            out.write(body.encode("utf-8", "surrogateescape"))  # the staged JSON ends with its "\n"


def _copy_kept_lines(out: IO[bytes], handle: IO[bytes], keep: KeepRows) -> None:
    for line, raw in enumerate(handle, start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        key = email_key(data.get("email")) if isinstance(data, dict) else None
        if keep(key, line):
            out.write(raw if raw.endswith(b"\n") else raw + b"\n")
