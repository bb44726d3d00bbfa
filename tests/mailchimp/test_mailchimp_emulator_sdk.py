"""The emulator, driven by the official ``mailchimp_marketing`` SDK over real HTTP."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import threading

import mailchimp_marketing as MailchimpMarketing
import pytest
import requests
from mailchimp_marketing.api_client import ApiClientError

from adapters._emulator import Fault
from adapters.mailchimp._store import subscriber_hash
from adapters.mailchimp.emulator import MailchimpEmulator


def sdk(emulator: MailchimpEmulator, key: str | None = None) -> MailchimpMarketing.Client:
    client = MailchimpMarketing.Client()
    client.set_config({"api_key": key or emulator.api_key, "server": "us1"})
    client.api_client.host = emulator.api_url  # the SDK's only host override (its Configuration is unused)
    return client


def problem(exc: ApiClientError) -> dict:
    # problem+json is not "application/json", so the SDK hands the body back as a string
    assert isinstance(exc.text, str)
    return json.loads(exc.text)


def test_ping_and_list(mailchimp_emulator):
    client = sdk(mailchimp_emulator)
    assert client.ping.get() == {"health_status": "Everything's Chimpy!"}
    info = client.lists.get_list(mailchimp_emulator.list_id)
    assert info["id"] == mailchimp_emulator.list_id and info["double_optin"] is True


def test_wrong_key_is_401_problem_json(mailchimp_emulator):
    client = sdk(mailchimp_emulator, key="ffffffffffffffffffffffffffffffff-us1")
    with pytest.raises(ApiClientError) as err:
        client.ping.get()
    assert err.value.status_code == 401
    body = problem(err.value)
    assert body["title"] == "API Key Invalid" and body["status"] == 401 and body["instance"]


def test_upsert_get_and_hash_rules(mailchimp_emulator):
    client = sdk(mailchimp_emulator)
    lid = mailchimp_emulator.list_id
    email = "Ana.Silva@Example.com"
    h = subscriber_hash(email)
    assert h == subscriber_hash("ana.silva@example.com")
    member = client.lists.set_list_member(
        lid, h, {"email_address": email, "status_if_new": "pending", "merge_fields": {"FNAME": "Ana", "LNAME": "Silva"}}
    )
    assert member["id"] == h and member["status"] == "pending" and member["merge_fields"]["FNAME"] == "Ana"
    assert member["last_changed"].endswith("+00:00")
    # a second PUT with status_if_new does not change the status of an existing member
    again = client.lists.set_list_member(lid, h, {"email_address": email, "status_if_new": "subscribed"})
    assert again["status"] == "pending"
    # by hash, by address and by contact_id
    assert client.lists.get_list_member(lid, h)["email_address"] == email
    assert client.lists.get_list_member(lid, member["contact_id"])["id"] == h
    # the hash of the address as typed (not lower-cased) finds nothing, and PUT refuses the mismatch
    wrong = __import__("hashlib").md5(email.encode()).hexdigest()
    with pytest.raises(ApiClientError) as err:
        client.lists.get_list_member(lid, wrong)
    assert err.value.status_code == 404 and problem(err.value)["title"] == "Resource Not Found"
    with pytest.raises(ApiClientError) as err:
        client.lists.set_list_member(lid, wrong, {"email_address": email, "status_if_new": "subscribed"})
    assert err.value.status_code == 400 and problem(err.value)["title"] == "Invalid Resource"


def test_put_needs_a_status_for_new_members_and_post_refuses_existing(mailchimp_emulator):
    client = sdk(mailchimp_emulator)
    lid = mailchimp_emulator.list_id
    with pytest.raises(ApiClientError) as err:
        client.lists.set_list_member(lid, subscriber_hash("bo@example.com"), {"email_address": "bo@example.com"})
    assert err.value.status_code == 400
    client.lists.add_list_member(lid, {"email_address": "bo@example.com", "status": "subscribed"})
    with pytest.raises(ApiClientError) as err:
        client.lists.add_list_member(lid, {"email_address": "bo@example.com", "status": "subscribed"})
    assert problem(err.value)["title"] == "Member Exists"
    with pytest.raises(ApiClientError) as err:
        client.lists.add_list_member(lid, {"email_address": "not-an-address", "status": "subscribed"})
    assert problem(err.value)["title"] == "Invalid Resource"


def test_paging_count_cap_and_since_last_changed(mailchimp_emulator, clock):
    client = sdk(mailchimp_emulator)
    lid = mailchimp_emulator.list_id
    ids = mailchimp_emulator.seed(25)
    first = client.lists.get_list_members_info(lid, count=10, offset=0)
    assert len(first["members"]) == 10 and first["total_items"] == 25
    rest = client.lists.get_list_members_info(lid, count=1000, offset=10)
    assert {m["contact_id"] for m in first["members"]} | {m["contact_id"] for m in rest["members"]} == set(ids)
    with pytest.raises(ValueError):  # the SDK itself refuses count > 1000 ...
        client.lists.get_list_members_info(lid, count=1001)
    over = requests.get(  # ... and so does the server
        f"{mailchimp_emulator.api_url}/lists/{lid}/members",
        params={"count": 1001},
        auth=("x", mailchimp_emulator.api_key),
        timeout=5,
    )
    assert over.status_code == 400 and over.headers["Content-Type"].startswith("application/problem+json")
    last = max(m["last_changed"] for m in rest["members"])
    # strictly after: nothing changed after the newest timestamp
    assert client.lists.get_list_members_info(lid, since_last_changed=last)["total_items"] == 0
    clock.advance(5)
    mailchimp_emulator.edit(ids[3], FNAME="Changed")
    changed = client.lists.get_list_members_info(
        lid, since_last_changed="2000-01-01T00:00:00+00:00", sort_field="last_changed", sort_dir="ASC", count=1000
    )
    assert changed["members"][-1]["contact_id"] == ids[3]
    slim = client.lists.get_list_members_info(lid, fields=["members.id", "total_items"], count=2)
    assert set(slim) == {"members", "total_items"} and set(slim["members"][0]) == {"id"}


def test_batch_subscribe_limits_and_per_member_errors(mailchimp_emulator):
    client = sdk(mailchimp_emulator)
    lid = mailchimp_emulator.list_id
    client.lists.add_list_member(lid, {"email_address": "old@example.com", "status": "unsubscribed"})
    members = [
        {"email_address": "new@example.com", "status": "subscribed", "tags": ["vip"], "merge_fields": {"FNAME": "N"}},
        {"email_address": "old@example.com", "status": "subscribed"},
        {"email_address": "bad@", "status": "subscribed"},
    ]
    result = client.lists.batch_list_members(lid, {"members": members, "update_existing": False})
    assert result["total_created"] == 1 and result["error_count"] == 2
    codes = {e["email_address"]: e["error_code"] for e in result["errors"]}
    assert codes["old@example.com"] == "ERROR_CONTACT_EXISTS" and codes["bad@"] == "ERROR_GENERIC"
    # update_existing cannot resubscribe an unsubscribed member: compliance state, per member
    result = client.lists.batch_list_members(lid, {"members": members[1:2], "update_existing": True})
    assert result["error_count"] == 1 and "compliance state" in result["errors"][0]["error"]
    assert client.lists.get_list_member(lid, subscriber_hash("old@example.com"))["status"] == "unsubscribed"
    too_many = [{"email_address": f"m{i}@example.com", "status": "pending"} for i in range(501)]
    with pytest.raises(ApiClientError) as err:
        client.lists.batch_list_members(lid, {"members": too_many})
    assert err.value.status_code == 400
    with pytest.raises(ApiClientError) as err:
        client.lists.batch_list_members(lid, {"members": [{"email_address": "x@example.com"}]})
    assert err.value.status_code == 400  # status is required on every batch member


def test_tags_compliance_archive_and_forget(mailchimp_emulator):
    client = sdk(mailchimp_emulator)
    lid = mailchimp_emulator.list_id
    h = subscriber_hash("cy@example.com")
    client.lists.set_list_member(lid, h, {"email_address": "cy@example.com", "status_if_new": "subscribed"})
    response = client.lists.update_list_member_tags(
        lid, h, {"tags": [{"name": "vip", "status": "active"}, {"name": "gone", "status": "inactive"}]}
    )
    assert response.status_code == 204 and response.content == b""  # the SDK returns the raw response
    assert [t["name"] for t in client.lists.get_list_member_tags(lid, h)["tags"]] == ["vip"]
    segments = client.lists.list_segments(lid, type="static", count=1000)  # tags are static segments
    assert {s["name"] for s in segments["segments"]} >= {"vip"} and segments["total_items"] >= 1
    mailchimp_emulator.unsubscribe("cy@example.com")
    with pytest.raises(ApiClientError) as err:
        client.lists.update_list_member(lid, h, {"status": "subscribed"})
    assert problem(err.value)["title"] == "Member In Compliance State"
    assert client.lists.update_list_member(lid, h, {"status": "pending"})["status"] == "pending"  # the only route
    client.lists.delete_list_member(lid, h)
    assert client.lists.get_list_member(lid, h)["status"] == "archived"
    assert client.lists.get_list_members_info(lid)["total_items"] == 0
    assert client.lists.get_list_members_info(lid, status="archived")["total_items"] == 1
    client.lists.delete_list_member_permanent(lid, h)
    with pytest.raises(ApiClientError) as err:
        client.lists.set_list_member(lid, h, {"email_address": "cy@example.com", "status_if_new": "pending"})
    assert problem(err.value)["title"] == "Forgotten Email Not Subscribed"


def test_batches_endpoint_and_tarball(mailchimp_emulator):
    client = sdk(mailchimp_emulator)
    lid = mailchimp_emulator.list_id
    mailchimp_emulator.batch_polls_before_finished = 1
    h = subscriber_hash("dee@example.com")
    ops = [
        {
            "method": "PUT",
            "path": f"/lists/{lid}/members/{h}",
            "operation_id": "op-1",
            "body": json.dumps({"email_address": "dee@example.com", "status_if_new": "subscribed"}),
        },
        {"method": "PATCH", "path": f"/lists/{lid}/members/{'0' * 32}", "operation_id": "op-2", "body": "{}"},
    ]
    started = client.batches.start({"operations": ops})
    assert started["status"] == "pending"
    assert client.batches.status(started["id"])["status"] == "started"
    done = client.batches.status(started["id"])
    assert done["status"] == "finished" and done["errored_operations"] == 1
    raw = requests.get(done["response_body_url"], timeout=5).content
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(raw))) as tar:
        entries = [e for m in tar.getmembers() if m.isfile() for e in json.load(tar.extractfile(m))]
    by_op = {e["operation_id"]: e for e in entries}
    assert by_op["op-1"]["status_code"] == 200 and json.loads(by_op["op-1"]["response"])["id"] == h
    assert by_op["op-2"]["status_code"] == 404
    with pytest.raises(ApiClientError):
        client.batches.start({"operations": [{"method": "PUT", "path": "/x", "body": {"not": "a string"}}]})


def test_bodiless_fault_and_connection_limit(mailchimp_emulator):
    client = sdk(mailchimp_emulator)
    mailchimp_emulator.inject(Fault(status=403, body=None, path_pattern="/ping"))
    response = client.ping.get()  # the SDK hands back an empty error response instead of raising
    assert response.status_code == 403 and response.content == b""
    mailchimp_emulator.latency_s = 0.3
    mailchimp_emulator.max_connections = 3  # the real cap is 10; 3 keeps the test small and certain
    statuses: list[int] = []
    lock = threading.Lock()
    ready = threading.Barrier(12)

    def call() -> None:
        ready.wait()
        r = requests.get(mailchimp_emulator.api_url + "/ping", auth=("x", mailchimp_emulator.api_key), timeout=5)
        with lock:
            statuses.append(r.status_code)

    threads = [threading.Thread(target=call) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(statuses) == {200, 429} and mailchimp_emulator.connection_limit_hits == statuses.count(429)


def test_a_confirmed_re_signup_resubscribes_with_a_fresh_opt_in_time_but_not_a_cleaned_address(
    mailchimp_emulator, clock
):
    client = sdk(mailchimp_emulator)
    lid = mailchimp_emulator.list_id
    for email in ("gone@example.com", "bounced@example.com", "here@example.com"):
        mailchimp_emulator.subscribe(email)
    first = mailchimp_emulator.member("gone@example.com")["timestamp_opt"]
    mailchimp_emulator.unsubscribe("gone@example.com")
    mailchimp_emulator.clean("bounced@example.com")
    clock.advance(60)
    assert mailchimp_emulator.resubscribe("gone@example.com")  # the person's own confirmation passes compliance
    member = client.lists.get_list_member(lid, subscriber_hash("gone@example.com"))
    assert member["status"] == "subscribed" and member["timestamp_opt"] > first
    assert member["last_changed"] == member["timestamp_opt"]
    assert not mailchimp_emulator.resubscribe("bounced@example.com")  # the confirmation mail bounces
    assert mailchimp_emulator.member("bounced@example.com")["status"] == "cleaned"
    here = mailchimp_emulator.member("here@example.com")
    assert not mailchimp_emulator.resubscribe("here@example.com")  # "already subscribed": nothing changes
    assert mailchimp_emulator.member("here@example.com") == here
