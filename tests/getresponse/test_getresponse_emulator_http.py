"""The GetResponse emulator over plain HTTP, against the documented request and response shapes.

There is no official GetResponse Python SDK among the test dependencies (providers/getresponse.md,
"Client library"), so these tests speak the wire format directly, as the public API reference shows it.
"""

from __future__ import annotations

from typing import Any

import requests
from conftest import ManualClock

from adapters._emulator import Fault
from adapters.getresponse._wire import parse_time
from adapters.getresponse.emulator import GetResponseEmulator

TIMEOUT = 5


def _get(http: requests.Session, emu: GetResponseEmulator, path: str, **params: Any) -> requests.Response:
    return http.get(emu.api_url + path, params=params, timeout=TIMEOUT)


def _post(http: requests.Session, emu: GetResponseEmulator, path: str, body: Any) -> requests.Response:
    return http.post(emu.api_url + path, json=body, timeout=TIMEOUT)


def test_a_wrong_key_is_401_with_the_error_envelope(gr_emulator: GetResponseEmulator) -> None:
    answer = requests.get(gr_emulator.api_url + "/contacts", headers={"X-Auth-Token": "api-key nope"}, timeout=TIMEOUT)
    assert answer.status_code == 401
    body = answer.json()
    assert body["httpStatus"] == 401 and body["code"] == 1014
    assert {"codeDescription", "message", "moreInfo", "uuid", "context"} <= set(body)


def test_listing_pages_with_total_headers_and_list_view_only(
    gr_http: requests.Session, gr_emulator: GetResponseEmulator
) -> None:
    gr_emulator.seed(5)
    answer = _get(gr_http, gr_emulator, "/contacts", page=2, perPage=2)
    assert answer.status_code == 200
    assert (answer.headers["TotalCount"], answer.headers["TotalPages"], answer.headers["CurrentPage"]) == (
        "5",
        "3",
        "2",
    )
    rows = answer.json()
    assert [r["email"] for r in rows] == ["contact2@example.com", "contact3@example.com"]
    assert "tags" not in rows[0] and "customFieldValues" not in rows[0]  # the detail view adds those
    assert rows[0]["campaign"]["campaignId"] == gr_emulator.campaign_id
    assert rows[0]["changedOn"].endswith("+0000")
    assert answer.headers["X-RateLimit-Limit"] == "30000"


def test_per_page_junk_is_read_as_the_default_not_refused(
    gr_http: requests.Session, gr_emulator: GetResponseEmulator
) -> None:
    gr_emulator.seed(3)
    for junk in ("0", "abc", "5000"):
        answer = _get(gr_http, gr_emulator, "/contacts", perPage=junk)
        assert answer.status_code == 200 and len(answer.json()) == 3


def test_an_unknown_query_filter_is_400_code_1000(gr_http: requests.Session, gr_emulator: GetResponseEmulator) -> None:
    answer = _get(gr_http, gr_emulator, "/contacts", **{"query[tag]": "vip"})
    assert answer.status_code == 400 and answer.json()["code"] == 1000


def test_changed_on_filter_and_sort(
    gr_http: requests.Session, gr_emulator: GetResponseEmulator, clock: ManualClock
) -> None:
    ids = gr_emulator.seed(4)
    clock.advance(10)
    gr_emulator.edit(ids[0], name="Zed Early")
    since = clock.now.strftime("%Y-%m-%dT%H:%M:%S+0000")
    answer = _get(gr_http, gr_emulator, "/contacts", **{"query[changedOn][from]": since, "sort[changedOn]": "ASC"})
    assert [r["contactId"] for r in answer.json()] == [ids[0]]
    everything = _get(gr_http, gr_emulator, "/contacts", **{"sort[changedOn]": "DESC"}).json()
    assert everything[0]["contactId"] == ids[0]
    stamps = [parse_time(r["changedOn"]) for r in everything]
    assert stamps == sorted(stamps, reverse=True)


def test_find_by_email_is_like_unless_exact_match(gr_http: requests.Session, gr_emulator: GetResponseEmulator) -> None:
    gr_emulator.seed(12)
    like = _get(gr_http, gr_emulator, "/contacts", **{"query[email]": "contact1"}).json()
    assert len(like) == 3  # contact1, contact10, contact11
    exact = _get(
        gr_http,
        gr_emulator,
        "/contacts",
        **{"query[email]": "contact1@example.com", "query[campaignId]": gr_emulator.campaign_id},
        additionalFlags="exactMatch",
    ).json()
    assert [r["email"] for r in exact] == ["contact1@example.com"]


