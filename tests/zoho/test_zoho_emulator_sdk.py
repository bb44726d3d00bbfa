"""The Zoho emulator driven by the official SDK (zohocrmsdk8-0), pointed at it with a custom Environment."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken  # noqa: E402
from zohocrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.header_map import HeaderMap  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.parameter_map import ParameterMap  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.record import (  # noqa: E402
    ActionWrapper,
    APIException,
    BodyWrapper,
    DeletedRecordsWrapper,
    GetDeletedRecordsHeader,
    GetDeletedRecordsParam,
    GetRecordsHeader,
    GetRecordsParam,
    Record,
    RecordOperations,
    ResponseWrapper,
)
from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.tags import NewTagRequestWrapper, Tag, TagsOperations  # noqa: E402

from adapters.zoho.emulator import ZohoEmulator


@pytest.fixture
def zoho(tmp_path: Path) -> Iterator[ZohoEmulator]:
    with ZohoEmulator() as emulator:
        env = DataCenter.Environment(emulator.url, emulator.accounts_url, emulator.url)
        token = OAuthToken(
            client_id=emulator.client_id,
            client_secret=emulator.client_secret,
            refresh_token=emulator.refresh_token,
            find_user=False,
        )
        config = SDKConfig(
            auto_refresh_fields=False,
            pick_list_validation=False,
            update_api_domain=False,
            read_timeout=10,
            connect_timeout=5,
        )
        Initializer.initialize(
            environment=env,
            token=token,
            store=FileStore(str(tmp_path / "tokens.csv")),
            sdk_config=config,
            resource_path=str(tmp_path),
        )
        yield emulator


def get_records(**params: Any) -> Any:
    headers = params.pop("headers", {})
    pm = ParameterMap()
    for name, value in params.items():
        pm.add(getattr(GetRecordsParam, name), value)
    hm = HeaderMap()
    for name, value in headers.items():
        hm.add(getattr(GetRecordsHeader, name), value)
    return RecordOperations("Contacts").get_records(pm, hm)


def test_sdk_reads_every_page_with_page_tokens(zoho: ZohoEmulator) -> None:
    ids = set(zoho.seed(450))
    seen: list[str] = []
    response = get_records(fields="Email,Last_Name,Modified_Time", per_page=200)
    while True:
        body = response.get_object()
        assert isinstance(body, ResponseWrapper)
        seen += [str(r.get_id()) for r in body.get_data()]
        token = body.get_info().get_next_page_token()
        if not body.get_info().get_more_records():
            assert token is None
            break
        response = get_records(fields="Email,Last_Name,Modified_Time", per_page=200, page_token=token)
    assert len(seen) == 450 and set(seen) == ids
    assert zoho.call_count("GET", r"/Contacts$") == 3
    assert zoho.refreshes() == 1


def test_sdk_gets_zoho_errors_for_missing_fields_and_page_cap(zoho: ZohoEmulator) -> None:
    zoho.seed(3)
    body = get_records(per_page=10).get_object()
    assert isinstance(body, APIException)
    assert body.get_code().get_value() == "REQUIRED_PARAM_MISSING"
    capped = get_records(fields="Email", per_page=200, page=11)
    assert capped.get_status_code() == 400
    assert capped.get_object().get_code().get_value() == "DISCRETE_PAGINATION_LIMIT_EXCEEDED"


def test_sdk_if_modified_since_gives_304_then_changes(zoho: ZohoEmulator) -> None:
    ids = zoho.seed(3)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    response = get_records(fields="Email", headers={"if_modified_since": later})
    assert response.get_status_code() == 304 and response.get_object() is None
    zoho.advance_clock(10)
    zoho.edit(ids[1], First_Name="Changed")
    body = get_records(
        fields="Email,First_Name,Modified_Time",
        sort_by="Modified_Time",
        sort_order="asc",
        headers={"if_modified_since": later},
    ).get_object()
    assert [str(r.get_id()) for r in body.get_data()] == [ids[1]]
    assert body.get_data()[0].get_key_value("Modified_Time").tzinfo is not None


def test_sdk_upsert_reports_per_record_results(zoho: ZohoEmulator) -> None:
    zoho.seed(2)
    records = []
    for email, last in (("contact0@example.com", "Updated"), ("new@example.com", None), ("fresh@example.com", "F")):
        record = Record()
        record.add_key_value("Email", email)
        if last:
            record.add_key_value("Last_Name", last)
        records.append(record)
    request = BodyWrapper()
    request.set_data(records)
    request.set_duplicate_check_fields(["Email"])
    response = RecordOperations("Contacts").upsert_records(request, HeaderMap())
    assert response.get_status_code() == 207
    body = response.get_object()
    assert isinstance(body, ActionWrapper)
    results = body.get_data()
    assert [r.get_status().get_value() for r in results] == ["success", "error", "success"]
    assert results[0].get_details()["id"] and results[0].get_code().get_value() == "SUCCESS"
    assert results[1].get_code().get_value() == "MANDATORY_NOT_FOUND"
    assert zoho.find("fresh@example.com") is not None
    assert zoho.find("contact0@example.com")["Last_Name"] == "Updated"


def test_sdk_lists_deleted_records(zoho: ZohoEmulator) -> None:
    ids = zoho.seed(3)
    zoho.delete(ids[0])
    pm = ParameterMap()
    pm.add(GetDeletedRecordsParam.type, "all")
    response = RecordOperations("Contacts").get_deleted_records(pm, HeaderMap())
    body = response.get_object()
    assert isinstance(body, DeletedRecordsWrapper)
    assert [str(d.get_id()) for d in body.get_data()] == [ids[0]]
    hm = HeaderMap()
    hm.add(GetDeletedRecordsHeader.if_modified_since, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    assert RecordOperations("Contacts").get_deleted_records(pm, hm).get_status_code() == 304


def test_sdk_adds_tags_to_many_records(zoho: ZohoEmulator) -> None:
    ids = zoho.seed(3)
    tag = Tag()
    tag.set_name("webinar")
    request = NewTagRequestWrapper()
    request.set_tags([tag])
    request.set_ids([int(i) for i in ids])
    request.set_over_write(False)
    response = TagsOperations().add_tags_to_multiple_records("Contacts", request)
    assert response.get_status_code() == 200
    assert all(r.get_status().get_value() == "success" for r in response.get_object().get_data())
    assert all("webinar" in {t["name"] for t in zoho.contact(i)["Tag"]} for i in ids)


def test_sdk_sees_invalid_token_after_expiry(zoho: ZohoEmulator) -> None:
    zoho.seed(1)
    assert isinstance(get_records(fields="Email").get_object(), ResponseWrapper)
    zoho.expire_tokens()
    response = get_records(fields="Email")
    assert response.get_status_code() == 401
    assert response.get_object().get_code().get_value() == "INVALID_TOKEN"


def test_sdk_updates_records_by_id(zoho: ZohoEmulator) -> None:
    [rid] = zoho.seed(1)
    record = Record()
    record.set_id(int(rid))
    record.add_key_value("Title", "Chief")
    request = BodyWrapper()
    request.set_data([record])
    response = RecordOperations("Contacts").update_records(request, HeaderMap())
    assert response.get_status_code() == 200
    [result] = response.get_object().get_data()
    assert result.get_status().get_value() == "success"
    assert zoho.contact(rid)["Title"] == "Chief"


def test_sdk_enables_a_notification_channel(zoho: ZohoEmulator) -> None:
    from zohocrmsdk.src.com.zoho.crm.api.notifications import (
        BodyWrapper as WatchBody,
    )
    from zohocrmsdk.src.com.zoho.crm.api.notifications import (
        Notification,
        NotificationsOperations,
    )

    channel = Notification()
    channel.set_channel_id("1000000068001")
    channel.set_events(["Contacts.all"])
    channel.set_notify_url("http://127.0.0.1:9/webhooks/zoho")
    channel.set_token("tok-1")
    channel.set_channel_expiry(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    request = WatchBody()
    request.set_watch([channel])
    response = NotificationsOperations().enable_notifications(request)
    assert response.get_status_code() == 201  # OAS v8.0 createNotifications
    [answer] = response.get_object().get_watch()
    assert answer.get_status().get_value() == "success"
    [stored] = list(zoho.iter_channels())
    assert stored.channel_id == "1000000068001" and stored.token == "tok-1"
