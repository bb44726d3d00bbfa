"""The one contract every adapter passes (STYLE.md rule 13): paging, resumable cursors, writes, faults.

How to use it, in ``tests/<p>/test_<p>_contract.py``::

    from adapter_contract import AdapterContract      # tests/conftest.py puts tests/ on sys.path

    class TestMailchimpContract(AdapterContract):
        __test__ = True   # the base sets False so it is never collected on its own
        http = True       # False for files: the fault tests below are then left out (not skipped)

        @pytest.fixture
        def emulator(self) -> Iterator[MailchimpEmulator]:
            with MailchimpEmulator() as emulator:            # one emulator per test: faults never leak
                yield emulator

        @pytest.fixture
        def adapter(self, emulator) -> MailchimpAdapter:     # pages of at most self.page_size records,
            return MailchimpAdapter(..., page_size=self.page_size, sleep=lambda s: None)  # no real waits

        @pytest.fixture
        def seed(self, emulator) -> Callable[[int], list[str]]:
            return lambda n: emulator.seed(n, prefix="contact")   # contact<i>@example.com; remote ids back

        @pytest.fixture
        def inject(self, emulator) -> Callable[[Fault], None]:   # HTTP providers only
            return emulator.inject

        def make_write(self, i: int) -> WriteRequest:         # optional: a valid request in your shape
            email = f"new{i}@example.com"
            return WriteRequest(ref=f"w{i}", remote_id=None, email=email, fields={"email_address": email})

        def email_of(self, record: ProviderRecord) -> str | None:  # optional: enables the email checks
            return record.data.get("email_address")

What it holds every adapter to:

- a backfill from ``Cursor()`` reads every seeded contact exactly once, over several pages, none larger
  than ``page_size``; records carry a remote id and, when they have one, an aware ``updated_at``;
- reading again from the final cursor yields no record that was not seen (an overlap is fine);
- every page's cursor survives ``to_json``/``from_json`` and resuming from page 2's cursor yields the rest;
- ``write_contacts`` answers one ``WriteResult`` per request, in order, ok and with a remote id, and the
  written contacts are read back (``finish_writes()`` is called when the adapter has it);
- HTTP adapters only: a 429 (``Retry-After: 0``), a 503 and a dropped connection in the middle of a
  backfill are retried and nothing is lost; a 401 raises ``AuthError``. Build the adapter with a no-op
  ``sleep`` so the retries cost no time.

A subclass may override a test when its provider truly differs; say why in its docstring.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import pytest

from adapters._emulator import DROP, Fault
from adapters.base import (
    Cursor,
    Page,
    ProviderAdapter,
    ProviderRecord,
    SupportsFinishWrites,
    WriteRequest,
)
from adapters.errors import AuthError

Seed = Callable[[int], list[str]]
Inject = Callable[[Fault], None]

HTTP_TESTS = (
    "test_429_mid_backfill_is_retried_and_nothing_is_lost",
    "test_5xx_mid_backfill_is_retried_and_nothing_is_lost",
    "test_dropped_connection_mid_backfill_is_retried_and_nothing_is_lost",
    "test_401_raises_auth_error",
)


def ids_of(pages: Iterable[Page]) -> list[str]:
    return [record.remote_id for page in pages for record in page.records]


def finish(adapter: Any) -> None:
    if isinstance(adapter, SupportsFinishWrites):
        adapter.finish_writes()


class AdapterContract:
    """Subclass with fixtures ``adapter``, ``seed`` (and ``inject`` when ``http``); see the module doc."""

    __test__ = False
    http: ClassVar[bool] = True
    page_size: ClassVar[int] = 4  # the adapter under test must be built to read pages of at most this
    seeded: ClassVar[int] = 13  # more than three pages of page_size

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.http:
            for name in HTTP_TESTS:  # None is not collected: file adapters simply have no such tests
                setattr(cls, name, None)

    # -- hooks a subclass may override ---------------------------------------------------------
    def make_write(self, i: int) -> WriteRequest:
        """A valid create in the provider's own shape (the default suits the file providers)."""
        email = f"new{i}@example.com"
        return WriteRequest(ref=f"w{i}", remote_id=None, email=email, fields={"email": email, "first_name": f"N{i}"})

    def email_of(self, record: ProviderRecord) -> str | None:
        """The record's email address, when the test can find it in ``record.data``."""
        value = record.data.get("email")
        return value.strip().lower() if isinstance(value, str) else None

    # -- helpers ---------------------------------------------------------------------------------
    def backfill(self, adapter: ProviderAdapter, cursor: Cursor | None = None) -> list[Page]:
        return list(adapter.read_contacts(cursor or Cursor()))

    def assert_each_once(self, pages: list[Page], expected: Iterable[str]) -> None:
        counts = Counter(ids_of(pages))
        missing = [remote_id for remote_id in expected if counts[remote_id] == 0]
        twice = [remote_id for remote_id in expected if counts[remote_id] > 1]
        assert not missing, f"{len(missing)} seeded contacts never read"
        assert not twice, f"{len(twice)} seeded contacts read more than once"

    # -- the contract ------------------------------------------------------------------------------
    def test_is_a_provider_adapter(self, adapter: ProviderAdapter) -> None:
        assert isinstance(adapter, ProviderAdapter)
        assert adapter.max_batch >= 1
        assert isinstance(adapter.lookback, dt.timedelta)

    def test_backfill_reads_every_seeded_contact_exactly_once(self, adapter: ProviderAdapter, seed: Seed) -> None:
        seeded = seed(self.seeded)
        assert len(set(seeded)) == self.seeded
        pages = self.backfill(adapter)
        self.assert_each_once(pages, seeded)
        assert len([page for page in pages if page.records]) >= 2, "a backfill larger than a page takes pages"
        assert all(len(page.records) <= self.page_size for page in pages)
        for record in (record for page in pages for record in page.records):
            assert record.remote_id
            assert record.updated_at is None or record.updated_at.utcoffset() is not None
        emails = {self.email_of(record) for page in pages for record in page.records} - {None}
        if emails:
            assert {f"contact{i}@example.com" for i in range(self.seeded)} <= emails

    def test_reading_again_from_the_final_cursor_yields_nothing_new(self, adapter: ProviderAdapter, seed: Seed) -> None:
        seed(self.seeded)
        pages = self.backfill(adapter)
        again = self.backfill(adapter, Cursor.from_json(pages[-1].next_cursor.to_json()))
        assert set(ids_of(again)) <= set(ids_of(pages))

    def test_each_page_cursor_resumes_the_backfill(self, adapter: ProviderAdapter, seed: Seed) -> None:
        seeded = seed(self.seeded)
        pages = self.backfill(adapter)
        assert len(pages) >= 3
        stored = Cursor.from_json(pages[1].next_cursor.to_json())  # as the engine stores it
        rest = self.backfill(adapter, stored)
        assert set(ids_of(pages[2:])) <= set(ids_of(rest))
        assert set(seeded) <= set(ids_of(pages[:2])) | set(ids_of(rest))

    def test_an_empty_provider_reads_without_error(self, adapter: ProviderAdapter) -> None:
        assert ids_of(self.backfill(adapter)) == []

    def test_write_results_align_with_requests(self, adapter: ProviderAdapter) -> None:
        requests = [self.make_write(i) for i in range(min(5, adapter.max_batch))]
        results = adapter.write_contacts(requests)
        finish(adapter)
        assert [result.ref for result in results] == [request.ref for request in requests]
        failed = [result.error for result in results if not result.ok]
        assert not failed, failed
        assert all(result.remote_id for result in results)

    def test_written_contacts_are_read_back(self, adapter: ProviderAdapter, seed: Seed) -> None:
        seeded = seed(2)
        requests = [self.make_write(i) for i in range(3)]
        results = adapter.write_contacts(requests)
        finish(adapter)
        read = self.backfill(adapter)
        written = {result.remote_id for result in results}
        assert written <= set(ids_of(read))
        assert set(seeded) <= set(ids_of(read)), "a write never loses what was there"
        emails = {self.email_of(record) for page in read for record in page.records} - {None}
        if emails:
            assert {request.email for request in requests} <= emails

    # -- HTTP faults (left out when http is False) ---------------------------------------------------
    def backfill_with_fault(self, adapter: ProviderAdapter, inject: Inject, fault: Fault) -> list[Page]:
        reading = adapter.read_contacts(Cursor())
        pages = [next(reading)]
        inject(fault)  # the next request: the second page's read
        pages.extend(reading)
        return pages

    def test_429_mid_backfill_is_retried_and_nothing_is_lost(
        self, adapter: ProviderAdapter, seed: Seed, inject: Inject
    ) -> None:
        seeded = seed(self.seeded)
        pages = self.backfill_with_fault(adapter, inject, Fault(429, None, {"Retry-After": "0"}))
        self.assert_each_once(pages, seeded)

    def test_5xx_mid_backfill_is_retried_and_nothing_is_lost(
        self, adapter: ProviderAdapter, seed: Seed, inject: Inject
    ) -> None:
        seeded = seed(self.seeded)
        pages = self.backfill_with_fault(adapter, inject, Fault(503, {"message": "unavailable"}))
        self.assert_each_once(pages, seeded)

    def test_dropped_connection_mid_backfill_is_retried_and_nothing_is_lost(
        self, adapter: ProviderAdapter, seed: Seed, inject: Inject
    ) -> None:
        seeded = seed(self.seeded)
        pages = self.backfill_with_fault(adapter, inject, Fault(DROP))
        self.assert_each_once(pages, seeded)

    def test_401_raises_auth_error(self, adapter: ProviderAdapter, seed: Seed, inject: Inject) -> None:
        seed(2)
        inject(Fault(401, {"message": "bad credentials"}))
        inject(Fault(401, {"message": "bad credentials"}))  # twice: an OAuth adapter refreshes once first
        with pytest.raises(AuthError):
            self.backfill(adapter)
