"""What the real Mailchimp Marketing API does that an adapter built against our own emulator could miss.

Each test names the source of the behaviour it holds the adapter (and the emulator) to.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import tarfile
from urllib.parse import urlencode

import pytest
import requests
from test_mailchimp_adapter import make

from adapters._emulator import Fault
from adapters.base import Cursor, WriteRequest
from adapters.errors import RetryableError
from adapters.mailchimp._writes import read_results
from adapters.mailchimp.emulator import MailchimpEmulator
from mappings.providers.mailchimp import tags_in


def request(i: int, email: str, *, remote_id: str | None = None, **merge) -> WriteRequest:
    return WriteRequest(ref=f"r{i}", remote_id=remote_id, email=email, fields={"merge_fields": merge})


def get(emulator: MailchimpEmulator, path: str, **params) -> requests.Response:
    return requests.get(f"{emulator.api_url}{path}", params=params, auth=("x", emulator.api_key), timeout=5)


# -- partial responses -------------------------------------------------------------------------
# "The fields and exclude_fields parameters ... will throw an error if a field isn't valid in your request"
# https://mailchimp.com/developer/marketing/docs/methods-parameters/#partial-responses
def test_a_field_the_resource_does_not_have_is_refused(mailchimp_emulator):
    [cid] = mailchimp_emulator.seed(1)
    lid = mailchimp_emulator.list_id
    assert get(mailchimp_emulator, f"/lists/{lid}/members/{cid}", fields="id,total_items").status_code == 400
    assert get(mailchimp_emulator, f"/lists/{lid}/members", fields="members.nope").status_code == 400
    listing = get(mailchimp_emulator, f"/lists/{lid}/members", fields="members.id,members.tags_count,total_items")
    assert listing.status_code == 200 and set(listing.json()["members"][0]) == {"id", "tags_count"}


def test_a_webhook_hint_fetches_the_member_with_fields_a_member_has(mailchimp_emulator):
    ids = mailchimp_emulator.seed(2)
    [record] = make(mailchimp_emulator).fetch_contacts([ids[1]])
    assert not record.deleted and record.data["email_address"] == "contact1@example.com"


# -- tags past the 50th -------------------------------------------------------------------------
# A member's "tags": "Returns up to 50 tags applied to this member. To retrieve all tags see Member Tags";
# "tags_count": "The number of tags applied to this member" (ListsMembersMembers in the API reference:
# https://github.com/mailchimp/fern-marketing-api-docs/blob/HEAD/fern/apis/mailchimp-openapi/openapi.json)
def test_a_member_with_more_than_50_tags_is_read_with_all_of_them(mailchimp_emulator):
    ids = mailchimp_emulator.seed(3)
    many = [f"tag{i:02d}" for i in range(60)]
    mailchimp_emulator.edit(ids[1], tags=many)
    shown = mailchimp_emulator.member(ids[1])
    assert len(shown["tags"]) == 50 and shown["tags_count"] == 60  # the API's own view
    adapter = make(mailchimp_emulator)
    records = [r for page in adapter.read_contacts(Cursor()) for r in page.records]
    by_email = {r.data["email_address"]: r for r in records}
    assert tags_in(by_email["contact1@example.com"].data["tags"]) == set(many)
    assert tags_in(by_email["contact0@example.com"].data["tags"]) == {"customer", "vip"}
    [fetched] = adapter.fetch_contacts([ids[1]])
    assert tags_in(fetched.data["tags"]) == set(many)
    # one tags call for the one member with more than 50, paged 1000 at a time
    assert mailchimp_emulator.call_count("GET", "tags") == 2


# -- /batches results --------------------------------------------------------------------------
# "A GET request to the response_body_url returns a gzipped tar archive of JSON files. You can expect a single
# file per operation, unless one of your operations contains paged data; in that case, those responses may also
# be split across multiple files." ... "any response_body_url is only valid for ten minutes after it's
# generated. You can always generate a new response_body_url by making another Batch status call."
# https://mailchimp.com/developer/marketing/guides/run-async-requests-batch-endpoint/
def archive(files: dict[str, object], *, compress: bool = True) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        folder = tarfile.TarInfo("b1")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, content in files.items():
            data = content if isinstance(content, bytes) else json.dumps(content).encode()
            info = tarfile.TarInfo(f"b1/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue()) if compress else raw.getvalue()


def test_results_are_read_from_every_file_of_the_archive_in_any_documented_shape():
    problem = json.dumps({"title": "Invalid Resource", "status": 400})
    files = {
        "a.json": [{"status_code": 200, "operation_id": "m0", "response": "{}"},
                   {"status_code": 400, "operation_id": "m1", "response": problem}],
        "b.json": {"status_code": 404, "operation_id": "m2", "response": ""},  # one entry, not an array
        "c.json": [{"status_code": "204", "operation_id": "t0", "response": ""},
                   {"status_code": None, "operation_id": "t1", "response": None}],
        "notes.txt": b"not json",
    }
    expected = {"m0": (200, ""), "m1": (400, "Invalid Resource"), "m2": (404, ""), "t0": (204, ""), "t1": (0, "")}
    assert read_results(archive(files)) == expected
    assert read_results(archive(files, compress=False)) == expected  # a client that already un-gzipped it


def test_an_unreadable_archive_is_a_retryable_error_not_a_crash():
    with pytest.raises(RetryableError):
        read_results(b"<Error><Code>AccessDenied</Code></Error>")
    with pytest.raises(RetryableError):
        read_results(archive({"a.json": []})[:40])  # cut short


def test_an_expired_results_link_is_renewed_by_another_status_call(mailchimp_emulator):
    ids = mailchimp_emulator.seed(30)
    mailchimp_emulator.refuse_writes("contact3@example.com")  # one failed operation: the results are read
    expired = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    mailchimp_emulator.inject(Fault(403, raw=expired, headers={"Content-Type": "application/xml"},
                                    path_pattern="/_emulator/batch-results/"))
    adapter = make(mailchimp_emulator)
    reqs = [WriteRequest(ref=f"r{i}", remote_id=ids[i], email=f"contact{i}@example.com",
                         fields={"merge_fields": {"FNAME": "Renewed"}}) for i in range(30)]
    results = {r.ref: r for r in adapter.write_contacts(reqs)}
    assert mailchimp_emulator.call_count("POST", "batches") == 1  # the job ran once
    assert mailchimp_emulator.call_count("GET", "batch-results") == 2  # the second, fresh link worked
    assert not results["r3"].ok and results["r3"].retryable
    assert all(results[f"r{i}"].ok for i in range(30) if i != 3)


# -- webhook bodies ------------------------------------------------------------------------------
# "The body of the webhook request is sent as application/x-www-form-urlencoded data. The Subscribes event,
# ingested and parsed as JSON, will look something like this: {"type": "subscribe", "fired_at": "2009-03-26
# 21:35:57", "data": {...}}", and the same page's signature samples parse the raw body with json.loads:
# https://github.com/mailchimp/fern-marketing-api-docs/blob/HEAD/fern/docs/pages/api-concepts/webhooks.mdx
@pytest.mark.parametrize("fired_at", ["2009-03-26 21:35:57", "2009-03-26T21:35:57+00:00"])
def test_a_webhook_delivered_as_json_reads_as_the_form_it_stands_for(mailchimp_emulator, fired_at):
    lid = mailchimp_emulator.list_id
    data = {"id": "8a25ff1d98", "list_id": lid, "email": "Ana@Example.com", "email_type": "html",
            "ip_opt": "198.51.100.7", "merges": {"EMAIL": "Ana@Example.com", "FNAME": "Ana", "LNAME": "Silva",
                                                 "ADDRESS": {"addr1": "1 High St", "city": "London"}}}
    as_json = json.dumps({"type": "unsubscribe", "fired_at": fired_at, "data": {**data, "action": "unsub"}})
    form = {"type": "unsubscribe", "fired_at": "2009-03-26 21:35:57", "data[action]": "unsub",
            **{f"data[{k}]": v for k, v in data.items() if not isinstance(v, dict)},
            **{f"data[merges][{k}]": v for k, v in data["merges"].items() if isinstance(v, str)}}
    adapter = make(mailchimp_emulator)
    [from_json] = adapter.parse_webhook(headers={"Content-Type": "application/json"}, body=as_json.encode())
    [from_form] = adapter.parse_webhook(headers={}, body=urlencode(form).encode())
    assert from_json == from_form
    assert from_json.kind == "unsubscribed" and from_json.email == "ana@example.com"
    assert from_json.occurred_at == dt.datetime(2009, 3, 26, 21, 35, 57, tzinfo=dt.UTC)
    assert from_json.payload["merges"] == {"EMAIL": "Ana@Example.com", "FNAME": "Ana", "LNAME": "Silva"}


# -- batch subscribe answers and failures part-way --------------------------------------------------
# POST /lists/{list_id}: "new_members", "updated_members" and "errors" are optional arrays of the answer, each
# error with "email_address", "error", "error_code" (ERROR_CONTACT_EXISTS, ERROR_GENERIC), "field" and
# "field_message" (API reference, "Batch subscribe or unsubscribe").
def test_a_batch_subscribe_answer_with_null_or_missing_arrays_loses_nobody(mailchimp_emulator):
    mailchimp_emulator.inject(
        Fault(200, {"new_members": None, "errors": None, "total_created": 0}, method="POST",
              path_pattern=r"/lists/[^/]+$")
    )
    results = make(mailchimp_emulator).write_contacts([request(i, f"n{i}@example.com") for i in range(2)])
    # nobody was reported: the upsert (status_if_new, never a forced status) writes them
    assert all(r.ok for r in results) and mailchimp_emulator.member("n1@example.com")["status"] == "pending"


def test_a_member_error_naming_a_field_is_a_data_problem_not_retried(mailchimp_emulator):
    error = {"email_address": "n0@example.com", "error": "Please provide a valid value.",
             "error_code": "ERROR_GENERIC", "field": "merge_fields.BIRTHDAY", "field_message": "Invalid date"}
    mailchimp_emulator.inject(
        Fault(200, {"new_members": [], "updated_members": [], "errors": [error], "error_count": 1}, method="POST",
              path_pattern=r"/lists/[^/]+$")
    )
    [result] = make(mailchimp_emulator).write_contacts([request(0, "n0@example.com")])
    assert not result.ok and not result.retryable and "n0@" not in (result.error or "")


@pytest.mark.parametrize(
    "faults",
    [
        [Fault(503, {"title": "Service Unavailable", "status": 503}, method="POST", path_pattern=r"/batches$")] * 3,
        [Fault(404, {"title": "Resource Not Found", "status": 404}, method="GET", path_pattern="/batches/b0+1$")],
    ],
    ids=["5xx-outlasting-retries", "job-gone"],
)
def test_a_failure_part_way_keeps_what_was_written(mailchimp_emulator, faults):
    ids = mailchimp_emulator.seed(25)
    down = Fault(503, {"title": "Service Unavailable", "status": 503}, method="POST", path_pattern=r"/batches$")
    mailchimp_emulator.inject(*faults)
    adapter = make(mailchimp_emulator, attempts=3)
    reqs = [request(i, f"new{i}@example.com") for i in range(3)]  # created first, in one batch subscribe
    reqs += [request(3 + i, f"contact{i}@example.com", remote_id=ids[i], FNAME="Later") for i in range(25)]
    results = {r.ref: r for r in adapter.write_contacts(reqs)}
    assert len(results) == 28
    created = [results[f"r{i}"] for i in range(3)]
    assert all(r.ok and r.remote_id == mailchimp_emulator.member(f"new{i}@example.com")["contact_id"]
               for i, r in enumerate(created))
    assert all(not results[f"r{3 + i}"].ok and results[f"r{3 + i}"].retryable for i in range(25))
    assert all("@" not in (results[f"r{3 + i}"].error or "") for i in range(25))
    # with nothing written at all, the failure goes up: the engine stops this provider for the run
    mailchimp_emulator.inject(*[down] * 3)
    with pytest.raises(RetryableError):
        adapter.write_contacts(reqs[3:])


def test_members_whose_tags_were_not_written_are_not_reported_written(mailchimp_emulator):
    ids = mailchimp_emulator.seed(21)
    adapter = make(mailchimp_emulator, attempts=2)
    moved = [WriteRequest(ref=f"m{i}", remote_id=ids[i], email=f"moved{i}@example.com",
                          previous_email=f"contact{i}@example.com", fields={"tags": ["moved"]}) for i in range(21)]
    # the address changes are one job; the moved members' tags a second, whose status never answers
    mailchimp_emulator.inject(*[Fault(503, {"status": 503}, method="GET", path_pattern="/batches/b000000002")] * 2)
    results = {r.ref: r for r in adapter.write_contacts([request(0, "new0@example.com"), *moved])}
    assert results["r0"].ok
    assert all(not results[f"m{i}"].ok and results[f"m{i}"].retryable for i in range(21))


# -- the emulator as strict, and as lenient, as the reference ---------------------------------------
# Batch subscribe members: "anyOf": [{"required": ["status"]}, {"required": ["status_if_new"]}]; the members
# listing's sort_dir is an enum of "ASC" and "DESC" (API reference, openapi.json above).
def test_emulator_batch_subscribe_takes_status_if_new_and_sort_dir_is_an_enum(mailchimp_emulator):
    mailchimp_emulator.seed(8)  # contact7 is unsubscribed
    lid = mailchimp_emulator.list_id
    members = [{"email_address": "new@example.com", "status_if_new": "pending"},
               {"email_address": "contact7@example.com", "status_if_new": "subscribed", "merge_fields": {"FNAME": "X"}}]
    answer = requests.post(f"{mailchimp_emulator.api_url}/lists/{lid}", auth=("x", mailchimp_emulator.api_key),
                           json={"members": members, "update_existing": True}, timeout=5)
    assert answer.status_code == 200 and answer.json()["error_count"] == 0
    assert mailchimp_emulator.member("new@example.com")["status"] == "pending"
    kept = mailchimp_emulator.member("contact7@example.com")
    assert kept["status"] == "unsubscribed" and kept["merge_fields"]["FNAME"] == "X"
    neither = requests.post(f"{mailchimp_emulator.api_url}/lists/{lid}", auth=("x", mailchimp_emulator.api_key),
                            json={"members": [{"email_address": "n@example.com"}]}, timeout=5)
    assert neither.status_code == 400
    assert get(mailchimp_emulator, f"/lists/{lid}/members", sort_field="last_changed", sort_dir="up").status_code == 400
    assert get(mailchimp_emulator, f"/lists/{lid}/members", sort_field="last_changed", sort_dir="ASC").ok
