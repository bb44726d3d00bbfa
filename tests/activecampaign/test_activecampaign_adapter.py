"""The ActiveCampaign adapter against its emulator over real HTTP: config, reading, deletions, writes, faults."""

from __future__ import annotations

import pytest

from adapters._emulator import DROP, Fault
from adapters.activecampaign import ActiveCampaignAdapter, create_adapter
from adapters.activecampaign._wire import api_root
from adapters.base import Cursor, WriteRequest
from adapters.errors import AuthError, FatalProviderError
from adapters.secret import Secret
from mappings.contact import Consent
from mappings.mapper import build_mapping


def make(emulator, clock, **options) -> ActiveCampaignAdapter:
    options.setdefault("rate_limit", "1000/s")
    return ActiveCampaignAdapter(
        api_url=emulator.url,
        api_token=Secret(emulator.api_token),
        list_id=emulator.list_id,
        sleep=lambda s: None,
        import_poll_s=0.0,
        clock=clock,
        **options,
    )


def read_all(adapter, cursor=None):
    pages = list(adapter.read_contacts(cursor or Cursor()))
    return pages, [r for p in pages for r in p.records]


def req(i, email, *, remote_id=None, previous=None, **fields):
    return WriteRequest(
        ref=f"r{i}", remote_id=remote_id, email=email, previous_email=previous, fields={"email": email, **fields}
    )


# -- config and connection ---------------------------------------------------------------------
def test_api_root_adds_the_version_path_once():
    assert api_root("https://acme.api-us1.com") == "https://acme.api-us1.com/api/3"
    assert api_root("https://acme.api-us1.com/api/3/") == "https://acme.api-us1.com/api/3"
    assert api_root("https://acme.api-us1.com", "http://127.0.0.1:9") == "http://127.0.0.1:9/api/3"


def test_create_adapter_reads_config_options_and_hides_the_token(ac_emulator):
    options = {**ac_emulator.sandbox_options(), "api_token": Secret(ac_emulator.api_token), "page_size": 250}
    adapter = create_adapter("ac", options)
    adapter.check()
    assert adapter.name == "ac" and adapter.page_size == 100  # capped at AC's 100
    assert ac_emulator.api_token not in repr(adapter) and ac_emulator.api_token not in repr(adapter.transport)
    limiter = adapter.transport._limiter
    assert limiter is not None and (limiter.calls, limiter.per_s) == (5, 1.1)  # AC's 5/s, with a margin
    assert create_adapter("ac2", options).transport._limiter is limiter  # one bucket per account
    with pytest.raises(FatalProviderError, match="list"):
        create_adapter("ac", {**options, "list_id": "77"}).check()


def test_wrong_token_raises_auth_error_without_the_token(ac_emulator, clock):
    adapter = ActiveCampaignAdapter(
        api_url=ac_emulator.url, api_token=Secret("wrong-token-123"), list_id="1", sleep=lambda s: None
    )
    with pytest.raises(AuthError) as err:
        list(adapter.read_contacts(Cursor()))
    assert "wrong-token-123" not in str(err.value)


# -- reading ----------------------------------------------------------------------------------
def test_records_carry_list_status_tag_names_and_field_values(ac_emulator, clock):
    ids = ac_emulator.seed(10)
    _, records = read_all(make(ac_emulator, clock, page_size=3))
    by_id = {r.remote_id: r for r in records}
    assert list(by_id) == ids
    first = by_id[ids[0]].data  # i=0: subscribed, customer + vip, Acme Ltd
    assert (
        first["listStatus"] == "1"
        and first["tags"] == ["customer", "vip"]
        and first["fields"] == {"COMPANY": "Acme Ltd"}
    )
    assert by_id[ids[4]].data["listStatus"] == "2" and by_id[ids[9]].data["listStatus"] is None
    assert by_id[ids[0]].updated_at == clock.now
    mapping = build_mapping("activecampaign")
    assert mapping.to_canonical(by_id[ids[4]].data)["consent"] is Consent.UNSUBSCRIBED
    assert mapping.to_canonical(by_id[ids[9]].data)["consent"] is Consent.UNKNOWN


