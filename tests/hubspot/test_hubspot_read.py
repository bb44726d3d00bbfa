"""HubSpot adapter reads over real HTTP: backfill, incremental search windows, faults, limits, merges."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters._emulator import DROP, Fault
from adapters.base import Cursor
from adapters.errors import AuthError, QuotaExhausted, RetryableError
from adapters.hubspot import HubSpotAdapter

T0 = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
LIST = r"/crm/v3/objects/contacts$"
SEARCH = r"/search$"


def ids(pages):
    return [r.remote_id for p in pages for r in p.records]


def test_backfill_reads_every_contact_100_a_page_then_goes_incremental(hubspot_emulator, hubspot_adapter):
    seeded = hubspot_emulator.seed(250)
    before = dt.datetime.now(dt.UTC)
    pages = list(hubspot_adapter.read_contacts(Cursor()))
    assert [len(p.records) for p in pages] == [100, 100, 50]
    assert ids(pages) == seeded
    assert hubspot_emulator.call_count("GET", LIST) == 3
    final = pages[-1].next_cursor
    assert final.phase == "incremental"
    assert final.updated_after <= before - HubSpotAdapter.lookback + dt.timedelta(seconds=5)
    record = pages[0].records[0]
    assert record.updated_at.tzinfo is not None and record.data["properties"]["email"] == "contact0@example.com"


def test_backfill_resumes_from_a_stored_page_cursor(hubspot_emulator, hubspot_adapter):
    seeded = hubspot_emulator.seed(250)
    first = next(iter(hubspot_adapter.read_contacts(Cursor())))
    stored = Cursor.from_json(first.next_cursor.to_json())
    rest = list(hubspot_adapter.read_contacts(stored))
    assert ids([first]) + ids(rest) == seeded
    assert rest[-1].next_cursor.updated_after == dt.datetime.fromisoformat(
        first.next_cursor.extra["backfill_started"]) - HubSpotAdapter.lookback


def test_the_next_backfill_page_is_on_the_wire_while_the_caller_stores_this_one(hubspot_emulator, hubspot_adapter):
    seeded = hubspot_emulator.seed(250)
    reader = hubspot_adapter._reader
    asked: list[str | None] = []
    second_asked = threading.Event()
    list_page = reader._list_page

    def watched(after: str | None) -> object:
        asked.append(after)
        if len(asked) == 2:
            second_asked.set()
        return list_page(after)

    reader._list_page = watched
    pages = hubspot_adapter.read_contacts(Cursor())
    first = next(pages)
    # the caller has not asked for page 2 yet, and it is already being read (a wait, not a speed assertion)
    assert second_asked.wait(timeout=30)
    assert asked[1] == first.next_cursor.page_token
    rest = list(pages)
    assert ids([first, *rest]) == seeded and len(asked) == 3  # no call beyond the last page
    assert hubspot_emulator.call_count("GET", LIST) == 3


def test_a_failed_read_ahead_surfaces_at_the_page_it_was_for(hubspot_emulator, hubspot_adapter):
    hubspot_emulator.seed(250)
    pages = hubspot_adapter.read_contacts(Cursor())
    first = next(pages)
    assert len(first.records) == 100
    hubspot_emulator.inject(*[Fault(401, {"status": "error", "category": "INVALID_AUTHENTICATION"})] * 2)
    with pytest.raises(AuthError):  # page 2 or 3, whichever the fault met: never a page skipped
        for page in pages:
            assert len(page.records) == 100


def test_faults_in_the_middle_of_a_backfill_are_retried(hubspot_emulator, make_hubspot_adapter):
    seeded = hubspot_emulator.seed(300)
    sleeps: list[float] = []
    adapter = make_hubspot_adapter(sleeps=sleeps)
    pages = adapter.read_contacts(Cursor())
    got = ids([next(pages)])
    hubspot_emulator.inject(Fault(503, {"status": "error", "message": "down"}), Fault(DROP),
                            Fault(429, {"status": "error", "policyName": "TEN_SECONDLY_ROLLING", "errorType": "RATE_LIMIT"},
                                  headers={"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}))
    got += ids(list(pages))
    assert got == seeded
    assert len(sleeps) == 3 and 10.0 in sleeps  # the 429 waited the interval HubSpot named


def test_daily_limit_stops_without_spinning(hubspot_emulator, make_hubspot_adapter):
    sleeps: list[float] = []
    adapter = make_hubspot_adapter(sleeps=sleeps)
    hubspot_emulator.inject(Fault(429, {"status": "error", "message": "You have reached your daily limit.",
                                        "errorType": "RATE_LIMIT", "policyName": "DAILY"}))
    with pytest.raises(QuotaExhausted) as exc:
        list(adapter.read_contacts(Cursor()))
    assert sleeps == [] and hubspot_emulator.call_count() == 1
    assert "daily" in str(exc.value)


def test_retries_are_spent_then_raised(hubspot_emulator, make_hubspot_adapter):
    adapter = make_hubspot_adapter(attempts=2)
    hubspot_emulator.inject(Fault(502), Fault(502))
    with pytest.raises(RetryableError):
        list(adapter.read_contacts(Cursor()))


def test_bad_token_is_an_auth_error_without_the_token(hubspot_emulator):
    adapter = HubSpotAdapter(access_token="pat-wrong-token-123", base_url=hubspot_emulator.url, sleep=lambda s: None)
    with pytest.raises(AuthError) as exc:
        adapter.check()
    assert "pat-wrong-token-123" not in str(exc.value) + repr(adapter)


def test_the_real_limit_is_respected(hubspot_emulator, make_hubspot_adapter):
    hubspot_emulator.limits.burst, hubspot_emulator.limits.interval_s = 3, 0.5
    hubspot_emulator.seed(1000)
    adapter = make_hubspot_adapter(rate_limit="3/0.5s")
    assert len(ids(adapter.read_contacts(Cursor()))) == 1000
    assert all(status != 429 for _, _, status in hubspot_emulator.server.log)


def test_incremental_past_the_10000_cap_delivers_everything(hubspot_emulator, hubspot_adapter):
    seeded = hubspot_emulator.seed(12_000)
    for n, contact_id in enumerate(seeded):  # distinct times, a few shared
        hubspot_emulator.portal.contacts[contact_id].updated_ms = int(T0.timestamp() * 1000) + 1000 + n // 3
    cursor = Cursor(phase="incremental", updated_after=T0)
    pages = list(hubspot_adapter.read_contacts(cursor))
    got = ids(pages)
    assert sorted(got) == sorted(seeded) and len(got) == 12_000
    assert not any(status == 400 for _, _, status in hubspot_emulator.server.log)
    assert hubspot_emulator.call_count("POST", SEARCH) <= 12_000 // 200 + 2
    final = pages[-1].next_cursor  # read to the end: the portal's clock at the read's start (never behind)
    assert final.updated_after >= T0 + dt.timedelta(milliseconds=1000 + 11_999 // 3)


def test_thousands_sharing_one_timestamp_end_without_a_loop(hubspot_emulator, hubspot_adapter):
    seeded = hubspot_emulator.seed(1_050, modified_at=T0 + dt.timedelta(seconds=1))
    later = hubspot_emulator.seed(30, prefix="later", modified_at=T0 + dt.timedelta(seconds=2))
    pages = list(hubspot_adapter.read_contacts(Cursor(phase="incremental", updated_after=T0)))
    got = ids(pages)
    assert sorted(got) == sorted(seeded + later) and len(got) == len(set(got))
    assert hubspot_emulator.call_count("POST", SEARCH) <= 10


def test_a_stored_incremental_cursor_never_skips(hubspot_emulator, hubspot_adapter):
    seeded = hubspot_emulator.seed(450)
    for n, contact_id in enumerate(seeded):
        hubspot_emulator.portal.contacts[contact_id].updated_ms = int(T0.timestamp() * 1000) + 10 * (n // 50)
    start = Cursor(phase="incremental", updated_after=T0 - dt.timedelta(hours=1))
    first = next(iter(hubspot_adapter.read_contacts(start)))
    stored = Cursor.from_json(first.next_cursor.to_json())
    assert stored.boundary_ids  # ids taken at exactly the mark
    rest = ids(list(hubspot_adapter.read_contacts(stored)))
    assert set(ids([first])) | set(rest) == set(seeded)
    assert not set(rest) & stored.boundary_ids  # the boundary ids are not delivered twice


def test_edits_after_the_cursor_come_back_with_their_new_time(hubspot_emulator, hubspot_adapter):
    a, b, _ = hubspot_emulator.seed(3, modified_at=T0)
    hubspot_emulator.edit(a, firstname="Changed", at=T0 + dt.timedelta(hours=1))
    hubspot_emulator.edit(b, firstname="Also", at=T0 + dt.timedelta(hours=1, seconds=1))
    cursor = Cursor(phase="incremental", updated_after=T0 + dt.timedelta(minutes=30))
    pages = list(hubspot_adapter.read_contacts(cursor))
    assert ids(pages) == [a, b]
    assert pages[-1].next_cursor.updated_after >= T0 + dt.timedelta(hours=1, seconds=1)
    assert pages[-1].records[0].data["properties"]["firstname"] == "Changed"
    again = list(hubspot_adapter.read_contacts(pages[-1].next_cursor))
    assert ids(again) == []  # read to the end at the portal's clock, long after these edits


def test_search_lag_is_covered_by_the_lookback(hubspot_emulator, hubspot_adapter):
    hubspot_emulator.seed(5)
    cursor = list(hubspot_adapter.read_contacts(Cursor()))[-1].next_cursor
    hubspot_emulator.search_lag_s = 2.0
    hubspot_emulator.edit("1001", firstname="Lagging")
    assert "1001" not in ids(hubspot_adapter.read_contacts(cursor))  # not yet in the index
    hubspot_emulator.search_lag_s = 0.0
    assert "1001" in ids(hubspot_adapter.read_contacts(cursor))


def test_merges_carry_merged_ids_and_old_ids_fetch_the_survivor(hubspot_emulator, hubspot_adapter):
    a, b, c = hubspot_emulator.seed(3)
    survivor = hubspot_emulator.merge(a, b)
    records = {r.remote_id: r for r in
               (r for p in hubspot_adapter.read_contacts(Cursor()) for r in p.records)}
    assert set(records) == {c, survivor}
    assert set(records[survivor].merged_ids) == {a, b}
    fetched = hubspot_adapter.fetch_contacts([b, c, "999999"])
    by_id = {r.remote_id: r for r in fetched}
    assert b in by_id[survivor].merged_ids and by_id[c].deleted is False
    assert by_id["999999"].deleted is True


def test_search_429_secondly_waits_and_goes_on(hubspot_emulator, make_hubspot_adapter):
    hubspot_emulator.seed(3, modified_at=T0)
    sleeps: list[float] = []
    adapter = make_hubspot_adapter(sleeps=sleeps)
    hubspot_emulator.inject(Fault(429, {"status": "error", "message": "You have reached your secondly limit.",
                                        "errorType": "RATE_LIMIT"}, path_pattern=SEARCH))
    assert len(ids(adapter.read_contacts(Cursor(phase="incremental", updated_after=T0)))) == 3
    assert sleeps == [1.0]


def test_opt_outs_are_read_from_preferences_when_the_property_is_missing(hubspot_emulator, hubspot_adapter):
    a, b = hubspot_emulator.seed(2, prefix="c")
    hubspot_emulator.portal.contacts[b].props["hs_email_optout"] = "false"
    hubspot_emulator.unsubscribe("c0@example.com")
    hubspot_emulator.hidden_properties = {"hs_email_optout"}
    records = {r.remote_id: r for p in hubspot_adapter.read_contacts(Cursor()) for r in p.records}
    assert records[a].data["properties"]["hs_email_optout"] == "true"
    assert records[b].data["properties"]["hs_email_optout"] == "false"
    hubspot_emulator.reset_counters()
    hubspot_emulator.inject(*[Fault(404, {"status": "error"}, path_pattern="/v4/")] * 2)  # no v4: v3 statuses
    other = make_adapter_like(hubspot_emulator)
    (record,) = [r for r in other.fetch_contacts([a])]
    assert record.data["properties"]["hs_email_optout"] == "true"
    assert hubspot_emulator.call_count(pattern="v3/status") == 1


def test_enterprise_reads_opt_outs_in_one_batch_a_page():
    from adapters.hubspot.emulator import HubSpotEmulator
    with HubSpotEmulator(burst=100_000, search_per_s=100_000, enterprise=True) as emu:
        emu.seed(150)
        emu.unsubscribe("contact3@example.com")
        emu.hidden_properties = {"hs_email_optout"}
        adapter = make_adapter_like(emu)
        records = [r for p in adapter.read_contacts(Cursor()) for r in p.records]
        assert [r.data["properties"]["hs_email_optout"] for r in records].count("true") == sum(
            1 for c in emu.portal.contacts.values() if c.props.get("hs_email_optout") == "true")
        assert emu.call_count(pattern="unsubscribe-all/read") == 2


def make_adapter_like(emu, **kwargs):
    options = emu.sandbox_options()
    return HubSpotAdapter(access_token=options["access_token"], base_url=options["base_url"],
                          rate_limit="100000/10s", search_rate_limit="100000/1s", sleep=lambda s: None, **kwargs)


STEP_MS = 10 * 60 * 1000  # ten minutes apart: the 5-minute lookback overlaps only one step


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(times=st.lists(st.integers(0, 6), max_size=40), page=st.integers(1, 7), resume_at=st.integers(0, 50),
       edits=st.lists(st.integers(0, 39), max_size=4))
def test_incremental_windows_never_skip_or_loop(_hubspot_server, times, page, resume_at, edits):
    emu = _hubspot_server
    emu.reset()
    seeded = emu.seed(len(times))
    base = int(T0.timestamp() * 1000)
    for contact_id, t in zip(seeded, times):
        emu.portal.contacts[contact_id].updated_ms = base + STEP_MS * (t + 1)
    adapter = make_adapter_like(emu, search_page=page)
    pages, delivered = [], []
    for n, p in enumerate(adapter.read_contacts(Cursor(phase="incremental", updated_after=T0))):
        pages.append(p)
        delivered += [r.remote_id for r in p.records]
        if n == 1:  # users edit while the scan runs: those records move to the end, nothing shifts out
            for i in edits:
                if i < len(seeded):
                    emu.edit(seeded[i], firstname="Edited")
        assert n < 4 * len(times) + 10, "the scan does not end"
    assert set(delivered) == set(seeded)
    if not edits:
        assert len(delivered) == len(set(delivered))
    marks = [p.next_cursor.updated_after for p in pages]
    assert marks == sorted(marks)  # the cursor never goes back
    k = min(resume_at, len(pages) - 1)
    stored = Cursor.from_json(pages[k].next_cursor.to_json())
    before = {r.remote_id for p in pages[: k + 1] for r in p.records}
    after = {r.remote_id for p in adapter.read_contacts(stored) for r in p.records}
    assert before | after == set(seeded)


def test_a_search_that_makes_no_progress_stops(hubspot_emulator):
    from adapters.errors import FatalProviderError
    adapter = make_adapter_like(hubspot_emulator, search_page=2)
    rows = {"total": 2, "results": [{"id": "1", "properties": {}}, {"id": "2", "properties": {}}]}
    hubspot_emulator.inject(Fault(200, rows, path_pattern=SEARCH))
    with pytest.raises(FatalProviderError, match="without progress"):
        list(adapter.read_contacts(Cursor(phase="incremental", updated_after=T0)))


def test_an_idle_cycle_does_not_read_the_last_window_again(hubspot_emulator, hubspot_adapter):
    hubspot_emulator.seed(300, modified_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    changed = hubspot_emulator.seed(250, prefix="changed")  # changed just now: read, and read once more
    cursor = Cursor(phase="incremental", updated_after=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    pages = list(hubspot_adapter.read_contacts(cursor))
    assert set(ids(pages)) == set(changed)
    hubspot_emulator.advance(600)  # ten quiet minutes, longer than the lookback
    once_more = list(hubspot_adapter.read_contacts(pages[-1].next_cursor))  # the lookback overlap, once
    hubspot_emulator.advance(600)
    hubspot_emulator.reset_counters()
    quiet = list(hubspot_adapter.read_contacts(once_more[-1].next_cursor))
    assert ids(quiet) == [] and hubspot_emulator.call_count("POST", SEARCH) == 1


@pytest.mark.parametrize("word", ["UNSUBSCRIBED", "NOT_SUBSCRIBED"])
def test_a_v4_opt_out_reads_in_v4s_word_and_in_v3s(hubspot_emulator, hubspot_adapter, word):
    # v4's PublicWideStatus.status is NOT_SPECIFIED / SUBSCRIBED / UNSUBSCRIBED; v3 says NOT_SUBSCRIBED: either opts out
    (a,) = hubspot_emulator.seed(1, prefix="w")
    hubspot_emulator.portal.contacts[a].props["hs_email_optout"] = "false"
    hubspot_emulator.hidden_properties = {"hs_email_optout"}
    answer = {"status": "COMPLETE", "startedAt": "2024-05-01T10:00:00.000Z", "completedAt": "2024-05-01T10:00:00.001Z",
              "results": [{"subscriberIdString": "w0@example.com", "channel": "EMAIL", "status": word,
                           "wideStatusType": "PORTAL_WIDE", "timestamp": "2024-05-01T10:00:00.000Z"}]}
    hubspot_emulator.inject(Fault(200, answer, method="GET", path_pattern="/v4/statuses/.+/unsubscribe-all"))
    (record,) = hubspot_adapter.fetch_contacts([a])
    assert record.data["properties"]["hs_email_optout"] == "true"


def test_the_emulators_v4_answers_use_v4s_words(hubspot_emulator, hubspot_adapter):
    hubspot_emulator.seed(1, prefix="v")
    hubspot_emulator.unsubscribe("v0@example.com")
    _, wide = hubspot_adapter.client.raw("GET", "/communication-preferences/v4/statuses/{email}/unsubscribe-all",
                                         path_params={"email": "v0@example.com"}, query=(("channel", "EMAIL"),))
    _, each = hubspot_adapter.client.raw("GET", "/communication-preferences/v4/statuses/{email}",
                                         path_params={"email": "v0@example.com"}, query=(("channel", "EMAIL"),))
    assert {r["status"] for r in wide["results"]} == {"UNSUBSCRIBED"}
    assert {r["status"] for r in each["results"]} == {"UNSUBSCRIBED"}


def test_opaque_after_tokens_page_the_list_and_search_starts_without_one(hubspot_emulator, hubspot_adapter):
    # the spec's `after` is an opaque token (its example: "NTI1Cg%3D%3D"); "0" is not one a portal must take
    hubspot_emulator.opaque_cursors = True
    seeded = hubspot_emulator.seed(250)
    pages = list(hubspot_adapter.read_contacts(Cursor()))
    assert ids(pages) == seeded
    assert all(p.next_cursor.page_token is None or not p.next_cursor.page_token.isdigit() for p in pages)
    hubspot_emulator.touch(seeded[:30], at=T0 + dt.timedelta(minutes=10))
    changed = ids(hubspot_adapter.read_contacts(Cursor(phase="incremental", updated_after=T0)))
    assert set(seeded[:30]) <= set(changed)


@pytest.mark.parametrize("spread", [True, False], ids=["distinct-times", "one-instant"])
def test_short_search_pages_with_a_next_page_are_not_the_end(hubspot_emulator, hubspot_adapter, spread):
    # `limit` is a maximum: a portal may serve fewer and say so with paging.next
    seeded = hubspot_emulator.seed(450, modified_at=T0 + dt.timedelta(minutes=1))
    if spread:
        for n, contact_id in enumerate(seeded):
            hubspot_emulator.portal.contacts[contact_id].updated_ms = int(T0.timestamp() * 1000) + 60_000 + n
    hubspot_emulator.search_page_cap = 70
    pages = list(hubspot_adapter.read_contacts(Cursor(phase="incremental", updated_after=T0)))
    assert set(ids(pages)) == set(seeded) and len(ids(pages)) == len(seeded)
    assert hubspot_emulator.call_count("POST", SEARCH) <= 450 // 70 + 4


@pytest.mark.parametrize("style", ["any", "repeated", "first", "last"])
def test_every_reading_of_properties_in_a_query_gets_every_property(hubspot_emulator, hubspot_adapter, style):
    # spec: properties is `explode: true` (one name a value); its description: "a comma separated list"
    hubspot_emulator.query_style = style
    (a,) = hubspot_emulator.seed(1)
    hubspot_emulator.edit(a, phone="+12025550123", company="Acme")
    (listed,) = [r for p in hubspot_adapter.read_contacts(Cursor()) for r in p.records]
    fetched = hubspot_adapter._fetch_one(a)
    for record in (listed, fetched):
        props = record.data["properties"]
        assert props["email"] == "contact0@example.com" and props["phone"] == "+12025550123"
        assert props["company"] == "Acme" and "hs_email_optout" in props and "lifecyclestage" in props


def test_a_ten_secondly_429_without_headers_waits_the_window(hubspot_emulator, make_hubspot_adapter):
    # the rate-limit headers are not promised on a 429; the policy still names a 10-second rolling window
    hubspot_emulator.seed(3)
    sleeps: list[float] = []
    adapter = make_hubspot_adapter(sleeps=sleeps)
    body = {"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "errorType": "RATE_LIMIT",
            "policyName": "TEN_SECONDLY_ROLLING", "correlationId": "c0ffee00-0000-4000-8000-000000000000"}
    hubspot_emulator.inject(Fault(429, body), Fault(429, {**body, "policyName": None}))
    assert len(ids(adapter.read_contacts(Cursor()))) == 3
    assert sleeps == [10.0, 10.0]


def test_a_daily_429_without_a_policy_name_still_stops(hubspot_emulator, make_hubspot_adapter):
    sleeps: list[float] = []
    adapter = make_hubspot_adapter(sleeps=sleeps)
    hubspot_emulator.inject(Fault(429, {"status": "error", "message": "You have reached your daily limit.",
                                        "errorType": "RATE_LIMIT"}))
    with pytest.raises(QuotaExhausted):
        list(adapter.read_contacts(Cursor()))
    assert sleeps == [] and hubspot_emulator.call_count() == 1


def test_a_record_without_an_id_is_an_unreadable_answer_not_a_contact_called_none(hubspot_emulator, hubspot_adapter):
    from adapters.hubspot._read import to_record
    assert to_record({"properties": {"hs_object_id": "7"}}).remote_id == "7"
    assert to_record({"id": "8", "properties": None}).remote_id == "8"  # null properties: still a record
    hubspot_emulator.inject(Fault(200, {"results": [{"properties": {"email": "x@example.com"}}]}, method="GET"))
    with pytest.raises(ValueError, match="without an id"):
        list(hubspot_adapter.read_contacts(Cursor()))


def test_an_address_v3_does_not_know_reads_as_not_opted_out_not_as_a_failed_read(hubspot_emulator, hubspot_adapter):
    a, b = hubspot_emulator.seed(2, prefix="n")
    hubspot_emulator.unsubscribe("n1@example.com")
    hubspot_emulator.hidden_properties = {"hs_email_optout"}
    hubspot_emulator.inject(*[Fault(404, {"status": "error"}, path_pattern="/v4/")] * 2,  # no v4 on this portal
                            Fault(404, {"status": "error", "category": "OBJECT_NOT_FOUND"}, path_pattern="v3/status"))
    records = {r.remote_id: r for r in hubspot_adapter.fetch_contacts([a, b])}
    assert records[a].data["properties"]["hs_email_optout"] == "false"
    assert records[b].data["properties"]["hs_email_optout"] == "true"
