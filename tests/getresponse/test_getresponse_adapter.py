"""The GetResponse adapter against its emulator over real HTTP: every bullet of the issue's GetResponse half."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from adapter_contract import ids_of
from conftest import ManualClock

from adapters._emulator import DROP, Fault
from adapters.base import Cursor, Page, WriteRequest
from adapters.errors import AuthError, FatalProviderError
from adapters.getresponse import GetResponseAdapter, create_adapter
from adapters.getresponse.adapter import account_limiter
from adapters.getresponse.emulator import GetResponseEmulator
from adapters.secret import Secret
from mappings.contact import Consent
from mappings.mapper import build_mapping


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def adapter(gr_emulator: GetResponseEmulator, clock: ManualClock, waits: list[float]) -> Iterator[GetResponseAdapter]:
    built = GetResponseAdapter(
        api_key=Secret(gr_emulator.api_key),
        campaign_id=gr_emulator.campaign_id,
        base_url=gr_emulator.api_url,
        page_size=4,
        sleep=waits.append,
        clock=clock,
    )
    yield built
    built.close()


def read(adapter: GetResponseAdapter, cursor: Cursor | None = None) -> list[Page]:
    return list(adapter.read_contacts(cursor or Cursor()))


def write(email: str, *, ref: str = "r1", remote_id: str | None = None, **fields: object) -> WriteRequest:
    return WriteRequest(ref=ref, remote_id=remote_id, email=email, fields={"email": email, **fields})


# -- connection and config ------------------------------------------------------------------------
def test_check_verifies_key_and_campaign(gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter) -> None:
    adapter.check()
    wrong = GetResponseAdapter(api_key=Secret(gr_emulator.api_key), campaign_id="nope", base_url=gr_emulator.api_url)
    with pytest.raises(FatalProviderError, match="campaign"):
        wrong.check()
    bad_key = GetResponseAdapter(api_key=Secret("bad-key-123"), campaign_id="x", base_url=gr_emulator.api_url)
    with pytest.raises(AuthError) as caught:
        bad_key.check()
    assert "bad-key-123" not in str(caught.value)


def test_create_adapter_reads_the_config_table(gr_emulator: GetResponseEmulator) -> None:
    built = create_adapter("gr", {**gr_emulator.sandbox_options(), "api_key": Secret(gr_emulator.api_key)})
    assert built.name == "gr" and built.campaign_id == gr_emulator.campaign_id
    built.check()
    assert gr_emulator.api_key not in repr(built) + repr(built.transport)


def test_one_limiter_per_account_with_both_published_windows() -> None:
    first, second = account_limiter("key-a", None), account_limiter("key-a", None)
    assert first is second and account_limiter("key-b", None) is not first
    assert repr(first) == "RateLimiter(72/1s)+RateLimiter(30000/600s)"
    assert repr(account_limiter("key-a", "10/s")) == "RateLimiter(10/1s)"


# -- reading --------------------------------------------------------------------------------------
def test_records_carry_tags_custom_fields_and_name_parts(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter
) -> None:
    (cid,) = gr_emulator.seed(1)
    (record,) = [r for page in read(adapter) for r in page.records]
    assert record.remote_id == cid and record.updated_at is not None and record.updated_at.tzinfo is not None
    fields = build_mapping("getresponse").to_canonical(record.data)
    assert fields["first_name"] == "Ana" and fields["last_name"] == "Silva"
    assert fields["company"] == "Acme" and fields["city"] == "Gdansk"
    assert fields["tags"] == frozenset({"vip", "customer"})
    assert fields["consent"] is Consent.UNKNOWN  # listed: no evidence of an opt-in (crmsync lists people too)


def test_incremental_read_on_changed_on_brings_only_changes(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter, clock: ManualClock
) -> None:
    ids = gr_emulator.seed(9)
    clock.advance(600)
    gr_emulator.edit(ids[0], name="First Edit")  # the backfill's newest changedOn, well past the seeds
    pages = read(adapter)
    final = pages[-1].next_cursor
    assert final.phase == "incremental" and final.page_token is None
    assert len(set(ids_of(pages))) == 9
    clock.advance(600)
    gr_emulator.edit(ids[2], name="Changed Person")
    again = read(adapter, Cursor.from_json(final.to_json()))
    assert ids_of(again) == [ids[2]]  # ids[0] sits at the cursor's boundary second: already taken
    nothing = read(adapter, again[-1].next_cursor)
    assert ids_of(nothing) == []  # the boundary id is not read twice


def test_a_second_holding_more_than_a_page_is_read_once(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter, clock: ManualClock
) -> None:
    ids = gr_emulator.seed(3)
    clock.advance(60)
    same_second = gr_emulator.seed(10, prefix="burst")
    for cid in same_second:
        gr_emulator.edit(cid, name="Same Second")  # ten contacts at one changedOn, pages of four
    pages = read(adapter)
    assert sorted(ids_of(pages)) == sorted(ids + same_second)
    resumed = read(adapter, Cursor.from_json(pages[2].next_cursor.to_json()))
    assert set(ids_of(pages[3:])) <= set(ids_of(resumed))


def test_a_fault_mid_backfill_loses_nothing(gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter) -> None:
    ids = gr_emulator.seed(10)
    gr_emulator.inject(
        Fault(DROP, path_pattern=r"/contacts/"), Fault(503, {"httpStatus": 503}, path_pattern="/contacts")
    )
    assert sorted(ids_of(read(adapter))) == sorted(ids)


def test_429_waits_for_time_to_reset(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter, waits: list[float]
) -> None:
    gr_emulator.seed(2)
    body = {"httpStatus": 429, "code": 1015, "context": {"currentLimit": 30000, "timeToReset": "7 seconds"}}
    gr_emulator.inject(Fault(429, body, method="GET", path_pattern=r"/contacts\Z"))
    bare = {"httpStatus": 429, "code": 1015}
    gr_emulator.inject(Fault(429, bare, {"X-RateLimit-Reset": "3 seconds"}, method="GET", path_pattern=r"/contacts\Z"))
    assert len(ids_of(read(adapter))) == 2
    assert waits[:2] == [7.0, 3.0]
    assert adapter.transport.stats.rate_limited == 2


def test_a_configured_rate_limit_keeps_within_the_account_limit(
    gr_emulator: GetResponseEmulator, clock: ManualClock
) -> None:
    gr_emulator.per_second = 10
    gr_emulator.seed(6)
    gr_emulator.api_key = "limited-" + gr_emulator.api_key  # an account of its own: its own limiter
    built = GetResponseAdapter(
        api_key=Secret(gr_emulator.api_key),
        campaign_id=gr_emulator.campaign_id,
        base_url=gr_emulator.api_url,
        rate_limit="5/1s",  # well below the server's 10: arrival times jitter
        sleep=lambda s: None,  # retries would not wait: a 429 here would fail the read
        attempts=1,
        clock=clock,
    )
    assert len(ids_of(read(built))) == 6  # 8 calls at 5 a second: the limiter waited, the server never refused
    assert built.transport.stats.rate_limited == 0


# -- unsubscribes ---------------------------------------------------------------------------------
def test_unsubscribes_come_from_the_periodic_opt_out_pass(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter, clock: ManualClock
) -> None:
    ids = gr_emulator.seed(3)
    first = read(adapter)
    assert "optouts_read_at" in first[-1].next_cursor.extra
    gr_emulator.unsubscribe("contact1@example.com")
    clock.advance(120)
    soon = read(adapter, first[-1].next_cursor)  # not due yet: the listing alone hides the unsubscribe
    assert ids[1] not in ids_of(soon)
    assert all(r.data["status"] == "subscribed" for page in soon for r in page.records)
    clock.advance(dt.timedelta(days=1).total_seconds())
    later = read(adapter, soon[-1].next_cursor)
    (record,) = [r for page in later for r in page.records if r.remote_id == ids[1]]
    assert record.remote_id == ids[1] and not record.deleted
    assert build_mapping("getresponse").to_canonical(record.data)["consent"] is Consent.UNSUBSCRIBED


def test_fetch_by_id_reports_unsubscribed_and_gone(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter
) -> None:
    ids = gr_emulator.seed(3)
    gr_emulator.unsubscribe("contact0@example.com")
    records = adapter.fetch_contacts([ids[0], ids[1], "nosuch"])
    assert records[0].data["status"] == "unsubscribed" and not records[0].deleted
    assert records[1].data["status"] == "subscribed"
    assert records[2].deleted


# -- writing --------------------------------------------------------------------------------------
def test_an_existing_email_is_found_and_updated_not_created(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter
) -> None:
    (cid,) = gr_emulator.seed(1)
    (result,) = adapter.write_contacts([write("contact0@example.com", nameParts={"first": "Ana", "last": "Nowak"})])
    assert result.ok and result.remote_id == cid
    assert gr_emulator.call_count("POST", r"/v3/contacts\Z") == 0
    stored = gr_emulator.contact(cid)
    assert stored is not None and stored["name"] == "Ana Nowak"


def test_a_create_is_202_and_the_next_read_resolves_the_id(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter, clock: ManualClock
) -> None:
    gr_emulator.create_delay_s = 30
    (result,) = adapter.write_contacts([write("ana@example.com", nameParts={"first": "Ana", "last": None})])
    assert result.ok and result.remote_id is None
    assert ids_of(read(adapter)) == []  # still queued
    (again,) = adapter.write_contacts([write("ana@example.com", nameParts={"first": "Ana", "last": None})])
    assert again.ok and again.remote_id is None  # 409 while queued: no second contact
    clock.advance(31)
    records = [r for page in read(adapter) for r in page.records]
    assert [r.data["email"] for r in records] == ["ana@example.com"]
    assert len(gr_emulator.contacts(state=None)) == 1


def test_a_create_whose_answer_is_lost_is_not_duplicated(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter
) -> None:
    gr_emulator.inject(Fault(DROP, method="POST", path_pattern=r"/v3/contacts\Z"))
    (lost,) = adapter.write_contacts([write("bo@example.com")])
    assert not lost.ok and lost.retryable  # never resent blindly
    (retried,) = adapter.write_contacts([write("bo@example.com")])
    assert retried.ok
    assert len(gr_emulator.contacts(state=None)) == 1


def test_a_5xx_mid_batch_is_retried_and_every_result_lines_up(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter
) -> None:
    ids = gr_emulator.seed(4)
    gr_emulator.inject(Fault(503, {"httpStatus": 503}, method="POST", path_pattern=r"/contacts/"))
    requests = [
        write(f"contact{i}@example.com", ref=f"r{i}", remote_id=ids[i], nameParts={"first": "X"}) for i in range(4)
    ]
    requests.append(write("fresh@example.com", ref="r4"))
    results = adapter.write_contacts(requests)
    assert [r.ref for r in results] == [r.ref for r in requests]
    assert all(r.ok for r in results)
    assert [r.remote_id for r in results] == [*ids, None]
    assert all((gr_emulator.contact(cid) or {})["name"] == "X" for cid in ids)


def test_an_invalid_email_is_one_failed_result(gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter) -> None:
    results = adapter.write_contacts([write("not-an-email", ref="bad"), write("ok@example.com", ref="good")])
    assert [(r.ref, r.ok) for r in results] == [("bad", False), ("good", True)]
    assert results[0].error == "400 code 1000" and not results[0].retryable


def test_an_opted_out_person_is_never_created_nor_resubscribed(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter
) -> None:
    gr_emulator.seed(2)
    gr_emulator.unsubscribe("contact0@example.com")
    results = adapter.write_contacts(
        [
            write("contact0@example.com", ref="a", status="subscribed"),
            write("new@example.com", ref="b", status="unsubscribed"),
        ]
    )
    assert [(r.ok, r.suppressed) for r in results] == [(False, True), (False, True)]
    assert (gr_emulator.find("contact0@example.com") or {})["state"] == "unsubscribed"
    assert gr_emulator.find("new@example.com") is None


def test_an_opt_out_write_removes_the_contact_from_the_campaign(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter
) -> None:
    (cid,) = gr_emulator.seed(1)
    (result,) = adapter.write_contacts([write("contact0@example.com", remote_id=cid, status="unsubscribed")])
    assert result.ok
    assert (gr_emulator.contact(cid) or {})["state"] == "removed"
    (again,) = adapter.write_contacts([write("contact0@example.com", status="subscribed")])
    assert again.suppressed and (gr_emulator.contact(cid) or {})["state"] == "removed"


def test_tags_are_replaced_and_created_custom_fields_added_without_dropping_others(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter
) -> None:
    (cid,) = gr_emulator.seed(1)
    gr_emulator.edit(cid, custom={"street": "Long St 1"})
    request = write(
        "contact0@example.com",
        remote_id=cid,
        tags=["gold_tier", "vip"],
        customFields={"company": "Initech", "city": None, "not_in_account": "x"},
    )
    (result,) = adapter.write_contacts([request])
    assert result.ok
    stored = gr_emulator.contact(cid)
    assert stored is not None
    assert {t["name"] for t in stored["tags"]} == {"gold_tier", "vip"}
    values = {v["name"]: v["value"] for v in stored["customFieldValues"]}
    assert values["company"] == ["Initech"] and values["street"] == ["Long St 1"] and values["city"] == []
    assert "not_in_account" not in values


def test_an_address_change_updates_the_contact_found_by_the_old_address(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter
) -> None:
    (cid,) = gr_emulator.seed(1)
    request = WriteRequest(
        ref="m", remote_id=None, email="moved@example.com", previous_email="contact0@example.com", fields={}
    )
    (result,) = adapter.write_contacts([request])
    assert result.ok and result.remote_id == cid
    assert (gr_emulator.contact(cid) or {})["email"] == "moved@example.com"


def test_erase_removes_the_contact(gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter) -> None:
    (cid,) = gr_emulator.seed(1)
    adapter.erase_contact(remote_id=None, email="contact0@example.com")
    assert (gr_emulator.contact(cid) or {})["state"] == "removed"
    adapter.erase_contact(remote_id=cid, email="contact0@example.com")  # already gone: no error


def test_a_linked_contact_that_just_unsubscribed_is_not_re_added(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter
) -> None:
    ids = gr_emulator.seed(2)
    assert adapter.write_contacts([write("fresh@example.com", nameParts={"first": "A"})])[0].ok  # reads the list
    assert ids[1]
    gr_emulator.unsubscribe("contact0@example.com")  # after the adapter read the opted-out list
    (result,) = adapter.write_contacts([write("contact0@example.com", remote_id=ids[0], nameParts={"first": "B"})])
    assert not result.ok and result.suppressed
    assert (gr_emulator.find("contact0@example.com") or {})["state"] == "unsubscribed"


def test_a_batch_finds_existing_addresses_by_listing_the_campaign(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter
) -> None:
    ids = gr_emulator.seed(3)
    gr_emulator.create_delay_s = 30
    assert adapter.write_contacts([write("queued@example.com")])[0].ok  # accepted, not listed yet
    gr_emulator.reset_counters()
    emails = ["contact0@example.com", "contact1@example.com", "contact2@example.com", "new@example.com"]
    requests = [write(e, ref=str(i), nameParts={"first": "Z"}) for i, e in enumerate(emails)]
    results = adapter.write_contacts([*requests, write("queued@example.com", ref="q")])
    assert [r.remote_id for r in results] == [*ids, None, None] and all(r.ok for r in results)
    assert gr_emulator.call_count("GET", r"/v3/contacts\Z") == 3  # the count, one page, the queued one's find
    assert gr_emulator.call_count("POST", r"/v3/contacts\Z") == 2  # new, and queued (409: never twice)
    assert len(gr_emulator.contacts(state=None)) == 5


def test_a_quiet_campaign_costs_one_call_per_cycle(
    gr_emulator: GetResponseEmulator, adapter: GetResponseAdapter, clock: ManualClock
) -> None:
    gr_emulator.seed(5)
    cursor = read(adapter)[-1].next_cursor
    clock.advance(600)
    cursor = read(adapter, cursor)[-1].next_cursor  # the lookback before the last change, once
    clock.advance(600)
    gr_emulator.reset_counters()
    assert ids_of(read(adapter, cursor)) == []
    assert sum(gr_emulator.calls.values()) == 1
