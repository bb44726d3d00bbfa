"""The ``csv`` provider: a header row naming canonical columns (``email`` required), one contact a row."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from typing import IO, Any, Final

from adapters.files._common import NO_EMAIL, NOT_UTF8, FileAdapter, KeepRows, Row, email_key
from adapters.files.staging import MergePlan

# Notes and long custom fields exceed the csv module's 128 KiB default field limit.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

EMAIL_COLUMN: Final = "email"
_BOM: Final = "\ufeff"


class _Lines:
    """Binary lines decoded for ``csv.reader``, counting bytes and lines and flagging bad UTF-8.

    ``csv.reader`` pulls one line at a time and never reads ahead, so after each record ``offset``
    is exactly where the next record starts: a byte position a crashed read can resume from.
    """

    __slots__ = ("bad", "handle", "line", "offset")

    def __init__(self, handle: IO[bytes], *, offset: int, line: int) -> None:
        handle.seek(offset)
        self.handle = handle
        self.offset = offset
        self.line = line
        self.bad = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = self.handle.readline()
        if not raw:
            raise StopIteration
        self.offset += len(raw)
        self.line += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.bad = True
            text = raw.decode("utf-8", "surrogateescape")  # kept byte for byte when merged back
        return text.removeprefix(_BOM) if self.line == 1 else text


class _Records:
    """``(first line, cells, bad UTF-8)`` per CSV record, with the position after it."""

    def __init__(self, handle: IO[bytes], *, offset: int = 0, line: int = 0) -> None:
        self.lines = _Lines(handle, offset=offset, line=line)
        self._reader = csv.reader(self.lines, strict=False)

    def __iter__(self) -> Iterator[tuple[int, list[str], bool]]:
        lines = self.lines
        start = lines.line + 1
        for cells in self._reader:
            bad, lines.bad = lines.bad, False
            yield start, cells, bad
            start = lines.line + 1


def _blank(cells: list[str]) -> bool:
    return not any(cell.strip() for cell in cells)


class CsvAdapter(FileAdapter):
    """Reads and writes one CSV file; ``data`` of a record is column -> text."""

    kind = "csv"

    def header(self, handle: IO[bytes]) -> tuple[list[str], int, int]:
        """The header's column names and the position after it; an empty file has none."""
        records = _Records(handle)
        for _, cells, _ in records:
            if not _blank(cells):
                return [cell.strip() for cell in cells], records.lines.offset, records.lines.line
        return [], records.lines.offset, records.lines.line

    def email_index(self, header: list[str]) -> int:
        for index, column in enumerate(header):
            if column.lower() == EMAIL_COLUMN:
                return index
        raise self.fatal(f"{self.path.name} has no 'email' column in its header")

    def check_format(self, handle: IO[bytes]) -> None:
        header, _, _ = self.header(handle)
        if header:
            self.email_index(header)

    def scan(self, handle: IO[bytes], *, offset: int, line: int) -> Iterator[Row]:
        header, body_offset, body_line = self.header(handle)
        if not header:
            return
        email_at = self.email_index(header)
        width = len(header)
        if offset < body_offset:
            offset, line = body_offset, body_line
        records = _Records(handle, offset=offset, line=line)
        lines = records.lines
        for start, cells, bad in records:
            if _blank(cells):
                continue
            if bad:
                yield Row(start, lines.offset, lines.line, None, problem=NOT_UTF8)
                continue
            if len(cells) < width:
                cells.extend([""] * (width - len(cells)))
            key = email_key(cells[email_at])
            if key is None:
                yield Row(start, lines.offset, lines.line, None, problem=NO_EMAIL)
                continue
            yield Row(start, lines.offset, lines.line, dict(zip(header, cells, strict=False)), key)

    def write_merged(self, out: IO[bytes], plan: MergePlan, keep: KeepRows) -> None:
        text = io.TextIOWrapper(out, encoding="utf-8", errors="surrogateescape", newline="", write_through=True)
        writer = csv.writer(text)
        if self.path.exists():
            with self.path.open("rb") as handle:
                header, offset, line = self.header(handle)
                email_at = self.email_index(header) if header else 0
                header = header or [EMAIL_COLUMN]
                index = _column_index(header, plan)
                writer.writerow(header)
                _copy_kept_rows(writer, _Records(handle, offset=offset, line=line), keep, email_at, len(header))
        else:
            header = [EMAIL_COLUMN]
            index = _column_index(header, plan)
            writer.writerow(header)
        for _, body in _staged(self.staging.winning_bodies(plan)):
            row = [""] * len(header)
            for column, value in body.items():
                row[index[column.strip().lower()]] = _cell(value)
            writer.writerow(row)
        text.flush()
        text.detach()


def _copy_kept_rows(writer: Any, records: _Records, keep: KeepRows, email_at: int, width: int) -> None:
    for start, cells, bad in records:
        if _blank(cells):
            continue
        key = None if bad or email_at >= len(cells) else email_key(cells[email_at])
        if not keep(key, start):
            continue
        if len(cells) < width:
            cells.extend([""] * (width - len(cells)))
        writer.writerow(cells)


def _column_index(header: list[str], plan: MergePlan) -> dict[str, int]:
    """Extend ``header`` in place with the staged columns it lacks (matched without case)."""
    index: dict[str, int] = {}
    for position, column in enumerate(header):
        index.setdefault(column.lower(), position)
    for column in plan.columns:
        name = column.strip()
        if name.lower() not in index:
            index[name.lower()] = len(header)
            header.append(name)
    return index


def _staged(bodies: Iterator[tuple[str, str]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key, body in bodies:
        yield key, json.loads(body)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, set | frozenset | list | tuple):
        return ";".join(sorted(str(item) for item in value))  # SPEC: tags are ";"-separated in CSV
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
