"""The ``csv`` provider: a header row naming canonical columns (``email`` required), one contact a row.

The delimiter is the first of ``DELIMITERS`` that gives the header an ``email`` column, so a comma file reads as
it always has and a European Excel export (``;``) or a tab-separated one reads too. A merge keeps the existing
file's delimiter; a new file gets commas.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from collections.abc import Iterator, Mapping
from typing import IO, Any, Final, NamedTuple

from adapters.files._common import NO_EMAIL, NOT_UTF8, FileAdapter, KeepRows, Row, email_key, file_id
from adapters.files.staging import MergePlan

# Notes and long custom fields exceed the csv module's 128 KiB default field limit.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

EMAIL_COLUMN: Final = "email"
ID_COLUMN: Final = "id"  # a CRM export's own id: the remote id when present
_BOM: Final = "\ufeff"
DELIMITERS: Final = (",", ";", "\t", "|")  # tried in this order on the header; comma first


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
    """``(first line, start offset, cells, bad UTF-8)`` per CSV record; ``lines`` has the position after it."""

    def __init__(self, handle: IO[bytes], *, delimiter: str, offset: int = 0, line: int = 0) -> None:
        self.lines = _Lines(handle, offset=offset, line=line)
        self._reader = csv.reader(self.lines, strict=False, delimiter=delimiter)

    def __iter__(self) -> Iterator[tuple[int, int, list[str], bool]]:
        lines = self.lines
        start, offset = lines.line + 1, lines.offset
        for cells in self._reader:
            bad, lines.bad = lines.bad, False
            yield start, offset, cells, bad
            start, offset = lines.line + 1, lines.offset


UNCLOSED_QUOTE: Final = "an unclosed quote: the line is skipped, the lines after it are read as rows"


class _Restart(NamedTuple):
    """Read again from here (after a line whose stray quote swallowed the lines below it)."""

    offset: int
    line: int


def _line_end(handle: IO[bytes], offset: int) -> int:
    """The offset after the physical line that starts at ``offset``; the handle's position is kept."""
    position = handle.tell()
    handle.seek(offset)
    end = offset + len(handle.readline())
    handle.seek(position)
    return end


def _swallowed_rows(handle: IO[bytes], start: int, end: int, email_at: int, delimiter: str) -> bool:
    """Whether a record spanning several lines swallowed lines that are rows of their own (an address
    where the email column is), rather than holding a multi-line note.
    """
    position = handle.tell()
    handle.seek(start)
    chunk = handle.read(end - start)
    handle.seek(position)
    for raw in chunk.splitlines()[1:]:
        cells = next(csv.reader([raw.decode("utf-8", "replace")], delimiter=delimiter), [])
        if len(cells) > email_at and email_key(cells[email_at]) and "@" in cells[email_at]:
            return True
    return False


def _blank(cells: list[str]) -> bool:
    return not any(cell.strip() for cell in cells)


class _Column(str):
    """A column name folded for matching (its value, equality and hash: "first name") that prints as the
    header wrote it (``str()``: "First Name"), so a note naming the columns nothing reads shows the file's own.
    """

    written: str

    def __new__(cls, folded: str, written: str) -> _Column:
        name = super().__new__(cls, folded)
        name.written = written
        return name

    def __str__(self) -> str:
        return self.written


def _data_names(header: list[str]) -> list[str]:
    """The names a row's cells are read under: canonical columns match without case ("Email", "First_Name"),
    as the writer matches them, so a header the writer would fill is also one the reader understands. A
    ``custom.<name>`` keeps its name's case; a second column folding onto a taken name keeps its own.
    """
    names: list[str] = []
    for column in header:
        prefix, dot, rest = column.partition(".")
        if dot and prefix.lower() == "custom":
            folded = f"custom.{rest}"
        else:
            folded = column.lower()
            folded = folded if folded == column else _Column(folded, column)
        names.append(column if folded in names else folded)
    return names


def _index(header: list[str], name: str) -> int | None:
    return next((i for i, column in enumerate(header) if column.lower() == name), None)


class Header(NamedTuple):
    """A file's header: its column names, the position after it, and the delimiter that splits its rows."""

    columns: list[str]
    offset: int
    line: int
    delimiter: str = ","


def _read_header(handle: IO[bytes], delimiter: str) -> Header:
    records = _Records(handle, delimiter=delimiter)
    for _, _, cells, _ in records:
        if not _blank(cells):
            return Header([cell.strip() for cell in cells], records.lines.offset, records.lines.line, delimiter)
    return Header([], records.lines.offset, records.lines.line, delimiter)