def test_create_is_202_without_an_id_and_appears_later(gr_http: requests.Session, clock: ManualClock) -> None:
    with GetResponseEmulator(clock=clock, create_delay_s=30) as emu:
        body = {"email": "ana@example.com", "name": "Ana Silva", "campaign": {"campaignId": emu.campaign_id}}
        answer = _post(gr_http_for(emu), emu, "/contacts", body)
        assert answer.status_code == 202 and answer.content == b""
        session = gr_http_for(emu)
        assert _get(session, emu, "/contacts").json() == []  # queued: not listed yet
        again = _post(session, emu, "/contacts", body)
        assert again.status_code == 409 and again.json()["code"] == 1008  # no duplicate while queued
        clock.advance(31)
        rows = _get(session, emu, "/contacts").json()
        assert [r["email"] for r in rows] == ["ana@example.com"]


def gr_http_for(emu: GetResponseEmulator) -> requests.Session:
    session = requests.Session()
    session.headers["X-Auth-Token"] = f"api-key {emu.api_key}"
    return session


def test_create_validates_email_campaign_tags_and_value_arrays(
    gr_http: requests.Session, gr_emulator: GetResponseEmulator
) -> None:
    campaign = {"campaignId": gr_emulator.campaign_id}
    bad = [
        {"email": "not-an-email", "campaign": campaign},
        {"email": "a@example.com", "campaign": {"campaignId": "nope"}},
        {"email": "a@example.com", "campaign": campaign, "tags": [{"tagId": "zz9"}]},
        {"email": "a@example.com", "campaign": campaign, "customFieldValues": [{"customFieldId": "x", "value": ["1"]}]},
    ]
    field_id = next(f["customFieldId"] for f in _get(gr_http, gr_emulator, "/custom-fields").json())
    bad.append(
        {"email": "a@example.com", "campaign": campaign, "customFieldValues": [{"customFieldId": field_id, "value": 1}]}
    )
    for body in bad:
        answer = _post(gr_http, gr_emulator, "/contacts", body)
        assert answer.status_code == 400 and answer.json()["code"] == 1000, body


def test_existing_email_in_the_campaign_is_409_1008(
    gr_http: requests.Session, gr_emulator: GetResponseEmulator
) -> None:
    gr_emulator.seed(1)
    body = {"email": "contact0@example.com", "campaign": {"campaignId": gr_emulator.campaign_id}}
    answer = _post(gr_http, gr_emulator, "/contacts", body)
    assert answer.status_code == 409 and answer.json()["code"] == 1008


def test_the_same_email_in_another_campaign_is_another_contact(
    gr_http: requests.Session, gr_emulator: GetResponseEmulator
) -> None:
    gr_emulator.seed(1)
    other = gr_emulator.add_campaign("other_list")
    answer = _post(
        gr_http, gr_emulator, "/contacts", {"email": "contact0@example.com", "campaign": {"campaignId": other}}
    )
    assert answer.status_code == 202
    rows = _get(gr_http, gr_emulator, "/contacts", **{"query[email]": "contact0@example.com"}).json()
    assert len({r["contactId"] for r in rows}) == 2


def test_update_replaces_tag_and_value_arrays_and_bumps_changed_on(
    gr_http: requests.Session, gr_emulator: GetResponseEmulator, clock: ManualClock
) -> None:
    (cid,) = gr_emulator.seed(1)
    before = gr_emulator.contact(cid)
    assert before is not None and before["tags"]
    clock.advance(5)
    tag = _post(gr_http, gr_emulator, "/tags", {"name": "gold_tier"}).json()
    answer = _post(gr_http, gr_emulator, f"/contacts/{cid}", {"name": "New Name", "tags": [{"tagId": tag["tagId"]}]})
    assert answer.status_code == 200
    after = answer.json()
    assert [t["name"] for t in after["tags"]] == ["gold_tier"]
    assert after["customFieldValues"] == before["customFieldValues"]  # not sent: kept
    assert parse_time(after["changedOn"]) > parse_time(before["changedOn"])
    cleared = _post(gr_http, gr_emulator, f"/contacts/{cid}", {"customFieldValues": []}).json()
    assert cleared["customFieldValues"] == []


def test_additive_tag_and_custom_field_calls_keep_the_others(
    gr_http: requests.Session, gr_emulator: GetResponseEmulator
) -> None:
    (cid,) = gr_emulator.seed(1)
    before = gr_emulator.contact(cid)
    assert before is not None
    tag = _post(gr_http, gr_emulator, "/tags", {"name": "extra"}).json()
    after = _post(gr_http, gr_emulator, f"/contacts/{cid}/tags", {"tags": [{"tagId": tag["tagId"]}]}).json()
    assert {t["name"] for t in after["tags"]} == {t["name"] for t in before["tags"]} | {"extra"}
    field = _post(gr_http, gr_emulator, "/custom-fields", {"name": "tier", "type": "text", "hidden": False}).json()
    after = _post(
        gr_http,
        gr_emulator,
        f"/contacts/{cid}/custom-fields",
        {"customFieldValues": [{"customFieldId": field["customFieldId"], "value": ["gold"]}]},
    ).json()
    names = {v["name"]: v["value"] for v in after["customFieldValues"]}
    assert names["tier"] == ["gold"] and len(names) == len(before["customFieldValues"]) + 1