def test_incremental_reads_only_what_changed_and_nothing_twice(ac_emulator, clock):
    ids = ac_emulator.seed(9)
    adapter = make(ac_emulator, clock, page_size=4)
    pages, _ = read_all(adapter)
    cursor = pages[-1].next_cursor
    assert cursor.phase == "incremental" and cursor.updated_after == clock.now
    clock.advance(30)
    _, again = read_all(adapter, cursor)
    assert again == []  # inside the overlap, but already taken and unchanged
    clock.advance(30)
    ac_emulator.edit(ids[2], firstName="Zed")
    ac_emulator.edit(ids[7], COMPANY="Hooli")
    pages, changed = read_all(adapter, cursor)
    assert [r.remote_id for r in changed] == [ids[2], ids[7]]
    assert changed[0].data["firstName"] == "Zed"
    clock.advance(300)
    _, after = read_all(adapter, pages[-1].next_cursor)
    assert after == []


def test_an_edit_behind_the_read_position_is_caught_by_the_next_read(ac_emulator, clock):
    ids = ac_emulator.seed(8)
    adapter = make(ac_emulator, clock, page_size=4)
    cursor = read_all(adapter)[0][-1].next_cursor
    clock.advance(600)
    ac_emulator.edit(ids[5], lastName="One")
    reading = adapter.read_contacts(cursor)
    first = next(reading)
    clock.advance(1)
    ac_emulator.edit(ids[0], lastName="Two")  # an id the read already passed (no udate order in AC)
    rest = list(reading)
    seen_now = [r.remote_id for p in [first, *rest] for r in p.records]
    assert seen_now == [ids[5]]
    _, later = read_all(adapter, rest[-1].next_cursor if rest else first.next_cursor)
    assert [r.remote_id for r in later] == [ids[0]]


def test_resuming_mid_window_from_a_stored_cursor_skips_nothing(ac_emulator, clock):
    ids = ac_emulator.seed(10)
    adapter = make(ac_emulator, clock, page_size=3)
    cursor = read_all(adapter)[0][-1].next_cursor
    clock.advance(600)
    for i in (1, 4, 6, 8, 9):
        ac_emulator.edit(ids[i], firstName="E")
    pages = list(adapter.read_contacts(cursor))
    stored = Cursor.from_json(pages[0].next_cursor.to_json())
    _, rest = read_all(adapter, stored)
    assert {r.remote_id for r in pages[0].records} | {r.remote_id for r in rest} == {ids[i] for i in (1, 4, 6, 8, 9)}


def test_the_id_sweep_reports_deletions_once(ac_emulator, clock):
    ids = ac_emulator.seed(12)
    adapter = make(ac_emulator, clock, page_size=5)
    cursor = read_all(adapter)[0][-1].next_cursor
    for gone in (ids[3], ids[4], ids[11]):  # ids[11] is the newest: no later id marks its gap
        ac_emulator.delete(gone)
    clock.advance(3600)
    _, records = read_all(adapter, cursor)
    assert records == []  # no sweep due yet: deletions are invisible to polling
    clock.advance(24 * 3600)
    pages, records = read_all(adapter, cursor)
    assert sorted((r.remote_id for r in records if r.deleted), key=int) == [ids[3], ids[4], ids[11]]
    assert ac_emulator.call_count("GET", "/contacts") >= 2
    clock.advance(25 * 3600)
    ac_emulator.delete(ids[7])
    _, later = read_all(adapter, Cursor.from_json(pages[-1].next_cursor.to_json()))
    assert [r.remote_id for r in later if r.deleted] == [ids[7]]


def test_fetch_by_ids_reads_current_records_and_marks_missing_ones_deleted(ac_emulator, clock):
    ids = ac_emulator.seed(3)
    ac_emulator.delete(ids[1])
    records = make(ac_emulator, clock).fetch_contacts([ids[0], ids[1]])
    assert [(r.remote_id, r.deleted) for r in records] == [(ids[0], False), (ids[1], True)]
    assert records[0].data["email"] == "contact0@example.com"


