"""Zoho adapter reads over real HTTP against the emulator: pages, tokens, If-Modified-Since, deletions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from zoho_fixtures import make_adapter

from adapters._emulator import DROP, Fault
from adapters.base import Cursor, Page
from adapters.errors import FatalProviderError, RetryableError
from adapters.zoho._wire import parse_zoho_time
from adapters.zoho.emulator import ZohoEmulator


@pytest.fixture
def zoho() -> Iterator[ZohoEmulator]:
    with ZohoEmulator() as emulator:
        yield emulator


def seed_old(zoho: ZohoEmulator, n: int) -> list[str]:
    """Contacts last modified ten minutes ago (outside the lookback of a fresh backfill)."""
    zoho.advance_clock(-600)
    ids = zoho.seed(n)
    zoho.advance_clock(600)
    return ids


def read_all(pages: Iterator[Page]) -> tuple[list[Page], Cursor]:
    out = list(pages)
    return out, out[-1].next_cursor


def test_backfill_reads_every_contact_with_page_tokens(zoho: ZohoEmulator) -> None:
    ids = seed_old(zoho, 450)
    adapter = make_adapter(zoho)
    pages, final = read_all(adapter.read_contacts(Cursor()))
    got = [r.remote_id for p in pages for r in p.records]
    assert sorted(got) == sorted(ids)
    assert zoho.call_count("GET", r"/Contacts$") == 3  # 200 + 200 + 50
    assert final.phase == "incremental" and final.updated_after is not None
    assert all(r.updated_at is not None and r.updated_at.tzinfo == dt.UTC for p in pages for r in p.records)
    assert all(p.next_cursor.page_token for p in pages[:-1])


def test_offsets_are_normalised_to_utc(zoho: ZohoEmulator) -> None:
    [rid] = zoho.seed(1)
    adapter = make_adapter(zoho)
    [record] = adapter.fetch_contacts([rid])
    raw = record.data["Modified_Time"]
    assert raw.endswith("+05:30")
    assert record.updated_at == parse_zoho_time(raw)
    assert record.updated_at is not None and record.updated_at.utcoffset() == dt.timedelta(0)


def test_backfill_past_the_page_token_cap_goes_on_from_the_watermark() -> None:
    with ZohoEmulator(page_token_row_cap=400) as zoho:
        zoho.advance_clock(-900)
        ids = []
        for _ in range(6):  # 600 records over several seconds of Modified_Time
            ids += zoho.seed(100)
            zoho.advance_clock(1)
        zoho.advance_clock(894)
        pages, _ = read_all(make_adapter(zoho).read_contacts(Cursor()))
        got = [r.remote_id for p in pages for r in p.records]
        assert sorted(got) == sorted(ids) and len(got) == len(set(got))


def test_resume_from_any_stored_cursor_skips_nothing(zoho: ZohoEmulator) -> None:
    ids = seed_old(zoho, 500)
    adapter = make_adapter(zoho)
    seen: list[str] = []
    # A non-retryable failure mid-backfill: take one page, fail the next, resume from the stored cursor.
    pages = adapter.read_contacts(Cursor())
    page = next(pages)
    seen += [r.remote_id for r in page.records]
    stored = page.next_cursor
    zoho.inject(*[Fault(status=500, body={"code": "INTERNAL_ERROR"}, method="GET", path_pattern=r"/Contacts$")] * 5)
    with pytest.raises(RetryableError):  # retries spent
        next(pages)
    for page in make_adapter(zoho).read_contacts(Cursor.from_json(stored.to_json())):
        seen += [r.remote_id for r in page.records]
    assert set(seen) == set(ids)


def test_transient_faults_mid_backfill_are_retried(zoho: ZohoEmulator) -> None:
    ids = seed_old(zoho, 450)
    adapter = make_adapter(zoho)
    zoho.inject(
        Fault(status=500, body={"code": "INTERNAL_ERROR"}, method="GET", path_pattern=r"/Contacts$"),
        Fault(status=DROP, method="GET", path_pattern=r"/Contacts$"),
    )
    pages = adapter.read_contacts(Cursor())
    first = next(pages)
    assert len(first.records) == 200
    rest = list(pages)
    assert sorted(r.remote_id for p in [first, *rest] for r in p.records) == sorted(ids)
    assert adapter.stats.retries == 2


def test_expired_page_token_resumes_from_the_watermark(zoho: ZohoEmulator) -> None:
    ids = seed_old(zoho, 450)
    adapter = make_adapter(zoho)
    page = next(adapter.read_contacts(Cursor()))
    stale = Cursor(
        phase="backfill",
        page_token="expired-token",
        updated_after=page.next_cursor.updated_after,
        boundary_ids=page.next_cursor.boundary_ids,
        extra=page.next_cursor.extra,
    )
    rest = [r.remote_id for p in adapter.read_contacts(stale) for r in p.records]
    assert set(rest) | {r.remote_id for r in page.records} == set(ids)
    assert zoho.refreshes() == 1  # the page token's 400 TOKEN_BOUND_DATA_MISMATCH is not an OAuth failure


def test_a_page_token_refused_with_401_is_not_an_oauth_failure(zoho: ZohoEmulator) -> None:
    """Zoho documents the refusal as 400 (OAS v8.0); an implementation answering 401 is tolerated too."""
    ids = seed_old(zoho, 450)
    adapter = make_adapter(zoho)
    page = next(adapter.read_contacts(Cursor()))
    refused = {
        "code": "TOKEN_BOUND_DATA_MISMATCH",
        "details": {"param_name": "page_token"},
        "message": "The page_token given seems to be invalid",
        "status": "error",
    }
    zoho.inject(Fault(status=401, body=refused, method="GET", path_pattern=r"/crm/v8/Contacts$"))
    rest = [r.remote_id for p in adapter.read_contacts(page.next_cursor) for r in p.records]
    assert set(rest) | {r.remote_id for r in page.records} == set(ids)
    assert zoho.refreshes() == 1


def test_a_full_page_without_more_records_is_not_the_last(zoho: ZohoEmulator) -> None:
    ids = seed_old(zoho, 5)
    adapter = make_adapter(zoho, page_size=2)
    ordered = sorted(zoho.all_contacts(), key=lambda c: (parse_zoho_time(c["Modified_Time"]), int(c["id"])))
    zoho.inject(Fault(status=200, body={"data": ordered[:2]}, method="GET", path_pattern=r"/crm/v8/Contacts$"))
    read = [r.remote_id for p in adapter.read_contacts(Cursor()) for r in p.records]
    assert sorted(set(read)) == sorted(ids)


def test_a_short_page_without_info_is_the_last(zoho: ZohoEmulator) -> None:
    seed_old(zoho, 1)
    adapter = make_adapter(zoho, page_size=2)
    zoho.inject(Fault(status=200, body={"data": zoho.all_contacts()}, method="GET", path_pattern=r"/Contacts$"))
    pages = list(adapter.read_contacts(Cursor()))
    assert [len(p.records) for p in pages] == [1] and pages[-1].next_cursor.phase == "incremental"


class Clock:
    """The adapter's clock, moved together with the emulator's."""

    def __init__(self, zoho: ZohoEmulator) -> None:
        self.zoho = zoho
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)
        self.zoho.advance_clock(seconds)


def changed(pages: list[Page]) -> list[str]:
    return [r.remote_id for p in pages for r in p.records if not r.deleted]


def test_incremental_uses_if_modified_since_and_304(zoho: ZohoEmulator) -> None:
    ids = seed_old(zoho, 5)
    clock = Clock(zoho)
    adapter = make_adapter(zoho, clock=clock)
    _, cursor = read_all(adapter.read_contacts(Cursor()))
    clock.advance(120)
    zoho.reset_counters()
    pages, cursor = read_all(adapter.read_contacts(cursor))
    assert changed(pages) == []
    assert ("GET", "/crm/v8/Contacts", 304) in zoho.server.log
    assert ("GET", "/crm/v8/Contacts/deleted", 304) in zoho.server.log
    assert zoho.call_count("GET") == 2  # a quiet poll: one 304 for changes, one for deletions
    zoho.edit(ids[2], First_Name="Zed")
    pages, cursor = read_all(adapter.read_contacts(cursor))
    assert changed(pages) == [ids[2]] and pages[0].records[0].data["First_Name"] == "Zed"
    clock.advance(120)
    pages, cursor = read_all(adapter.read_contacts(cursor))  # within the lookback: read once more
    assert set(changed(pages)) <= {ids[2]}
    clock.advance(120)
    zoho.reset_counters()
    pages, cursor = read_all(adapter.read_contacts(cursor))
    assert changed(pages) == [] and ("GET", "/crm/v8/Contacts", 304) in zoho.server.log


def test_incremental_drops_ids_taken_at_the_watermark(zoho: ZohoEmulator) -> None:
    ids = seed_old(zoho, 3)
    clock = Clock(zoho)
    adapter = make_adapter(zoho, clock=clock)
    _, cursor = read_all(adapter.read_contacts(Cursor()))
    clock.advance(60)
    zoho.edit(ids[0], First_Name="Once")
    clock.advance(60)
    pages, after = read_all(adapter.read_contacts(cursor))
    assert changed(pages) == [ids[0]]
    record = pages[0].records[0]
    at_mark = Cursor(phase="incremental", updated_after=record.updated_at, boundary_ids=frozenset({ids[0]}))
    assert changed(list(adapter.read_contacts(at_mark))) == []


def test_incremental_reports_deleted_records(zoho: ZohoEmulator) -> None:
    ids = seed_old(zoho, 3)
    clock = Clock(zoho)
    adapter = make_adapter(zoho, clock=clock)
    _, cursor = read_all(adapter.read_contacts(Cursor()))
    clock.advance(90)
    zoho.delete(ids[0])
    pages, cursor = read_all(adapter.read_contacts(cursor))
    deleted = [r for p in pages for r in p.records if r.deleted]
    assert [r.remote_id for r in deleted] == [ids[0]]
    assert deleted[0].updated_at is not None
    clock.advance(120)
    _, cursor = read_all(adapter.read_contacts(cursor))  # may repeat it: within the lookback
    clock.advance(120)
    pages, cursor = read_all(adapter.read_contacts(cursor))
    assert pages[-1].next_cursor.extra["deleted_after"] and not [r for p in pages for r in p.records]


def test_fetch_by_ids_marks_missing_as_deleted(zoho: ZohoEmulator) -> None:
    ids = zoho.seed(3)
    zoho.delete(ids[1])
    records = make_adapter(zoho).fetch_contacts(ids)
    assert [(r.remote_id, r.deleted) for r in records] == [(ids[0], False), (ids[1], True), (ids[2], False)]
    assert zoho.call_count("GET", r"/Contacts$") == 1


def test_reads_ask_for_an_explicit_field_list(zoho: ZohoEmulator) -> None:
    zoho.org.custom_fields.add("Score__c")
    [rid] = zoho.seed(1)
    zoho.edit(rid, Score__c="12")
    adapter = make_adapter(zoho, extra_fields=["Score__c"])
    [record] = adapter.fetch_contacts([rid])
    assert record.data["Score__c"] == "12"
    assert "Description" not in record.data


def test_without_page_tokens_the_read_goes_on_by_time_then_by_page(zoho: ZohoEmulator) -> None:
    zoho.page_tokens = False
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=15)
    zoho.freeze_clock(old)
    ids = zoho.seed(450)  # one second: the time alone cannot move the read on, the page number does
    zoho.freeze_clock(old + dt.timedelta(seconds=2))
    ids += zoho.seed(120)
    zoho.freeze_clock(None)
    zoho.reset_counters()
    pages = list(make_adapter(zoho).read_contacts(Cursor()))
    got = [r.remote_id for p in pages for r in p.records]
    assert sorted(got) == sorted(ids) and len(got) == len(set(got))
    assert zoho.call_count("GET", r"/Contacts$") <= 5


def test_a_read_that_cannot_advance_is_an_error_not_a_loop(zoho: ZohoEmulator) -> None:
    zoho.page_tokens = False
    zoho.freeze_clock(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=15))
    zoho.seed(2_001)  # more than `page` reaches, all in one second, and no page token
    zoho.freeze_clock(None)
    with pytest.raises(FatalProviderError, match="share one Modified_Time"):
        list(make_adapter(zoho).read_contacts(Cursor()))
    assert zoho.call_count("GET", r"/Contacts$") == 10
