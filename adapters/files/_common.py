"""What the CSV and JSONL providers share: fingerprints, paging by byte offset, staging and atomic merge.

A file is read whole whenever its content changed (the cursor keeps its sha256 and size) and not at all
otherwise; the engine drops rows equal to what it already has. Writes go to a durable staging file and
become visible at once in ``finish_writes()``: a merged temp file, fsynced, then ``os.replace``. A person on
several rows of one file is read as those rows laid over one another, blanks never over values (``repeats``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, ClassVar, Final, NamedTuple

from adapters.base import Cursor, CursorError, Page, ProviderRecord, RejectedRecord, WriteRequest, WriteResult
from adapters.errors import FatalProviderError
from adapters.files.repeats import Repeats, laid_over
from adapters.files.staging import ERASE, UPSERT, MergePlan, Staging, fsync_dir

DEFAULT_PAGE_SIZE: Final = 1000
_HASH_CHUNK: Final = 1024 * 1024
NOT_UTF8: Final = "not valid UTF-8"
NO_EMAIL: Final = "no email column/value"


_ABSENT: Final = "absent"  # a file read as not there at all


class Fingerprint(NamedTuple):
    sha256: str
    size: int

    def extra(self) -> dict[str, str]:
        return {"sha256": self.sha256, "size": str(self.size)}

    def matches(self, extra: Mapping[str, str]) -> bool:
        return extra.get("sha256") == self.sha256 and extra.get("size") == str(self.size)


class Row(NamedTuple):
    """One row as scanned: where it starts, where the next one starts, and its data or its problem."""

    line: int  # first line of the row, 1-based
    end: int  # byte offset just after it
    end_line: int  # lines read through it
    data: dict[str, Any] | None  # None: rejected (see problem)
    key: str | None = None  # the email strip().lower()
    problem: str | None = None
    file_id: str | None = None  # the row's own "id" column, when the file has one

    @property
    def remote_id(self) -> str | None:
        return self.file_id or self.key


def fingerprint(handle: IO[bytes]) -> Fingerprint:
    digest = hashlib.sha256()
    size = 0
    handle.seek(0)
    while chunk := handle.read(_HASH_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    handle.seek(0)
    return Fingerprint(digest.hexdigest(), size)


def email_key(value: object) -> str | None:
    """Identity for files: the row's email, trimmed and lower-cased; None when blank."""
    if not isinstance(value, str):
        return None
    return value.strip().lower() or None


def file_id(value: object) -> str | None:
    """A row's own ``id`` (a CRM export's id column): the remote id, so an email change keeps the person."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).strip() or None


class DuplicateRows(Exception):
    """The existing file holds a key twice; the merge starts again knowing each key's last row."""


class LastRows(NamedTuple):
    """Each key's last row (its first line), and what the earlier rows of a repeated key said, laid over one
    another: the kept row's blank cells take it, as a read does (``repeats``), so collapsing loses nothing.
    """

    lines: Mapping[str, int]
    earlier: Mapping[str, Mapping[str, Any]]


