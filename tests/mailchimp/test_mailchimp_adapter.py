"""The Mailchimp adapter against its emulator over real HTTP: transport, reading, writing, consent, removal."""

from __future__ import annotations

import threading

import pytest

from adapters._emulator import DROP, Fault
from adapters.base import Cursor, WriteRequest
from adapters.errors import AuthError, RateLimited
from adapters.mailchimp import MailchimpAdapter, create_adapter
from adapters.mailchimp._wire import api_root, data_centre, subscriber_hash
from adapters.mailchimp.emulator import MailchimpEmulator
from adapters.secret import Secret
from mappings.contact import Consent
from mappings.mapper import build_mapping


def make(emulator: MailchimpEmulator, **options) -> MailchimpAdapter:
    return MailchimpAdapter(
        api_key=Secret(emulator.api_key),
        list_id=emulator.list_id,
        base_url=emulator.api_url,
        sleep=lambda s: None,
        batch_poll_s=0.0,
        **options,
    )


def request(i: int, email: str, *, status: str | None = None, tags=None, remote_id=None, previous=None, **merge):
    fields = {"email_address": email, "merge_fields": merge, "status": status}
    if tags is not None:
        fields["tags"] = sorted(tags)
    return WriteRequest(ref=f"r{i}", remote_id=remote_id, email=email, previous_email=previous, fields=fields)


def read_all(adapter: MailchimpAdapter, cursor: Cursor | None = None):
    pages = list(adapter.read_contacts(cursor or Cursor()))
    return pages, [r for p in pages for r in p.records]


# -- 1. transport -----------------------------------------------------------------------------
def test_data_centre_comes_from_the_key_suffix_and_base_url_overrides_it():
    assert data_centre("0123abcd-us21") == "us21"
    assert api_root("0123abcd-us21", None) == "https://us21.api.mailchimp.com/3.0"
    assert api_root("0123abcd-us21", "http://127.0.0.1:9/") == "http://127.0.0.1:9/3.0"
    assert api_root("0123abcd-us21", "http://127.0.0.1:9/3.0/") == "http://127.0.0.1:9/3.0"
    with pytest.raises(ValueError):
        data_centre("no-suffix-")


def test_create_adapter_reads_config_options_and_hides_the_key(mailchimp_emulator):
    options = {
        **mailchimp_emulator.sandbox_options(),
        "api_key": Secret(mailchimp_emulator.api_key),
        "webhook_secret": Secret("s"),
        "merge_fields": {"score": "COMPANY"},
    }
    adapter = create_adapter("mc", options)
    adapter.check()
    assert mailchimp_emulator.api_key not in repr(adapter) and adapter.name == "mc"
    bad = create_adapter("mc", {**options, "merge_fields": {"score": "NOPE"}})
    with pytest.raises(Exception, match="NOPE"):
        bad.check()


def test_wrong_key_raises_auth_error_without_the_key(mailchimp_emulator):
    adapter = MailchimpAdapter(
        api_key=Secret("ffff0000ffff0000-us1"),
        list_id=mailchimp_emulator.list_id,
        base_url=mailchimp_emulator.url,
        sleep=lambda s: None,
    )  # bare host: /3.0 added
    with pytest.raises(AuthError) as err:
        adapter.check()
    assert "ffff0000ffff0000" not in str(err.value)


@pytest.mark.parametrize("status", [403, 429])
def test_bodiless_throttle_is_retried(mailchimp_emulator, status):
    mailchimp_emulator.seed(3)
    mailchimp_emulator.inject(Fault(status, None, method="GET", path_pattern="/members"))
    _, records = read_all(make(mailchimp_emulator))
    assert len(records) == 3


def test_403_with_a_body_is_an_auth_error_and_endless_throttle_gives_up(mailchimp_emulator):
    mailchimp_emulator.inject(Fault(403, {"title": "Forbidden", "status": 403}, path_pattern="/ping"))
    with pytest.raises(AuthError):
        make(mailchimp_emulator).check()
    mailchimp_emulator.inject(*[Fault(429, None, path_pattern="/ping") for _ in range(5)])
    with pytest.raises(RateLimited):
        make(mailchimp_emulator).check()