@pytest.mark.parametrize(
    "fault",
    [Fault(429, {"message": "slow down"}, {"Retry-After": "0"}), Fault(503, None), Fault(403, None), Fault(DROP)],
)
def test_faults_mid_backfill_are_retried(ac_emulator, clock, fault):
    ids = ac_emulator.seed(9)
    reading = make(ac_emulator, clock, page_size=4).read_contacts(Cursor())
    pages = [next(reading)]
    ac_emulator.inject(fault)
    pages.extend(reading)
    assert [r.remote_id for p in pages for r in p.records] == ids


# -- writing ----------------------------------------------------------------------------------
def test_a_few_creates_go_through_sync_with_consent_tags_and_fields(ac_emulator, clock):
    adapter = make(ac_emulator, clock)
    results = adapter.write_contacts(
        [
            req(
                0,
                "ana@example.com",
                firstName="Ana",
                listStatus="1",
                tags=["vip"],
                fields={"COMPANY": "Acme", "NOPE": "x"},
            ),
            req(1, "bo@example.com", listStatus="2"),
            req(2, "not-an-address"),
        ]
    )
    assert [r.ok for r in results] == [True, True, False] and results[2].error == "email_invalid"
    ana = ac_emulator.find("ana@example.com")
    assert ana["id"] == results[0].remote_id and ana["listStatus"] == "1"
    assert ana["tags"] == ["vip"] and ana["fields"] == {"COMPANY": "Acme"}
    assert ac_emulator.find("bo@example.com")["listStatus"] == "2"
    assert ac_emulator.call_count("POST", "/contact/sync") == 3 and ac_emulator.call_count("POST", "/import") == 0


def test_ten_or_more_creates_go_through_one_bulk_import(ac_emulator, clock):
    ac_emulator.seed(2)
    ac_emulator.unsubscribe("contact1@example.com")
    adapter = make(ac_emulator, clock)
    batch = [req(i, f"new{i}@example.com", firstName=f"N{i}", listStatus="1", tags=["imported"]) for i in range(12)]
    batch.append(req(12, "contact1@example.com", listStatus="1"))  # an upsert of someone who unsubscribed
    batch.append(req(13, "broken"))
    results = adapter.write_contacts(batch)
    assert [r.ref for r in results] == [r.ref for r in batch]
    assert all(r.ok for r in results[:13]) and not results[13].ok
    for r, w in zip(results[:13], batch[:13], strict=True):
        assert ac_emulator.find(w.email)["id"] == r.remote_id
    assert ac_emulator.find("new3@example.com")["tags"] == ["imported"]
    assert ac_emulator.find("contact1@example.com")["listStatus"] == "2"  # never re-subscribed
    assert ac_emulator.call_count("POST", "/import/bulk_import") == 1
    assert ac_emulator.call_count("POST", "/contact/sync") == 0


def test_updates_sync_and_never_resubscribe_an_opted_out_person(ac_emulator, clock):
    ids = ac_emulator.seed(1)
    ac_emulator.unsubscribe("contact0@example.com")
    adapter = make(ac_emulator, clock)
    [result] = adapter.write_contacts(
        [req(0, "contact0@example.com", remote_id=ids[0], firstName="New", listStatus="1")]
    )
    assert result.ok and result.remote_id == ids[0]
    found = ac_emulator.find("contact0@example.com")
    assert found["firstName"] == "New" and found["listStatus"] == "2"


def test_tags_become_exactly_the_ones_written(ac_emulator, clock):
    ids = ac_emulator.seed(1)  # customer + vip
    adapter = make(ac_emulator, clock)
    adapter.write_contacts([req(0, "contact0@example.com", remote_id=ids[0], tags=["vip", "gold"])])
    assert ac_emulator.find("contact0@example.com")["tags"] == ["gold", "vip"]
    adapter.write_contacts([req(0, "contact0@example.com", remote_id=ids[0], tags=[])])
    assert ac_emulator.find("contact0@example.com")["tags"] == []


def test_an_address_change_updates_the_same_contact(ac_emulator, clock):
    ids = ac_emulator.seed(1)
    adapter = make(ac_emulator, clock)
    [result] = adapter.write_contacts([req(0, "moved@example.com", remote_id=ids[0], previous="contact0@example.com")])
    assert result.ok and result.remote_id == ids[0]
    assert ac_emulator.find("moved@example.com")["id"] == ids[0] and ac_emulator.count() == 1


