"""The Zoho emulator's own rules, over plain HTTP with the documented shapes (providers/zoho.md)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from adapters.zoho.emulator import ZohoEmulator


@pytest.fixture
def zoho() -> Iterator[ZohoEmulator]:
    with ZohoEmulator() as emulator:
        yield emulator


def token(zoho: ZohoEmulator, **form: str) -> dict[str, Any]:
    data = {
        "grant_type": "refresh_token",
        "client_id": zoho.client_id,
        "client_secret": zoho.client_secret,
        "refresh_token": zoho.refresh_token,
        **form,
    }
    return requests.post(zoho.accounts_url, data=data, timeout=5).json()


def api(zoho: ZohoEmulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Zoho-oauthtoken {token(zoho)['access_token']}", **kwargs.pop("headers", {})}
    return requests.request(method, zoho.url + "/crm/v8" + path, headers=headers, timeout=5, **kwargs)


def test_token_answer_carries_scope_api_domain_and_expiry(zoho: ZohoEmulator) -> None:
    answer = token(zoho)
    assert set(answer) == {"access_token", "scope", "api_domain", "token_type", "expires_in"}
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 3600 and answer["api_domain"] == zoho.url
    assert token(zoho, client_secret="nope") == {"error": "invalid_client"}
    assert token(zoho, refresh_token="1000.nope") == {"error": "invalid_code"}


def test_refresh_budget_is_ten_per_ten_minutes(zoho: ZohoEmulator) -> None:
    for _ in range(10):
        assert "access_token" in token(zoho)
    refused = requests.post(
        zoho.accounts_url,
        timeout=5,
        data={
            "grant_type": "refresh_token",
            "client_id": zoho.client_id,
            "client_secret": zoho.client_secret,
            "refresh_token": zoho.refresh_token,
        },
    )
    assert refused.status_code == 400 and refused.json()["error"] == "Access Denied"


def test_auth_header_must_be_zoho_oauthtoken(zoho: ZohoEmulator) -> None:
    bearer = requests.get(
        zoho.url + "/crm/v8/Contacts",
        params={"fields": "Email"},
        timeout=5,
        headers={"Authorization": f"Bearer {token(zoho)['access_token']}"},
    )
    assert bearer.status_code == 401 and bearer.json()["code"] == "AUTHENTICATION_FAILURE"


def test_page_token_is_bound_to_its_query(zoho: ZohoEmulator) -> None:
    zoho.seed(5)
    params = {"fields": "Email", "per_page": 2, "sort_by": "Modified_Time", "sort_order": "asc"}
    first = api(zoho, "GET", "/Contacts", params=params).json()
    next_token = first["info"]["next_page_token"]
    same = api(zoho, "GET", "/Contacts", params={**params, "page_token": next_token})
    assert same.status_code == 200 and same.json()["info"]["count"] == 2
    changed = api(zoho, "GET", "/Contacts", params={**params, "per_page": 3, "page_token": next_token})
    assert changed.status_code == 400 and changed.json()["code"] == "TOKEN_BOUND_DATA_MISMATCH"
    both = api(zoho, "GET", "/Contacts", params={**params, "page": 2, "page_token": next_token})
    assert both.status_code == 400 and both.json()["code"] == "AMBIGUITY_DURING_PROCESSING"


def test_page_param_stops_at_2000_and_page_token_at_its_cap() -> None:
    with ZohoEmulator(page_token_row_cap=4) as zoho:
        zoho.seed(6)
        capped = api(zoho, "GET", "/Contacts", params={"fields": "Email", "page": 11})
        assert capped.status_code == 400 and capped.json()["code"] == "DISCRETE_PAGINATION_LIMIT_EXCEEDED"
        params = {"fields": "Email", "per_page": 2}
        page = api(zoho, "GET", "/Contacts", params=params).json()
        page = api(zoho, "GET", "/Contacts", params={**params, "page_token": page["info"]["next_page_token"]}).json()
        beyond = api(zoho, "GET", "/Contacts", params={**params, "page_token": page["info"]["next_page_token"]})
        assert beyond.status_code == 400 and beyond.json()["code"] == "PAGINATION_LIMIT_EXCEEDED"


def test_field_and_page_size_limits(zoho: ZohoEmulator) -> None:
    zoho.seed(1)
    too_many = api(zoho, "GET", "/Contacts", params={"fields": ",".join(["Email"] * 51)})
    assert too_many.status_code == 400 and too_many.json()["code"] == "LIMIT_EXCEEDED"
    big_page = api(zoho, "GET", "/Contacts", params={"fields": "Email", "per_page": 201})
    assert big_page.status_code == 400
    missing = api(zoho, "GET", "/Contacts", params={"per_page": 10})
    assert missing.json() == {
        "code": "REQUIRED_PARAM_MISSING",
        "details": {"param_name": "fields"},
        "message": "One of the expected parameter is missing",
        "status": "error",
    }


def test_if_modified_since_takes_iso_and_http_dates(zoho: ZohoEmulator) -> None:
    zoho.seed(2)
    for value in ("2999-01-01T00:00:00+05:30", "Tue, 01 Jan 2999 00:00:00 GMT"):
        assert (
            api(zoho, "GET", "/Contacts", params={"fields": "Email"}, headers={"If-Modified-Since": value}).status_code
            == 304
        )
    assert (
        api(
            zoho,
            "GET",
            "/Contacts",
            params={"fields": "Email"},
            headers={"If-Modified-Since": "2000-01-01T00:00:00+00:00"},
        ).json()["info"]["count"]
        == 2
    )


def test_upsert_caps_at_100_and_charges_a_credit_per_ten(zoho: ZohoEmulator) -> None:
    rows = [{"Email": f"u{i}@example.com", "Last_Name": "U"} for i in range(101)]
    assert api(zoho, "POST", "/Contacts/upsert", json={"data": rows}).json()["code"] == "LIMIT_EXCEEDED"
    before = zoho.credits_used
    answer = api(zoho, "POST", "/Contacts/upsert", json={"data": rows[:100], "duplicate_check_fields": ["Email"]})
    assert answer.status_code == 200 and zoho.credits_used - before == 10
    assert {r["action"] for r in answer.json()["data"]} == {"insert"}
    again = api(zoho, "POST", "/Contacts/upsert", json={"data": rows[:1]}).json()["data"][0]
    assert again["action"] == "update" and again["duplicate_field"] == "Email"
    bad = api(zoho, "POST", "/Contacts/upsert", json={"data": rows[:1], "duplicate_check_fields": ["Phone"]})
    assert bad.status_code == 400


def test_credits_header_and_exhaustion() -> None:
    with ZohoEmulator(credits=4) as zoho:
        first = api(zoho, "GET", "/Contacts", params={"fields": "Email"})
        assert "X-API-CREDITS-REMAINING" not in first.headers
        second = api(zoho, "GET", "/Contacts", params={"fields": "Email"})
        assert second.headers["X-API-CREDITS-REMAINING"] == "2"
        api(zoho, "GET", "/Contacts", params={"fields": "Email"})
        api(zoho, "GET", "/Contacts", params={"fields": "Email"})
        spent = api(zoho, "GET", "/Contacts", params={"fields": "Email"})
        assert spent.status_code == 429 and spent.json()["code"] == "TOO_MANY_REQUESTS"


def test_concurrency_cap_answers_429() -> None:
    with ZohoEmulator(max_concurrency=1, work_s=0.5) as zoho:
        auth = {"Authorization": f"Zoho-oauthtoken {token(zoho)['access_token']}"}
        statuses: list[int] = []
        barrier = threading.Barrier(3)

        def call() -> None:
            barrier.wait()
            statuses.append(
                requests.get(
                    zoho.url + "/crm/v8/Contacts", params={"fields": "Email"}, headers=auth, timeout=5
                ).status_code
            )

        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert 429 in statuses and 204 in statuses


def test_deleted_records_list_by_type(zoho: ZohoEmulator) -> None:
    ids = zoho.seed(3)
    zoho.delete(ids[0])
    zoho.delete(ids[2])
    body = api(zoho, "GET", "/Contacts/deleted", params={"type": "all"}).json()
    assert [d["id"] for d in body["data"]] == [ids[2], ids[0]]  # newest first
    assert set(body["data"][0]) == {"deleted_by", "id", "display_name", "type", "created_by", "deleted_time"}
    assert api(zoho, "GET", "/Contacts/deleted", params={"type": "permanent"}).status_code == 204
    assert api(zoho, "GET", "/Contacts/deleted", params={"type": "nope"}).status_code == 400


def test_watch_patch_and_disable(zoho: ZohoEmulator) -> None:
    enable = {
        "watch": [
            {
                "channel_id": "1000000068001",
                "events": ["Contacts.all"],
                "notify_url": "http://127.0.0.1:9/x",
                "token": "t",
            }
        ]
    }
    assert api(zoho, "POST", "/actions/watch", json=enable).json()["watch"][0]["code"] == "SUCCESS"
    patched = api(
        zoho, "PATCH", "/actions/watch", json={"watch": [{"channel_id": "1000000068001", "events": ["Contacts.edit"]}]}
    )
    assert patched.json()["watch"][0]["status"] == "success"
    assert api(zoho, "GET", "/actions/watch").json()["watch"][0]["events"] == ["Contacts.edit"]
    gone = api(zoho, "DELETE", "/actions/watch", params={"channel_ids": "1000000068001,42"})
    assert [w["code"] for w in gone.json()["watch"]] == ["SUCCESS", "NOT_SUBSCRIBED"]
    assert api(zoho, "GET", "/actions/watch").status_code == 204


def test_an_opt_out_records_its_time_once_whoever_sets_it(zoho: ZohoEmulator) -> None:
    [by_api, by_ui] = zoho.seed(2, prefix="optout")
    zoho.edit(by_api, Email_Opt_Out=False)
    zoho.edit(by_ui, Email_Opt_Out=False)
    zoho.advance_clock(60)
    answer = api(zoho, "PUT", "/Contacts", json={"data": [{"id": by_api, "Email_Opt_Out": True}]})
    assert answer.status_code == 200, answer.text
    zoho.unsubscribe(zoho.contact(by_ui)["Email"])
    stamped = {i: zoho.contact(i)["Unsubscribed_Time"] for i in (by_api, by_ui)}
    assert all(stamped.values()) and {zoho.contact(i)["Unsubscribed_Mode"] for i in stamped} == {"Manual"}
    zoho.advance_clock(60)
    zoho.edit(by_api, First_Name="Radia")  # an edit moves Modified_Time, not the opt-out's time
    zoho.unsubscribe(zoho.contact(by_ui)["Email"])  # already opted out: nothing to do
    for record_id, at in stamped.items():
        record = zoho.contact(record_id)
        assert record["Unsubscribed_Time"] == at
    assert zoho.contact(by_api)["Modified_Time"] > stamped[by_api]
    assert zoho.contact(by_ui)["Modified_Time"] == stamped[by_ui]