class KeepRows:
    """What a merge does with each existing row: copy it, drop it, or write a staged winner in its place.

    Copied: rows without a readable email (never lose input) and rows whose key was not restaged
    (the last of a repeated key). A restaged row is replaced where it stands, the staged fields laid
    over it (columns the mapping does not write, an ``id`` or notes, survive); a renamed contact takes
    the row of its oldest address that has one (``MergePlan.rows_of``). Erased rows go. Winners with no
    row follow, in staging order.

    A key met twice, or a renamed contact's better row met after it took another, makes the merge start
    again (DuplicateRows) knowing each key's last row: the place that wins is then known. That row's blank
    cells take what the key's earlier rows said (``earlier``), as a read of the file would.
    """

    __slots__ = ("_best", "_earlier", "_last", "_owner", "_plan", "_rank", "_seen")

    def __init__(self, plan: MergePlan, last: LastRows | None) -> None:
        self._plan = plan
        self._last = None if last is None else last.lines
        self._earlier = {} if last is None else last.earlier
        self._seen: set[str] = set()
        # Each address a renamed winner may take a row of -> (the winner, its preference: lower first).
        self._owner: dict[str, tuple[str, int]] = {}
        for key, earlier in plan.moved.items():
            if earlier and plan.is_winner(key):
                self._owner.update((address, (key, rank)) for rank, address in enumerate(plan.rows_of(key)))
        self._rank: dict[str, int] = {}  # a renamed winner -> the preference of the row it took
        self._best: dict[str, str | None] = {}  # with ``last``: a renamed winner -> the address it takes
        if last is not None:
            plan.unplace_all()  # the merge starts again: what the first attempt placed is placed anew

    def __call__(self, key: str | None, line: int, offset: int) -> bool | str:
        """True: copy the row as it is; False: drop it; a key: write that staged winner here instead."""
        if key is None:
            return True
        owner = self._owner.get(key)
        if owner is not None:
            return self._place_renamed(owner[0], owner[1], key, line)
        staged = self._plan.final.get(key)
        if staged is None:
            return self._unstaged(key, line)
        if staged < 0 or key in self._plan.gone:
            return False  # erased or renamed away (and maybe staged afresh since: a new row)
        return self._place(key, line)

    def earlier(self, key: str | None) -> Mapping[str, Any] | None:
        """What the earlier rows of a repeated key said (the row kept is its last): for its blank cells."""
        return None if key is None else self._earlier.get(key)

    def _unstaged(self, key: str, line: int) -> bool:
        if self._last is not None:
            return self._last.get(key) == line
        if key in self._seen:
            raise DuplicateRows
        self._seen.add(key)
        return True

    def _place(self, key: str, line: int) -> bool | str:
        if self._last is not None:
            if self._last.get(key) != line:
                return False
        elif self._plan.is_placed(key):
            raise DuplicateRows
        self._plan.place(key)
        return key

    def _place_renamed(self, winner: str, rank: int, key: str, line: int) -> bool | str:
        if self._last is not None:
            if winner not in self._best:
                self._best[winner] = next((a for a in self._plan.rows_of(winner) if a in self._last), None)
            if self._best[winner] != key or self._last[key] != line:
                return False
        else:
            taken = self._rank.get(winner)
            if taken is not None and taken < rank:
                return False  # a row of an older address came first and took it
            if taken is not None:
                raise DuplicateRows  # the same address twice, or an older address's row after a newer one
            self._rank[winner] = rank
        self._plan.place(winner)
        return winner