@pytest.mark.parametrize(
    "fault",
    [
        Fault(429, {"message": "slow down"}, {"Retry-After": "0"}, method="POST"),
        Fault(503, None, method="POST"),
        Fault(400, {"success": 0, "message": "Rate limit exceeded.", "failureReasons": []}, path_pattern="bulk_import"),
        Fault(DROP, path_pattern="/contactLists"),  # after the first contact's sync
        Fault(503, {"message": "unavailable"}, path_pattern="/import/info"),  # while polling the import
    ],
)
def test_faults_mid_batch_are_retried(ac_emulator, clock, fault):
    adapter = make(ac_emulator, clock)
    small = [req(i, f"s{i}@example.com", listStatus="1") for i in range(3)]
    ac_emulator.inject(fault)
    results = adapter.write_contacts(small) + adapter.write_contacts([req(i, f"b{i}@example.com") for i in range(10)])
    assert all(r.ok for r in results) and ac_emulator.count() == 13
    assert all(ac_emulator.find(f"s{i}@example.com")["listStatus"] == "1" for i in range(3))
    assert sum(status >= 400 or status == 0 for _, _, status in ac_emulator.log) <= 1 and not ac_emulator._faults


def test_forget_deletes_the_contact(ac_emulator, clock):
    ids = ac_emulator.seed(2)
    adapter = make(ac_emulator, clock)
    adapter.erase_contact(remote_id=ids[0], email="contact0@example.com")
    adapter.erase_contact(remote_id=None, email="contact1@example.com")
    adapter.erase_contact(remote_id=ids[0], email="contact0@example.com")  # gone already: fine
    assert ac_emulator.count() == 0


def test_the_default_limiter_keeps_under_five_a_second(ac_emulator, clock):
    ac_emulator.rate_limit = 5
    ac_emulator.seed(30)
    adapter = make(ac_emulator, clock, page_size=4, rate_limit=None)  # the default
    _, records = read_all(adapter)
    assert len(records) == 30 and ac_emulator.rate_limited == 0


def test_a_full_import_batch_costs_one_import_and_a_few_reads(ac_emulator, clock):
    adapter = make(ac_emulator, clock)
    results = adapter.write_contacts([req(i, f"p{i}@example.com", listStatus="1") for i in range(250)])
    assert all(r.ok for r in results) and len({r.remote_id for r in results}) == 250
    assert ac_emulator.write_calls() == 1
    # the newest id before, one /import/info poll, three pages of new ids above it (no field values: no /fields)
    assert ac_emulator.read_calls() == 5


def test_a_backfill_does_not_report_old_gaps_as_deletions(ac_emulator, clock):
    ids = ac_emulator.seed(6)
    ac_emulator.delete(ids[2])
    adapter = make(ac_emulator, clock, page_size=4)
    pages, records = read_all(adapter)
    assert not any(r.deleted for r in records)
    clock.advance(25 * 3600)
    _, later = read_all(adapter, pages[-1].next_cursor)
    assert not any(r.deleted for r in later)  # deleted before crmsync ever saw it: not news


def test_an_opt_out_that_leaves_udate_alone_is_caught_by_the_daily_sweep(ac_emulator, clock):
    ac_emulator.seed(3)
    adapter = make(ac_emulator, clock)
    cursor = read_all(adapter)[0][-1].next_cursor
    clock.advance(600)
    ac_emulator.unsubscribe("contact1@example.com", touch=False)
    pages, records = read_all(adapter, cursor)
    assert records == []  # polling cannot see it
    clock.advance(24 * 3600)
    _, swept = read_all(adapter, pages[-1].next_cursor)
    statuses = {r.data["email"]: r.data["listStatus"] for r in swept if not r.deleted}
    assert statuses["contact1@example.com"] == "2"


def test_an_opt_out_that_bumps_udate_is_read_by_the_next_poll(ac_emulator, clock):
    ac_emulator.seed(3)
    adapter = make(ac_emulator, clock)
    cursor = read_all(adapter)[0][-1].next_cursor
    clock.advance(600)
    ac_emulator.unsubscribe("contact1@example.com")
    _, records = read_all(adapter, cursor)
    assert [(r.data["email"], r.data["listStatus"]) for r in records] == [("contact1@example.com", "2")]
