"""The ActiveCampaign emulator over plain HTTP, against the documented request/response shapes.

No official Python SDK is among the test dependencies, so ``requests`` plays the client
(/work/shared/providers/activecampaign.md).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests

from adapters._emulator import Fault
from adapters.activecampaign.emulator import ActiveCampaignEmulator


@pytest.fixture
def ac() -> Iterator[ActiveCampaignEmulator]:
    with ActiveCampaignEmulator() as emulator:
        yield emulator


def call(ac: ActiveCampaignEmulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, ac.url + "/api/3" + path, headers={"Api-Token": ac.api_token}, timeout=5, **kwargs)


def test_a_wrong_token_is_refused(ac):
    answer = requests.get(ac.url + "/api/3/contacts", headers={"Api-Token": "nope"}, timeout=5)
    assert answer.status_code == 403 and "message" in answer.json()


def test_contacts_page_by_id_keyset_at_most_100_with_total_as_text(ac):
    ids = ac.seed(130)
    first = call(ac, "GET", "/contacts", params={"limit": 500, "orders[id]": "ASC"}).json()
    assert len(first["contacts"]) == 100 and first["meta"]["total"] == "130"
    last = first["contacts"][-1]["id"]
    rest = call(ac, "GET", "/contacts", params={"limit": 100, "orders[id]": "ASC", "id_greater": last}).json()
    assert [c["id"] for c in first["contacts"] + rest["contacts"]] == ids
    default = call(ac, "GET", "/contacts").json()
    assert len(default["contacts"]) == 20  # limit defaults to 20


def test_udate_carries_the_account_offset_and_updated_after_filters(ac):
    ids = ac.seed(3)
    contact = call(ac, "GET", f"/contacts/{ids[0]}").json()["contact"]
    assert contact["udate"].endswith("-05:00")
    stamp = dt.datetime.fromisoformat(contact["udate"])
    later = (stamp + dt.timedelta(seconds=1)).isoformat()
    assert call(ac, "GET", "/contacts", params={"filters[updated_after]": later}).json()["contacts"] == []
    earlier = (stamp - dt.timedelta(seconds=1)).isoformat()
    assert len(call(ac, "GET", "/contacts", params={"filters[updated_after]": earlier}).json()["contacts"]) == 3


def test_sideloading_includes_lists_tags_and_field_values(ac):
    ac.seed(8)
    body = call(
        ac, "GET", "/contacts", params={"limit": 8, "include": "contactLists,contactTags.tag,fieldValues"}
    ).json()
    assert {row["status"] for row in body["contactLists"]} == {"1", "2"}
    assert {tag["tag"] for tag in body["tags"]} == {"customer", "vip"}
    assert all(row["field"] in ("1", "2", "3") for row in body["fieldValues"])
    assert "contactLists" not in call(ac, "GET", "/contacts").json()


def test_sync_creates_then_updates_by_email_with_field_values(ac):
    payload = {
        "contact": {"email": "ana@example.com", "firstName": "Ana", "fieldValues": [{"field": "1", "value": "Acme"}]}
    }
    first = call(ac, "POST", "/contact/sync", json=payload)
    assert first.status_code == 201
    payload["contact"]["firstName"] = "Anna"
    second = call(ac, "POST", "/contact/sync", json=payload).json()
    assert second["contact"]["id"] == first.json()["contact"]["id"]
    assert ac.find("ana@example.com")["firstName"] == "Anna"
    assert ac.find("ana@example.com")["fields"] == {"COMPANY": "Acme"}


def test_invalid_email_and_duplicate_create_answer_422_errors(ac):
    bad = call(ac, "POST", "/contact/sync", json={"contact": {"email": "not-an-address"}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["code"] == "email_invalid"
    call(ac, "POST", "/contacts", json={"contact": {"email": "bo@example.com"}})
    dup = call(ac, "POST", "/contacts", json={"contact": {"email": "bo@example.com"}})
    assert dup.status_code == 422 and dup.json()["errors"][0]["code"] == "duplicate"


def test_missing_contact_answers_the_documented_404(ac):
    answer = call(ac, "GET", "/contacts/999")
    assert answer.status_code == 404 and answer.json() == {"message": "No result found for contact with id 999"}


def test_an_unsubscribed_contact_is_not_resubscribed_without_sourceid_4(ac):
    cid = ac.seed(1)[0]
    ac.unsubscribe("contact0@example.com")
    call(ac, "POST", "/contactLists", json={"contactList": {"list": ac.list_id, "contact": cid, "status": 1}})
    assert ac.find("contact0@example.com")["listStatus"] == "2"
    call(
        ac,
        "POST",
        "/contactLists",
        json={"contactList": {"list": ac.list_id, "contact": cid, "status": 1, "sourceid": 4}},
    )
    assert ac.find("contact0@example.com")["listStatus"] == "1"


def test_tags_are_attached_by_id_and_detached_by_row(ac):
    cid = ac.seed(1)[0]
    tag = call(ac, "POST", "/tags", json={"tag": {"tag": "gold", "tagType": "contact"}}).json()["tag"]
    row = call(ac, "POST", "/contactTags", json={"contactTag": {"contact": cid, "tag": tag["id"]}}).json()["contactTag"]
    assert "gold" in ac.find("contact0@example.com")["tags"]
    assert call(ac, "DELETE", f"/contactTags/{row['id']}").json() == {}
    assert "gold" not in ac.find("contact0@example.com")["tags"]
    assert (
        call(ac, "POST", "/tags", json={"tag": {"tag": "gold"}}).status_code == 422
    )  # the tag outlives its row; names are unique
    assert call(ac, "GET", "/tags", params={"search": "gol"}).json()["tags"][0]["tag"] == "gold"


def test_bulk_import_caps_at_250_and_never_resubscribes(ac):
    too_many = [{"email": f"p{i}@example.com"} for i in range(251)]
    refused = call(ac, "POST", "/import/bulk_import", json={"contacts": too_many})
    assert refused.status_code == 400 and refused.json()["success"] == 0
    ac.seed(1)
    ac.unsubscribe("contact0@example.com")
    rows = [
        {"email": "contact0@example.com", "subscribe": [{"listid": ac.list_id}], "tags": ["x"]},
        {
            "email": "new@example.com",
            "first_name": "New",
            "subscribe": [{"listid": ac.list_id}],
            "fields": [{"id": 2, "value": "CTO"}],
        },
        {"email": "broken"},
    ]
    queued = call(ac, "POST", "/import/bulk_import", json={"contacts": rows}).json()
    assert queued["Success"] == 1 and queued["queued_contacts"] == 3
    info = call(ac, "GET", "/import/info", params={"batchId": queued["batchId"]}).json()
    assert info["success"] == 2 and info["failure"] == 1
    assert ac.find("contact0@example.com")["listStatus"] == "2"
    assert ac.find("new@example.com")["listStatus"] == "1" and ac.find("new@example.com")["fields"] == {
        "JOB_TITLE": "CTO"
    }


def test_rate_limit_answers_429_with_retry_after(ac):
    ac.rate_limit = 5
    statuses = [call(ac, "GET", "/contacts") for _ in range(7)]
    limited = [a for a in statuses if a.status_code == 429]
    assert limited and limited[0].headers["Retry-After"].isdigit() and limited[0].headers["RateLimit-Remaining"] == "0"


def test_faults_and_counters(ac):
    ac.inject(Fault(503, {"message": "unavailable"}, path_pattern="/contacts"))
    assert call(ac, "GET", "/contacts").status_code == 503
    assert call(ac, "GET", "/contacts").status_code == 200
    call(ac, "POST", "/contact/sync", json={"contact": {"email": "a@example.com"}})
    assert ac.read_calls() == 2 and ac.write_calls() == 1


class _Sink(BaseHTTPRequestHandler):
    received: list[dict[str, str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        assert self.headers["Content-Type"] == "application/x-www-form-urlencoded"
        self.received.append({k: v[0] for k, v in parse_qs(body).items()})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def test_webhooks_are_form_encoded_and_leave_out_unsubscribed_sources(ac):
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{sink.server_address[1]}/hook"
        hook = {
            "webhook": {
                "name": "crmsync",
                "url": url,
                "events": ["unsubscribe", "update"],
                "sources": ["public", "admin"],
            }
        }
        assert call(ac, "POST", "/webhooks", json=hook).status_code == 201
        cid = ac.seed(1)[0]
        call(ac, "POST", "/contact/sync", json={"contact": {"email": "contact0@example.com"}})  # api: not sent
        ac.unsubscribe("contact0@example.com")
        ac.edit(cid, firstName="Zed")
        kinds = [(form["type"], form["contact[id]"]) for form in _Sink.received]
        assert kinds == [("unsubscribe", cid), ("update", cid)]
        assert _Sink.received[0]["list"] == ac.list_id
    finally:
        sink.shutdown()
        sink.server_close()
        _Sink.received.clear()


def test_delete_leaves_no_trace(ac):
    ids = ac.seed(3)
    ac.delete(ids[1])
    listed = [c["id"] for c in call(ac, "GET", "/contacts").json()["contacts"]]
    assert listed == [ids[0], ids[2]]
    assert call(ac, "GET", "/contacts", params={"ids": ",".join(ids)}).json()["meta"]["total"] == "2"