class CsvAdapter(FileAdapter):
    """Reads and writes one CSV file; ``data`` of a record is column -> text."""

    kind = "csv"

    def header(self, handle: IO[bytes]) -> Header:
        """The first non-blank record split by the first delimiter that gives it an ``email`` column (an
        empty file has no columns; with no such delimiter, the comma reading, which ``email_index`` refuses).
        """
        first = _read_header(handle, DELIMITERS[0])
        if not first.columns or _index(first.columns, EMAIL_COLUMN) is not None:
            return first
        for delimiter in DELIMITERS[1:]:
            found = _read_header(handle, delimiter)
            if _index(found.columns, EMAIL_COLUMN) is not None:
                return found
        return first

    def email_index(self, header: list[str]) -> int:
        index = _index(header, EMAIL_COLUMN)
        if index is None:
            raise self.fatal(f"{self.path.name} has no 'email' column in its header (split by , ; tab or |)")
        return index

    def check_format(self, handle: IO[bytes]) -> None:
        header = self.header(handle).columns
        if header:
            self.email_index(header)

    def scan(self, handle: IO[bytes], *, offset: int, line: int) -> Iterator[Row]:
        header, body_offset, body_line, delimiter = self.header(handle)
        if not header:
            return
        email_at, id_at, width = self.email_index(header), _index(header, ID_COLUMN), len(header)
        if offset < body_offset:
            offset, line = body_offset, body_line
        records: _Records | None = _Records(handle, delimiter=delimiter, offset=offset, line=line)
        while records is not None:
            current, records = records, None
            for row in self._rows(handle, current, header, email_at=email_at, id_at=id_at, width=width,
                                  delimiter=delimiter):
                if isinstance(row, _Restart):
                    records = _Records(handle, delimiter=delimiter, offset=row.offset, line=row.line)
                    break
                yield row

    def _rows(
        self, handle: IO[bytes], records: _Records, header: list[str], *, email_at: int, id_at: int | None,
        width: int, delimiter: str,
    ) -> Iterator[Row | _Restart]:
        lines, names = records.lines, _data_names(header)
        for start, start_offset, cells, bad in records:
            if _blank(cells):
                continue
            if lines.line > start and _swallowed_rows(handle, start_offset, lines.offset, email_at, delimiter):
                # A stray quote opened a field that ran over the rows below it: only its own line is
                # refused, and reading starts again at the next line, so those rows are not lost.
                next_offset = _line_end(handle, start_offset)
                yield Row(start, next_offset, start, None, problem=UNCLOSED_QUOTE)
                yield _Restart(next_offset, start)
                return
            if bad:
                yield Row(start, lines.offset, lines.line, None, problem=NOT_UTF8)
                continue
            if len(cells) < width:
                cells.extend([""] * (width - len(cells)))
            key = email_key(cells[email_at])
            if key is None:
                yield Row(start, lines.offset, lines.line, None, problem=NO_EMAIL)
                continue
            own_id = None if id_at is None else file_id(cells[id_at])
            yield Row(start, lines.offset, lines.line, dict(zip(names, cells, strict=False)), key, None, own_id)

    def write_merged(self, out: IO[bytes], plan: MergePlan, keep: KeepRows) -> None:
        text = io.TextIOWrapper(out, encoding="utf-8", errors="surrogateescape", newline="", write_through=True)
        with contextlib.ExitStack() as stack:
            handle = stack.enter_context(self.path.open("rb")) if self.path.exists() else None
            header, offset, line, delimiter = self.header(handle) if handle is not None else Header([], 0, 0)
            email_at = self.email_index(header) if header else 0
            names = _data_names(header)  # as a read names the cells, before the staged columns join
            header = header or [EMAIL_COLUMN]
            fill = _Fill(header, plan)
            writer = csv.writer(text, delimiter=delimiter)  # the existing file's; a new file's is a comma
            writer.writerow(header)
            if handle is not None:
                body_at = stack.enter_context(self.staging.bodies())
                existing = _Records(handle, delimiter=delimiter, offset=offset, line=line)
                for verdict, cells, earlier in _existing_rows(existing, keep, email_at):
                    if earlier is not None:  # the last row of a repeated contact: its blanks keep earlier values
                        _fill_blanks(cells, names, earlier)
                    if isinstance(verdict, str):
                        fill(cells, body_at(plan.staged_offset(verdict)))
                    writer.writerow(fill.pad(cells))
            for _, body in self.staging.new_bodies(plan):
                writer.writerow(fill([], body))
        text.flush()
        text.detach()


class _Fill:
    """Lays staged fields over a row's cells, in the header's columns (extended with the staged ones)."""

    __slots__ = ("_at", "_index", "_width")

    def __init__(self, header: list[str], plan: MergePlan) -> None:
        self._index = _column_index(header, plan)
        self._width = len(header)
        self._at: dict[str, int] = {}  # a staged name as written -> its column

    def pad(self, cells: list[str]) -> list[str]:
        if len(cells) < self._width:
            cells.extend([""] * (self._width - len(cells)))
        return cells

    def __call__(self, cells: list[str], body: bytes) -> list[str]:
        self.pad(cells)
        for column, value in json.loads(body).items():
            position = self._at.get(column)
            if position is None:
                position = self._at[column] = self._index[column.strip().lower()]
            cells[position] = _cell(value)
        return cells


def _existing_rows(
    records: _Records, keep: KeepRows, email_at: int
) -> Iterator[tuple[bool | str, list[str], Mapping[str, Any] | None]]:
    """The existing rows that stay, with ``keep``'s verdict (True to copy, or the staged key laid over it) and,
    for the row kept of a repeated contact, what its earlier rows said.
    """
    for start, offset, cells, bad in records:
        if _blank(cells):
            continue
        key = None if bad or email_at >= len(cells) else email_key(cells[email_at])
        verdict = keep(key, start, offset)
        if verdict is not False:
            yield verdict, cells, keep.earlier(key)


def _fill_blanks(cells: list[str], names: list[str], earlier: Mapping[str, Any]) -> None:
    for position, name in enumerate(names):
        value = earlier.get(name)
        if isinstance(value, str) and value.strip() and (position >= len(cells) or not cells[position].strip()):
            if position >= len(cells):
                cells.extend([""] * (position + 1 - len(cells)))
            cells[position] = value


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


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return ";".join(sorted(str(item) for item in value))  # SPEC: tags are ";"-separated in CSV
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