class FileAdapter:
    """A file as a provider; subclasses say how rows are scanned and how a merged file is written."""

    lookback: ClassVar[dt.timedelta] = dt.timedelta(0)
    max_batch: ClassVar[int] = 1000
    kind: ClassVar[str] = "file"
    writes_locally: ClassVar[bool] = True  # adapters.base.WritesLocally: no batch is written ahead

    def __init__(self, *, name: str, path: Path | str, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        self.name = name
        self.path = Path(path)
        self.page_size = page_size
        self.staging = Staging(self.path.with_name(f".{self.path.name}.crmsync-staging.jsonl"))
        # What this process last read whole (None: nothing yet; _ABSENT: there was no file), and the file
        # it then wrote on top of exactly that: a cursor past crmsync's own rows (``cursor_after_writes``).
        self._read_whole: Fingerprint | str | None = None
        self._written: Fingerprint | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {str(self.path)!r})"

    # -- format specifics ---------------------------------------------------------------------
    def scan(self, handle: IO[bytes], *, offset: int, line: int) -> Iterator[Row]:
        """Rows from ``offset`` (the start of a row at ``line`` lines in), blank rows skipped."""
        raise NotImplementedError

    def write_merged(self, out: IO[bytes], plan: MergePlan, keep: KeepRows) -> None:
        """Existing rows in order, each as ``keep`` says (copied, dropped, or a staged winner laid over it),
        then the winners that had no row, in staging order (``self.staging.new_bodies``).
        """
        raise NotImplementedError

    def check_format(self, handle: IO[bytes]) -> None:
        """Raise FatalProviderError when an existing file cannot be this provider's file."""

    # -- ProviderAdapter ----------------------------------------------------------------------
    def fatal(self, message: str) -> FatalProviderError:
        return FatalProviderError(f"{self.name}: {message}", provider=self.name, path=str(self.path))

    def check(self) -> None:
        if not self.path.parent.is_dir():
            raise self.fatal(f"the directory of {self.path} does not exist")
        if self.path.exists():
            with self.path.open("rb") as handle:
                self.check_format(handle)

    def read_contacts(self, cursor: Cursor) -> Iterator[Page]:
        self._read_whole = None
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            self._read_whole = _ABSENT
            return  # a target that does not exist yet: nothing to read
        with handle:
            info = os.fstat(handle.fileno())
            current = fingerprint(handle)
            if current.matches(cursor.extra) and cursor.page_token is None:
                self._read_whole = current
                return  # unchanged since the last full read: an idle cycle reads nothing else
            offset, line = 0, 0
            if cursor.page_token is not None and current.matches(cursor.extra):
                offset, line = _parse_token(cursor.page_token)  # resume mid-file, same content
            updated_at = dt.datetime.fromtimestamp(info.st_mtime, dt.UTC)
            yield from self._pages(handle, current, offset=offset, line=line, updated_at=updated_at)

    def _pages(
        self, handle: IO[bytes], current: Fingerprint, *, offset: int, line: int, updated_at: dt.datetime
    ) -> Iterator[Page]:
        records: dict[str, ProviderRecord] = {}
        own: dict[str, ProviderRecord] = {}  # a record laid over earlier rows -> its row as read
        rejected: list[RejectedRecord] = []
        superseded: list[ProviderRecord] = []
        repeats = Repeats(handle, lambda: self.scan(handle, offset=0, line=0), resumed=offset > 0)
        page_start = offset
        for row in self.scan(handle, offset=offset, line=line):
            remote_id = row.remote_id
            where = f"{self.path.name}:{row.line}"
            if row.data is None or remote_id is None:
                rejected.append(RejectedRecord(where=where, message=row.problem or NO_EMAIL))
            else:
                record = ProviderRecord(remote_id=remote_id, data=row.data, updated_at=updated_at, where=where)
                earlier = records.pop(remote_id, None)  # the same person again: this row's values win
                if earlier is not None:
                    superseded.append(own.pop(remote_id, earlier))  # read only to report its own errors
                data = repeats.fill(remote_id, None if earlier is None else earlier.data, row.data, page_start)
                if data is not row.data:  # its blanks keep the earlier rows' values
                    own[remote_id] = record
                    record = replace(record, data=data)
                records[remote_id] = record
            if len(records) + len(rejected) < self.page_size:
                continue
            if row.end >= current.size:
                break  # the last row: the page below is final
            if os.fstat(handle.fileno()).st_size != current.size:
                return  # rewritten in place while read: the stored token makes the next read restart
            token = f"{row.end}:{row.end_line}"
            next_cursor = Cursor(phase="backfill", page_token=token, extra=current.extra())
            yield Page(records=list(records.values()), next_cursor=next_cursor, rejected=rejected,
                       superseded=superseded)
            repeats.handed_over(records)
            records, own, rejected, superseded, page_start = {}, {}, [], [], row.end
        final = Cursor(phase="incremental", extra=current.extra())
        self._read_whole = current  # read to the end: everything in this file has been handed over
        yield Page(records=list(records.values()), next_cursor=final, rejected=rejected, superseded=superseded)

    def write_contacts(self, requests: Sequence[WriteRequest]) -> list[WriteResult]:
        entries: list[tuple[str, str, str | None, Mapping[str, Any]]] = []
        results: list[WriteResult] = []
        for request in requests:
            key = email_key(request.email)
            if key is None:
                results.append(WriteResult(ref=request.ref, ok=False, error="no email"))
                continue
            fields = dict(request.fields)
            if email_key(fields.get("email")) is None:
                fields = {"email": request.email.strip(), **fields}
            entries.append((UPSERT, key, email_key(request.previous_email), fields))
            results.append(WriteResult(ref=request.ref, ok=True, remote_id=_written_id(request, key)))
        if entries:
            self.staging.append(entries)
        return results

    def erase_contact(self, *, remote_id: str | None, email: str) -> None:
        keys = {key for key in (email_key(remote_id), email_key(email)) if key}
        self.staging.append([(ERASE, key, None, {}) for key in sorted(keys)])

    def finish_writes(self) -> None:
        self.staging.close()
        self._remove_stale_temps()
        if not self.staging.exists():
            return
        untouched = self._unchanged_since_read()
        plan = self.staging.plan()
        try:
            self._merge(plan, last=None)
        except DuplicateRows:  # rare: a hand-made file holding one contact twice; keep its last row
            self._merge(plan, last=self.last_rows())
        self.staging.remove()  # after the replace: a crash in between merges the same entries again
        self._read_whole = None
        if untouched:  # the new file is what was read plus crmsync's own rows: known whole, as if read
            with self.path.open("rb") as handle:
                self._written = self._read_whole = fingerprint(handle)

    def cursor_after_writes(self) -> Cursor | None:
        written, self._written = self._written, None
        return None if written is None else Cursor(phase="incremental", extra=written.extra())

    def _unchanged_since_read(self) -> bool:
        """Whether the file is still what this process last read whole (or still absent)."""
        if self._read_whole is None:
            return False
        if self._read_whole == _ABSENT:
            return not self.path.exists()
        try:
            with self.path.open("rb") as handle:
                return fingerprint(handle) == self._read_whole
        except FileNotFoundError:
            return False

    def _merge(self, plan: MergePlan, *, last: LastRows | None) -> None:
        existing = self.path.stat() if self.path.exists() else None
        temp = self.path.with_name(f".{self.path.name}.crmsync-tmp-{os.getpid()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb", buffering=1024 * 1024) as out:
                self.write_merged(out, plan, KeepRows(plan, last))
                out.flush()
                if existing is not None:
                    os.fchmod(out.fileno(), stat.S_IMODE(existing.st_mode))
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        fsync_dir(self.path.parent)

    def last_rows(self) -> LastRows:
        """Each key's last row (its first line), the row a merge keeps when a file repeats a contact, and the
        earlier rows of the repeated keys laid over one another.
        """
        with self.path.open("rb") as handle:
            lines: dict[str, int] = {}
            repeated: set[str] = set()
            for row in self.scan(handle, offset=0, line=0):
                if row.key is not None and row.data is not None:
                    if row.key in lines:
                        repeated.add(row.key)
                    lines[row.key] = row.line
            earlier: dict[str, Mapping[str, Any]] = {}
            for row in self.scan(handle, offset=0, line=0):
                key = row.key
                if key is not None and key in repeated and row.data is not None and lines[key] != row.line:
                    earlier[key] = laid_over(earlier.get(key), row.data)
        return LastRows(lines, earlier)

    def _remove_stale_temps(self) -> None:
        for stale in self.path.parent.glob(f".{self.path.name}.crmsync-tmp-*"):
            stale.unlink(missing_ok=True)

    def close(self) -> None:
        self.staging.close()


def _written_id(request: WriteRequest, key: str) -> str:
    """A row keeps its own id (the merge keeps unwritten columns); else its identity is its email."""
    kept = request.remote_id
    if kept and "@" not in kept:
        return kept
    return key


def _parse_token(token: str) -> tuple[int, int]:
    try:
        offset, line = (int(part) for part in token.split(":", 1))
    except ValueError as exc:
        raise CursorError(f"file cursor has a bad page token: {token[:40]!r}") from exc
    return offset, line
