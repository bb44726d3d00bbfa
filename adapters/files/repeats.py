"""One person on several rows of one file: a later row's values win, its blanks keep the earlier rows' values.

A second row of the same address is not a user clearing a field (SPEC promise 6). So within one read of a
file, each record of a person is all of that person's rows read so far, laid over one another in order.

Within a page the earlier rows are at hand. Across pages memory stays flat: nothing is kept until a row meets
an identity that an earlier page may have held (a Bloom filter of constant size says so: never wrongly no,
rarely wrongly yes). From then on the read keeps the merged values of the identities the file holds more than
once: one pass over the whole file finds them (through a second filter), another gathers their rows up to the
page. A resumed read does so at its first row, as the rows before its start are unseen: it yields exactly the
rest of what an uninterrupted read would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any, Final, Protocol

from adapters.base import ProviderRecord

_BITS: Final = 1 << 24  # 2 MiB: at 100,000 identities a false "maybe" is about 1 in 3 million
_MASK: Final = _BITS - 1


class Scanned(Protocol):
    """What a pass needs of a scanned row (``_common.Row``)."""

    @property
    def remote_id(self) -> str | None: ...
    @property
    def data(self) -> dict[str, Any] | None: ...
    @property
    def end(self) -> int: ...


def is_blank(value: object) -> bool:
    """None, an empty or whitespace-only string, an empty list: no value."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list) and not value


def laid_over(earlier: Mapping[str, Any] | None, later: Mapping[str, Any]) -> Mapping[str, Any]:
    """``later``'s values over ``earlier``'s; where ``later`` is blank or silent, ``earlier``'s value stays
    (a JSONL ``custom`` object is laid over key by key).
    """
    if not earlier:
        return later
    merged = dict(earlier)
    for name, value in later.items():
        before = merged.get(name)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            merged[name] = laid_over(before, value)
        elif name not in merged or not is_blank(value):
            merged[name] = value
    return merged


class _Bloom:
    """A set of strings in constant memory that may answer a false "maybe", never a false "no"; four bits a
    string, spelt out (this runs once a row).
    """

    __slots__ = ("_bits",)

    def __init__(self) -> None:
        self._bits = bytearray(_BITS >> 3)

    def add(self, names: Iterable[str]) -> None:
        bits = self._bits
        for h in map(hash, names):
            step = ((h >> 24) & _MASK) | 1
            at = h & _MASK
            bits[at >> 3] |= 1 << (at & 7)
            at = (at + step) & _MASK
            bits[at >> 3] |= 1 << (at & 7)
            at = (at + step) & _MASK
            bits[at >> 3] |= 1 << (at & 7)
            at = (at + step) & _MASK
            bits[at >> 3] |= 1 << (at & 7)

    def __contains__(self, name: str) -> bool:
        h = hash(name)
        step, bits = ((h >> 24) & _MASK) | 1, self._bits
        at = h & _MASK
        if not bits[at >> 3] & (1 << (at & 7)):
            return False
        for _ in range(3):
            at = (at + step) & _MASK
            if not bits[at >> 3] & (1 << (at & 7)):
                return False
        return True


class Repeats:
    """The earlier rows of the people one read meets again (see the module docstring).

    ``scan()`` reads the whole file from its first row, on the read's own handle: each pass puts the handle
    back where the read stands.
    """

    __slots__ = ("_carry", "_handed", "_handle", "_repeated", "_resumed", "_scan")

    def __init__(self, handle: IO[bytes], scan: Callable[[], Iterator[Scanned]], *, resumed: bool) -> None:
        self._handle = handle
        self._scan = scan
        self._resumed = resumed  # the rows before the read's start were handed over by an earlier read
        self._handed: _Bloom | None = None  # identities of the pages handed over (until _carry is kept)
        self._repeated: set[str] = set()  # identities the file holds more than once (and a few false maybes)
        self._carry: dict[str, Mapping[str, Any]] | None = None  # a repeated identity -> its handed-over values

    def fill(self, identity: str, in_page: Mapping[str, Any] | None, data: Mapping[str, Any],
             page_start: int) -> Mapping[str, Any]:
        """``data`` laid over the page's record of the same person (``in_page``) and over what the pages handed
        over before ``page_start`` said of that person.
        """
        carry = self._carry
        if carry is None:
            if not self._resumed and (self._handed is None or identity not in self._handed):
                return data if in_page is None else laid_over(in_page, data)  # nearly every row
            carry = self._keep(page_start)
        if identity not in self._repeated:
            return laid_over(in_page, data)
        earlier = carry.get(identity)
        return laid_over(earlier if in_page is None else laid_over(earlier, in_page), data)

    def handed_over(self, page: Mapping[str, ProviderRecord]) -> None:
        """A page was handed over (identity -> its record): its people may come back later."""
        carry = self._carry
        if carry is not None:
            for identity in page.keys() & self._repeated:
                carry[identity] = laid_over(carry.get(identity), page[identity].data)
            return
        if self._handed is None:
            self._handed = _Bloom()
        self._handed.add(page)

    def _keep(self, page_start: int) -> dict[str, Mapping[str, Any]]:
        """From now on keep the repeated identities' values: find them, then gather their rows before the page."""
        position = self._handle.tell()
        try:
            self._repeated = _repeated(self._scan())
            carry: dict[str, Mapping[str, Any]] = {}
            for row in self._scan():
                if row.end > page_start:
                    break
                identity = row.remote_id
                if row.data is not None and identity is not None and identity in self._repeated:
                    carry[identity] = laid_over(carry.get(identity), row.data)
        finally:
            self._handle.seek(position)
        self._carry = carry
        return carry


def _repeated(rows: Iterator[Scanned]) -> set[str]:
    """The identities met more than once (and, rarely, one that a false "maybe" put there)."""
    seen, repeated = _Bloom(), set()
    for row in rows:
        identity = row.remote_id
        if row.data is not None and identity is not None:
            if identity in seen:
                repeated.add(identity)
            else:
                seen.add((identity,))
    return repeated