def test_tag_names_are_validated(gr_http: requests.Session, gr_emulator: GetResponseEmulator) -> None:
    assert _post(gr_http, gr_emulator, "/tags", {"name": "has space"}).status_code == 400
    assert _post(gr_http, gr_emulator, "/tags", {"name": "ok_tag"}).status_code == 201
    assert _post(gr_http, gr_emulator, "/tags", {"name": "ok_tag"}).status_code == 409


def test_unsubscribed_and_removed_contacts_vanish_from_listing_and_by_id(
    gr_http: requests.Session, gr_emulator: GetResponseEmulator
) -> None:
    ids = gr_emulator.seed(3)
    gr_emulator.unsubscribe("contact0@example.com")
    assert http_delete(gr_http, gr_emulator, ids[1]).status_code == 204
    listed = {r["contactId"] for r in _get(gr_http, gr_emulator, "/contacts").json()}
    assert listed == {ids[2]}
    assert _get(gr_http, gr_emulator, f"/contacts/{ids[0]}").status_code == 404
    found = gr_emulator.find("contact0@example.com")
    assert found is not None and found["state"] == "unsubscribed"


def http_delete(http: requests.Session, emu: GetResponseEmulator, cid: str, **params: str) -> requests.Response:
    return http.delete(f"{emu.api_url}/contacts/{cid}", params=params, timeout=TIMEOUT)


def test_delete_with_message_id_is_an_unsubscribe(gr_http: requests.Session, gr_emulator: GetResponseEmulator) -> None:
    ids = gr_emulator.seed(2)
    assert http_delete(gr_http, gr_emulator, ids[0], messageId="m1").status_code == 204
    assert http_delete(gr_http, gr_emulator, ids[1]).status_code == 204
    assert [c["state"] for c in gr_emulator.contacts(state=None)] == ["unsubscribed", "removed"]


def test_search_contacts_finds_unsubscribed_and_removed_ones(
    gr_http: requests.Session, gr_emulator: GetResponseEmulator
) -> None:
    ids = gr_emulator.seed(3)
    gr_emulator.unsubscribe("contact1@example.com")
    gr_emulator.delete(ids[2])
    body = {
        "subscribersType": ["removed"],
        "sectionLogicOperator": "or",
        "section": [{"campaignIdsList": [gr_emulator.campaign_id], "logicOperator": "or", "conditions": []}],
    }
    answer = _post(gr_http, gr_emulator, "/search-contacts/contacts", body)
    assert answer.status_code == 200
    assert {r["email"] for r in answer.json()} == {"contact1@example.com", "contact2@example.com"}
    assert (
        _post(gr_http, gr_emulator, "/search-contacts/contacts", {**body, "subscribersType": ["gone"]}).status_code
        == 400
    )
    body["section"][0]["conditions"] = [{}] * 9  # type: ignore[index]
    assert _post(gr_http, gr_emulator, "/search-contacts/contacts", body).status_code == 400


def test_the_per_second_limit_answers_429_with_time_to_reset(gr_http: requests.Session, clock: ManualClock) -> None:
    with GetResponseEmulator(clock=clock, per_second=3) as emu:
        session = gr_http_for(emu)
        answers = [_get(session, emu, "/contacts") for _ in range(4)]
        assert [a.status_code for a in answers[:3]] == [200, 200, 200]
        throttled = answers[3]
        assert throttled.status_code == 429
        body = throttled.json()
        assert body["code"] == 1015 and body["context"]["timeToReset"].endswith("seconds")
        assert throttled.headers["X-RateLimit-Reset"].endswith("seconds")


def test_injected_faults_and_call_counters(gr_http: requests.Session, gr_emulator: GetResponseEmulator) -> None:
    gr_emulator.inject(Fault(503, {"message": "down"}, path_pattern="/contacts"))
    assert _get(gr_http, gr_emulator, "/contacts").status_code == 503
    assert _get(gr_http, gr_emulator, "/contacts").status_code == 200
    _post(
        gr_http,
        gr_emulator,
        "/contacts",
        {"email": "x@example.com", "campaign": {"campaignId": gr_emulator.campaign_id}},
    )
    assert gr_emulator.read_calls() == 2 and gr_emulator.write_calls() == 1
    assert gr_emulator.sandbox_options()["base_url"].endswith("/v3")