def test_never_more_than_ten_connections(mailchimp_emulator):
    ids = mailchimp_emulator.seed(30)
    mailchimp_emulator.latency_s = 0.05
    adapter = make(mailchimp_emulator)
    threads = [threading.Thread(target=adapter.fetch_contacts, args=(ids[i::20],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mailchimp_emulator.peak_inflight <= 10
    assert mailchimp_emulator.connection_limit_hits == 0


# -- 2. reading -------------------------------------------------------------------------------
def test_backfill_reads_1000_a_page_and_many_share_a_timestamp(mailchimp_emulator):
    ids = mailchimp_emulator.seed(2300)  # all in one second
    adapter = make(mailchimp_emulator)
    pages, records = read_all(adapter)
    assert sorted(r.remote_id for r in records) == sorted(ids)
    listing = mailchimp_emulator.log
    counts = [path for method, path, _ in listing if method == "GET" and path.endswith("/members")]
    assert len(counts) <= 6  # 3 pages of 1000 plus the steps through one shared second
    assert pages[-1].next_cursor.phase == "incremental"


def test_incremental_reads_only_changes_and_never_skips_at_a_shared_second(mailchimp_emulator, clock):
    ids = mailchimp_emulator.seed(12)
    adapter = make(mailchimp_emulator, page_size=4)
    clock.advance(600)  # the list was filled well before crmsync first reads it
    pages, _ = read_all(adapter)
    cursor = pages[-1].next_cursor
    clock.advance(600)
    for i in range(9):  # nine edits in the same second, more than two pages
        mailchimp_emulator.edit(ids[i], FNAME=f"E{i}")
    clock.advance(1)  # the read comes a second later: a read within that second re-delivers its members
    pages, records = read_all(adapter, cursor)
    assert {r.remote_id for r in records} == set(ids[:9])
    assert all(r.data["merge_fields"]["FNAME"].startswith("E") for r in records)
    # an idle cycle: nothing new (an overlap of what was read is allowed), and the next one reads nothing
    idle = list(adapter.read_contacts(pages[-1].next_cursor))
    assert {r.remote_id for p in idle for r in p.records} <= set(ids[:9])
    clock.advance(600)
    later = list(adapter.read_contacts(idle[-1].next_cursor))  # its cursor was taken inside the lookback
    assert {r.remote_id for p in later for r in p.records} <= set(ids[:9])
    clock.advance(600)
    assert [r for p in adapter.read_contacts(later[-1].next_cursor) for r in p.records] == []


def test_edits_during_a_backfill_skip_no_one(mailchimp_emulator, clock):
    ids = mailchimp_emulator.seed(20)
    adapter = make(mailchimp_emulator, page_size=5)
    seen: list[str] = []
    for n, page in enumerate(adapter.read_contacts(Cursor())):
        seen += [r.remote_id for r in page.records]
        clock.advance(1)
        mailchimp_emulator.edit(ids[n], FNAME="moved")  # moves to the end of the listing, shifting others
    assert set(seen) == set(ids)


def test_members_archived_since_the_cursor_come_back_deleted(mailchimp_emulator, clock):
    ids = mailchimp_emulator.seed(6)
    adapter = make(mailchimp_emulator, page_size=2)
    clock.advance(600)  # the list was filled well before crmsync first reads it
    pages, _ = read_all(adapter)
    clock.advance(600)
    for member_id in ids[:3]:
        mailchimp_emulator.delete(member_id)
    mailchimp_emulator.edit(ids[4], FNAME="Kept")
    pages, records = read_all(adapter, pages[-1].next_cursor)
    assert {r.remote_id: r.deleted for r in records} == {ids[0]: True, ids[1]: True, ids[2]: True, ids[4]: False}
    # resuming inside the archived pass (a cycle cut short there) reads the rest of it, then what changed since,
    # as any cycle does: a member who opted back in meanwhile is read before crmsync pushes to them
    middle = Cursor.from_json(pages[-2].next_cursor.to_json())
    clock.advance(5)
    mailchimp_emulator.edit(ids[5], FNAME="Later")
    rest = list(adapter.read_contacts(middle))
    read = {r.remote_id: r.deleted for p in rest for r in p.records}
    assert {i for i, deleted in read.items() if deleted} <= {ids[0], ids[1], ids[2]}
    assert {r.remote_id for p in pages[-1:] for r in p.records} <= set(read)
    assert read[ids[5]] is False
    assert rest[-1].next_cursor.page_token is None and rest[-1].next_cursor.updated_after is not None
    assert rest[-1].next_cursor.updated_after >= pages[-1].next_cursor.updated_after
    # a backfill copies contacts, not archived members
    assert all(not r.deleted for r in read_all(adapter)[1])


def test_records_map_to_canonical_contacts(mailchimp_emulator):
    mailchimp_emulator.seed(8)
    mapping = build_mapping("mailchimp")
    _, records = read_all(make(mailchimp_emulator))
    contacts = {mapping.to_canonical(r.data)["email"]: mapping.to_canonical(r.data) for r in records}
    zero = contacts["contact0@example.com"]
    assert zero["first_name"] == "Ana" and zero["company"] == "Acme Ltd" and zero["tags"] == {"customer", "vip"}
    assert zero["city"] == "London" and zero["consent"] is Consent.SUBSCRIBED
    assert contacts["contact7@example.com"]["consent"] is Consent.UNSUBSCRIBED
    assert all(r.updated_at is not None and r.updated_at.tzinfo for r in records)


def test_archived_members_fetch_as_deleted(mailchimp_emulator):
    ids = mailchimp_emulator.seed(2)
    mailchimp_emulator.delete(ids[0])
    adapter = make(mailchimp_emulator)
    fetched = adapter.fetch_contacts([ids[0], ids[1], "0" * 32])
    assert [r.deleted for r in fetched] == [True, False, True]


# -- 3. writing -------------------------------------------------------------------------------
def test_500_new_members_in_one_call_with_their_tags(mailchimp_emulator):
    adapter = make(mailchimp_emulator)
    reqs = [request(i, f"Person{i}@Example.com", tags={"vip"} if i % 2 else set(), FNAME=f"P{i}") for i in range(500)]
    results = adapter.write_contacts(reqs)
    assert all(r.ok for r in results) and [r.ref for r in results] == [q.ref for q in reqs]
    # linked by the member's contact_id, which an address change keeps (the hash is the address's MD5)
    assert results[3].remote_id == mailchimp_emulator.member("person3@example.com")["contact_id"]
    assert results[3].remote_id != subscriber_hash("person3@example.com")
    assert mailchimp_emulator.write_calls() == 1
    assert [t["name"] for t in mailchimp_emulator.member(results[3].remote_id)["tags"]] == ["vip"]
    with pytest.raises(ValueError):
        adapter.write_contacts([request(i, f"x{i}@example.com") for i in range(adapter.max_batch + 1)])


def test_a_thousand_updates_are_one_batches_job_and_creates_stay_500_a_call(mailchimp_emulator):
    # /batches takes any number of operations; only batch subscribe is capped at 500 members a call
    ids = mailchimp_emulator.seed(1_000)
    mailchimp_emulator.batch_polls_before_finished = 1
    adapter = make(mailchimp_emulator)
    assert adapter.max_batch >= 1_000
    mailchimp_emulator.reset_counters()
    updates = [request(i, f"contact{i}@example.com", remote_id=ids[i], LNAME="Once") for i in range(1_000)]
    results = adapter.write_contacts(updates)
    assert all(r.ok for r in results) and [r.remote_id for r in results] == ids
    assert mailchimp_emulator.call_count("POST", "batches") == 1  # was two: a job per 500
    assert mailchimp_emulator.call_count("GET", "batches") == 2  # one job's polls (was two jobs' four)
    assert mailchimp_emulator.write_calls() == 1
    assert mailchimp_emulator.member(ids[999])["merge_fields"]["LNAME"] == "Once"
    mailchimp_emulator.reset_counters()
    creates = [request(i, f"new{i}@example.com", status="subscribed") for i in range(1_000)]
    assert all(r.ok for r in adapter.write_contacts(creates))
    assert mailchimp_emulator.write_calls() == 2  # two batch subscribes of 500, the emulator's cap as Mailchimp's
    assert len(mailchimp_emulator.members()) == 2_000
    mailchimp_emulator.reset_counters()
    opt_outs = [request(i, f"new{i}@example.com", status="unsubscribed") for i in range(1_000)]
    assert all(r.ok for r in adapter.write_contacts(opt_outs))
    assert mailchimp_emulator.call_count("POST", "batches") == 0
    assert mailchimp_emulator.write_calls() == 4  # the create pass finds them (2 calls), then the opt-outs (2)
    assert mailchimp_emulator.member("new999@example.com")["status"] == "unsubscribed"


def test_a_create_at_subscribed_reports_the_opt_in_stamp_mailchimp_gave_it(mailchimp_emulator):
    # Mailchimp stamps timestamp_opt on any change to subscribed, crmsync's own create included: the engine keeps
    # that stamp in the link's base so it never reads it back as the person's confirmation
    def stamp(result):  # the opt-in time in the record the write reports it created
        return (result.created or {}).get("timestamp_opt") or None

    seeded = mailchimp_emulator.seed(1)[0]
    adapter = make(mailchimp_emulator)
    results = adapter.write_contacts([
        request(0, "new@example.com", status="subscribed"), request(1, "pending@example.com", status="pending"),
        request(2, "contact0@example.com", remote_id=seeded, status="subscribed", FNAME="Known"),
        request(3, "exists@example.com"),
    ])
    assert all(r.ok for r in results)
    assert stamp(results[0]) == mailchimp_emulator.member("new@example.com")["timestamp_opt"] != ""
    assert [stamp(r) for r in results[1:]] == [None, None, None]  # pending; an update; new_member_status
    mailchimp_emulator.subscribe("later@example.com")
    again = adapter.write_contacts([request(0, "later@example.com", status="subscribed", FNAME="Signed up")])
    assert again[0].ok and stamp(again[0]) is None  # it existed: its stamp is the person's own
    subscribing = make(mailchimp_emulator, new_member_status="subscribed")
    [made] = subscribing.write_contacts([request(0, "no.status@example.com")])
    assert stamp(made) == mailchimp_emulator.member("no.status@example.com")["timestamp_opt"] != ""


def test_per_member_errors_stay_with_their_member(mailchimp_emulator):
    adapter = make(mailchimp_emulator)
    results = adapter.write_contacts([request(0, "ok@example.com"), request(1, "broken@"), request(2, "b@example.com")])
    assert [r.ok for r in results] == [True, False, True]
    assert "broken" not in (results[1].error or "") and results[1].retryable is False


def test_updates_of_existing_members_go_in_bulk(mailchimp_emulator):
    ids = mailchimp_emulator.seed(30)
    adapter = make(mailchimp_emulator)
    mailchimp_emulator.reset_counters()
    reqs = [
        request(
            i,
            f"contact{i}@example.com",
            remote_id=ids[i],
            tags={"customer", "new"},
            LNAME="Changed",
            status="subscribed",
        )
        for i in range(30)
    ]
    results = adapter.write_contacts(reqs)
    assert all(r.ok for r in results)
    # linked members skip the create pass: one /batches job holds upserts and tags, never a call per member
    assert mailchimp_emulator.write_calls() == 1
    assert mailchimp_emulator.call_count("PUT") == 0 and mailchimp_emulator.call_count("POST", "tags") == 0
    member = mailchimp_emulator.member(ids[1])
    assert member["merge_fields"]["LNAME"] == "Changed" and {t["name"] for t in member["tags"]} >= {"new"}
    mailchimp_emulator.reset_counters()
    unlinked = [request(i, f"contact{i}@example.com", FNAME="Again") for i in range(30)]
    assert all(r.ok for r in adapter.write_contacts(unlinked))
    assert mailchimp_emulator.write_calls() == 2  # the create pass finds them, then one /batches job


def test_a_few_updates_go_out_as_direct_calls_and_many_as_one_batches_job(mailchimp_emulator):
    ids = mailchimp_emulator.seed(40)
    adapter = make(mailchimp_emulator)
    few = [request(i, f"contact{i}@example.com", remote_id=ids[i], tags={"few"}, FNAME=f"F{i}") for i in range(3)]
    assert all(r.ok for r in adapter.write_contacts(few))
    # no job to wait for: each upsert, then each tag change, as its own call
    assert mailchimp_emulator.call_count("POST", "batches") == 0
    assert mailchimp_emulator.call_count("PUT") == 3 and mailchimp_emulator.call_count("POST", "tags") == 3
    assert mailchimp_emulator.member(ids[2])["merge_fields"]["FNAME"] == "F2"
    assert {t["name"] for t in mailchimp_emulator.member(ids[2])["tags"]} >= {"few"}
    mailchimp_emulator.reset_counters()
    many = [request(i, f"contact{i}@example.com", remote_id=ids[i], tags={"many"}) for i in range(11)]  # 22 ops
    assert all(r.ok for r in adapter.write_contacts(many))
    assert mailchimp_emulator.call_count("POST", "batches") == 1 and mailchimp_emulator.call_count("PUT") == 0


def test_direct_calls_stay_within_ten_connections_and_wait_out_a_429(mailchimp_emulator):
    ids = mailchimp_emulator.seed(10)
    mailchimp_emulator.latency_s = 0.02  # calls overlap: the cap, not luck, keeps them at ten
    too_many = {"title": "Too Many Requests", "status": 429}
    mailchimp_emulator.inject(
        Fault(429, too_many, headers={"Retry-After": "7"}, method="PUT", path_pattern="/members/")
    )
    slept: list[float] = []
    adapter = MailchimpAdapter(
        api_key=Secret(mailchimp_emulator.api_key),
        list_id=mailchimp_emulator.list_id,
        base_url=mailchimp_emulator.api_url,
        sleep=slept.append,
        batch_poll_s=0.0,
    )
    reqs = [request(i, f"contact{i}@example.com", remote_id=ids[i], tags={"t"}, FNAME="Capped") for i in range(10)]
    assert all(r.ok for r in adapter.write_contacts(reqs))
    assert mailchimp_emulator.call_count("POST", "batches") == 0 and mailchimp_emulator.connection_limit_hits == 0
    assert mailchimp_emulator.peak_inflight <= 10
    assert 7.0 in slept  # the refused call waited as told, then went again
    assert all(mailchimp_emulator.member(i)["merge_fields"]["FNAME"] == "Capped" for i in ids)


def test_an_address_change_updates_the_member_in_place(mailchimp_emulator):
    ids = mailchimp_emulator.seed(2)
    adapter = make(mailchimp_emulator)
    [result] = adapter.write_contacts(
        [request(0, "renamed@example.com", remote_id=ids[0], previous="contact0@example.com", tags={"moved"})]
    )
    assert result.ok and result.remote_id == ids[0]  # the contact_id survives the address change
    assert mailchimp_emulator.member("contact0@example.com") is None
    moved = mailchimp_emulator.member("renamed@example.com")
    assert moved["contact_id"] == ids[0] and {t["name"] for t in moved["tags"]} >= {"moved"}
    # a link stored before crmsync keyed members by contact_id holds the old address's hash: it follows the move
    [legacy] = adapter.write_contacts([request(0, "again@example.com", remote_id=subscriber_hash("renamed@example.com"),
                                               previous="renamed@example.com")])
    assert legacy.ok and legacy.remote_id == subscriber_hash("again@example.com")
    [gone] = adapter.write_contacts([request(1, "fresh@example.com", previous="nobody@example.com")])
    assert gone.ok and mailchimp_emulator.member("fresh@example.com")["status"] == "pending"


def test_5xx_and_a_dropped_connection_in_the_middle_of_a_batch(mailchimp_emulator):
    ids = mailchimp_emulator.seed(4)
    adapter = make(mailchimp_emulator)
    mailchimp_emulator.inject(
        Fault(503, {"title": "Service Unavailable"}, method="POST", path_pattern=r"/lists/[^/]+$")
    )
    mailchimp_emulator.inject(Fault(DROP, method="GET", path_pattern="/batches/"))
    mailchimp_emulator.batch_polls_before_finished = 1
    reqs = [request(i, f"n{i}@example.com") for i in range(3)]
    reqs += [request(3, "contact1@example.com", remote_id=ids[1], FNAME="Upd")]
    results = adapter.write_contacts(reqs)
    assert all(r.ok for r in results)
    assert len(mailchimp_emulator.members()) == 7  # no duplicates from the retried call
    assert mailchimp_emulator.member(ids[1])["merge_fields"]["FNAME"] == "Upd"


# -- 4. consent -------------------------------------------------------------------------------
def test_unknown_consent_joins_with_new_member_status(mailchimp_emulator):
    make(mailchimp_emulator).write_contacts(
        [request(0, "a@example.com"), request(1, "b@example.com", status="subscribed")]
    )
    assert mailchimp_emulator.member("a@example.com")["status"] == "pending"  # double opt-in by default
    assert mailchimp_emulator.member("b@example.com")["status"] == "subscribed"  # known consent
    make(mailchimp_emulator, new_member_status="subscribed").write_contacts([request(2, "c@example.com")])
    assert mailchimp_emulator.member("c@example.com")["status"] == "subscribed"
    with pytest.raises(ValueError):
        make(mailchimp_emulator, new_member_status="cleaned")


def test_an_unsubscribed_member_reported_subscribed_by_a_crm_stays_unsubscribed(mailchimp_emulator):
    mailchimp_emulator.seed(1)
    mailchimp_emulator.unsubscribe("contact0@example.com")
    adapter = make(mailchimp_emulator)
    [result] = adapter.write_contacts([request(0, "contact0@example.com", status="subscribed", FNAME="Still")])
    assert result.ok
    member = mailchimp_emulator.member("contact0@example.com")
    assert member["status"] == "unsubscribed" and member["merge_fields"]["FNAME"] == "Still"


def test_existing_members_never_get_a_forced_status_but_opt_outs_propagate(mailchimp_emulator):
    mailchimp_emulator.seed(3)
    mailchimp_emulator.edit("contact1@example.com", status="pending")
    adapter = make(mailchimp_emulator)
    results = adapter.write_contacts(
        [
            request(0, "contact0@example.com", status="pending"),  # subscribed stays subscribed
            request(1, "contact1@example.com", status="subscribed"),  # pending stays pending: no bypassed opt-in
            request(2, "contact2@example.com", status="unsubscribed", tags={"left"}),  # opt-out: forced
        ]
    )
    assert all(r.ok for r in results)
    assert [mailchimp_emulator.member(f"contact{i}@example.com")["status"] for i in range(3)] == [
        "subscribed",
        "pending",
        "unsubscribed",
    ]
    assert [t["name"] for t in mailchimp_emulator.member("contact2@example.com")["tags"]] == ["left"]


def test_compliance_state_and_forgotten_addresses_are_suppressed_not_retried(mailchimp_emulator):
    ids = mailchimp_emulator.seed(3)
    mailchimp_emulator.unsubscribe("contact0@example.com")
    mailchimp_emulator.delete(ids[0])  # archived after an unsubscribe: Mailchimp remembers
    mailchimp_emulator.forget(ids[1])
    results = make(mailchimp_emulator).write_contacts(
        [
            request(0, "contact0@example.com", status="subscribed"),
            request(1, "contact1@example.com"),
            request(2, "contact2@example.com"),
        ]
    )
    assert [(r.ok, r.suppressed, r.retryable) for r in results] == [
        (False, True, False),
        (False, True, False),
        (True, False, False),
    ]
    assert results[0].error == "Member In Compliance State"
    assert results[1].error == "Forgotten Email Not Subscribed"


# -- 5. erasure -------------------------------------------------------------------------------
def test_forget_deletes_permanently_and_removal_archives(mailchimp_emulator):
    ids = mailchimp_emulator.seed(3)
    adapter = make(mailchimp_emulator)
    adapter.erase_contact(remote_id=ids[0], email="contact0@example.com")
    adapter.erase_contact(remote_id=None, email="nobody@example.com")  # not a member: nothing to do
    assert mailchimp_emulator.member(ids[0]) is None
    adapter.archive_contact(remote_id=ids[1], email="contact1@example.com")
    adapter.archive_contact(remote_id=ids[1], email="contact1@example.com")  # twice is fine
    assert mailchimp_emulator.member(ids[1])["status"] == "archived"
    assert mailchimp_emulator.call_count("POST", "delete-permanent") == 2


def test_a_merge_tag_the_audience_lacks_is_left_out_not_fatal(mailchimp_emulator):
    mailchimp_emulator.audience.strict_merge_fields = True  # a server that refuses unknown merge tags
    adapter = make(mailchimp_emulator)
    [result] = adapter.write_contacts([request(0, "ann@example.com", FNAME="Ann", NOSUCHTAG="x")])
    assert result.ok and mailchimp_emulator.member("ann@example.com")["merge_fields"]["FNAME"] == "Ann"
    assert mailchimp_emulator.call_count("GET", "merge-fields") == 1
    adapter.write_contacts([request(1, "bob@example.com", NOSUCHTAG="x")])
    assert mailchimp_emulator.call_count("GET", "merge-fields") == 1  # read once per adapter


def test_without_a_batches_endpoint_updates_fall_back_to_single_calls(mailchimp_emulator):
    ids = mailchimp_emulator.seed(3)
    mailchimp_emulator.inject(
        Fault(404, {"title": "Resource Not Found", "status": 404}, method="POST", path_pattern="^/3.0/batches$")
    )
    adapter = make(mailchimp_emulator)
    results = adapter.write_contacts(
        [request(i, f"contact{i}@example.com", remote_id=ids[i], FNAME=f"S{i}", tags={"t"}) for i in range(3)]
    )
    assert all(r.ok for r in results)
    assert mailchimp_emulator.call_count("PUT") == 3 and mailchimp_emulator.call_count("POST", "tags") == 3
    assert mailchimp_emulator.member(ids[2])["merge_fields"]["FNAME"] == "S2"


def test_tags_of_existing_members_become_exactly_the_ones_sent(mailchimp_emulator):
    ids = mailchimp_emulator.seed(11)  # contact0: customer + vip; contact10: vip
    adapter = make(mailchimp_emulator)
    [result] = adapter.write_contacts([request(0, "contact0@example.com", remote_id=ids[0], tags={"customer", "new"})])
    assert result.ok
    assert {t["name"] for t in mailchimp_emulator.member(ids[0])["tags"]} == {"customer", "new"}
    assert {t["name"] for t in mailchimp_emulator.member(ids[10])["tags"]} == {"vip"}  # untouched
    mailchimp_emulator.reset_counters()
    adapter.write_contacts([request(1, "contact1@example.com", remote_id=ids[1], tags=set())])
    assert mailchimp_emulator.member(ids[1])["tags"] == []
    assert mailchimp_emulator.call_count("GET", "segments") == 0  # the audience's tags are read once


@pytest.mark.parametrize("refused", [{"sort_field"}, {"fields"}, {"sort_field", "since_last_changed"}, {"status"}])
def test_a_server_without_optional_list_parameters_is_still_read_in_full(mailchimp_emulator, clock, refused):
    ids = mailchimp_emulator.seed(9)
    for i in (0, 5, 1):  # insertion order is no longer last_changed order
        clock.advance(3)
        mailchimp_emulator.edit(ids[i], FNAME=f"Edited{i}")
    mailchimp_emulator.refuse_params = refused
    adapter = make(mailchimp_emulator, page_size=4)
    pages, records = read_all(adapter)
    assert {r.remote_id for r in records} == set(ids)
    clock.advance(600)
    mailchimp_emulator.edit(ids[2], FNAME="Late")
    pages, records = read_all(adapter, pages[-1].next_cursor)
    assert ids[2] in {r.remote_id for r in records}
    assert pages[-1].next_cursor.page_token is None


def test_adapters_on_one_account_share_a_configured_rate_limiter(mailchimp_emulator):
    one = make(mailchimp_emulator, rate_limit="50/1s")
    two = make(mailchimp_emulator, rate_limit="50/1s")
    other = MailchimpAdapter(
        api_key=Secret("aaaa1111-us2"), list_id="x", base_url=mailchimp_emulator.api_url, rate_limit="50/1s"
    )
    assert one.transport._limiter is two.transport._limiter is not None
    assert other.transport._limiter is not one.transport._limiter
    assert make(mailchimp_emulator).transport._limiter is None  # Mailchimp publishes no rate, only the cap
