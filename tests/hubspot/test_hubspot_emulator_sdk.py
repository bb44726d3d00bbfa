"""The HubSpot emulator, driven by the official hubspot-api-client over real HTTP."""

from __future__ import annotations

import json

import pytest
from hubspot import HubSpot
from hubspot.communication_preferences import ApiException as PrefsApiException
from hubspot.communication_preferences.models import PublicUpdateSubscriptionStatusRequest
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    PublicGdprDeleteInput,
    PublicMergeInput,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
    SimplePublicObjectInputForCreate,
)
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.util.retry import Retry

from adapters._emulator import DROP, Fault
from adapters.hubspot.emulator import TOKEN, HubSpotEmulator

T = (2, 5)


@pytest.fixture
def emu(hubspot_emulator: HubSpotEmulator) -> HubSpotEmulator:
    hubspot_emulator.limits.burst, hubspot_emulator.limits.search_per_s = 1000, 5  # search at HubSpot's 5/s
    return hubspot_emulator


def client(emu: HubSpotEmulator, token: str = TOKEN) -> HubSpot:
    return HubSpot(access_token=token, host=emu.url, retry=Retry(total=0, redirect=0, raise_on_status=False))


def test_list_pages_with_record_id_cursor(emu):
    emu.seed(250)
    api = client(emu).crm.contacts.basic_api
    seen, after, calls = [], None, 0
    while True:
        page = api.get_page(limit=100, after=after, properties=["email", "crmsync_tags"], _request_timeout=T)
        calls += 1
        seen += [r.properties["email"] for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert calls == 3
    assert len(set(seen)) == 250
    assert seen[0] == "contact0@example.com"


def test_list_rejects_a_page_over_100(emu):
    with pytest.raises(ApiException) as exc:
        client(emu).crm.contacts.basic_api.get_page(limit=101, _request_timeout=T)
    assert exc.value.status == 400


def test_bad_token_is_401(emu):
    with pytest.raises(ApiException) as exc:
        client(emu, "wrong").crm.contacts.basic_api.get_page(_request_timeout=T)
    assert exc.value.status == 401
    assert json.loads(exc.value.body)["category"] == "INVALID_AUTHENTICATION"


def test_create_duplicate_email_is_409_naming_the_existing_id(emu):
    (first,) = emu.seed(1)
    api = client(emu).crm.contacts.basic_api
    with pytest.raises(ApiException) as exc:
        api.create(SimplePublicObjectInputForCreate(properties={"email": "contact0@example.com"}), _request_timeout=T)
    assert exc.value.status == 409
    assert json.loads(exc.value.body)["message"] == f"Contact already exists. Existing ID: {first}"


def test_search_pages_by_offset_and_stops_at_10000(emu):
    emu.seed(10_050)
    api = client(emu).crm.contacts.search_api
    request = PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "0"}]}],
        sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        properties=["email"], limit=200, after="9800",
    )
    emu.limits.search_per_s = 1000
    page = api.do_search(request, _request_timeout=T)
    assert page.total == 10_050 and len(page.results) == 200
    assert page.paging.next.after == "10000"
    request.after = "10000"
    with pytest.raises(ApiException) as exc:
        api.do_search(request, _request_timeout=T)
    assert exc.value.status == 400


def test_search_is_limited_to_five_a_second(emu):
    api = client(emu).crm.contacts.search_api
    statuses = []
    for _ in range(8):
        try:
            api.do_search(PublicObjectSearchRequest(limit=1), _request_timeout=T)
            statuses.append(200)
        except ApiException as exc:
            statuses.append(exc.status)
            body = json.loads(exc.body)
            assert body["errorType"] == "RATE_LIMIT"
    assert statuses.count(429) >= 3


def test_ten_secondly_429_body_and_headers(emu):
    emu.limits.burst = 2
    api = client(emu).crm.contacts.basic_api
    api.get_page(_request_timeout=T)
    api.get_page(_request_timeout=T)
    with pytest.raises(ApiException) as exc:
        api.get_page(_request_timeout=T)
    assert exc.value.status == 429
    assert json.loads(exc.value.body)["policyName"] == "TEN_SECONDLY_ROLLING"
    assert exc.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_daily_cap_is_a_429_with_policy_daily(emu):
    emu.limits.daily = 1
    api = client(emu).crm.contacts.basic_api
    api.get_page(_request_timeout=T)
    with pytest.raises(ApiException) as exc:
        api.get_page(_request_timeout=T)
    assert json.loads(exc.value.body)["policyName"] == "DAILY"


def test_batch_upsert_207_keeps_the_good_records(emu):
    emu.seed(1)
    api = client(emu).crm.contacts.batch_api
    inputs = [
        SimplePublicObjectBatchInputUpsert(id_property="email", id="contact0@example.com", properties={"firstname": "Zed"}),
        SimplePublicObjectBatchInputUpsert(id_property="email", id="new@example.com", properties={"lastname": "New"}),
        SimplePublicObjectBatchInputUpsert(id_property="email", id="bad@example.com",
                                           properties={"lifecyclestage": "nonsense"}, object_write_trace_id="2"),
    ]
    resp = api.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs), _request_timeout=T)
    assert resp.num_errors == 1
    assert resp.errors[0].context["objectWriteTraceId"] == ["2"]
    assert sorted(r.new for r in resp.results) == [False, True]
    assert emu.find("contact0@example.com")["properties"]["firstname"] == "Zed"
    assert emu.find("bad@example.com") is None


def test_batch_upsert_refuses_unknown_and_read_only_properties(emu):
    api = client(emu).crm.contacts.batch_api
    for name in ("no_such_property", "hs_email_optout"):
        inputs = [SimplePublicObjectBatchInputUpsert(id_property="email", id="a@example.com", properties={name: "x"})]
        with pytest.raises(ApiException) as exc:
            api.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs), _request_timeout=T)
        assert exc.value.status == 400
        assert ("PROPERTY_DOESNT_EXIST" if name == "no_such_property" else "READ_ONLY_VALUE") in exc.value.body
    inputs = [SimplePublicObjectBatchInputUpsert(id_property="email", id="a@example.com", properties={})] * 101
    with pytest.raises(ApiException):
        api.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs), _request_timeout=T)


def test_merge_mints_a_new_id_and_old_ids_answer_with_the_survivor(emu):
    a, b = emu.seed(2)
    api = client(emu).crm.contacts.basic_api
    survivor = api.merge(PublicMergeInput(primary_object_id=a, object_id_to_merge=b), _request_timeout=T)
    assert survivor.id not in (a, b)
    got = api.get_by_id(b, properties=["email", "hs_merged_object_ids"], _request_timeout=T)
    assert got.id == survivor.id
    assert set(got.properties["hs_merged_object_ids"].split(";")) == {a, b}


def test_gdpr_delete_removes_and_blocklists(emu):
    (a,) = emu.seed(1)
    sdk = client(emu)
    sdk.crm.contacts.basic_api.purge(PublicGdprDeleteInput(object_id="contact0@example.com", id_property="email"),
                                     _request_timeout=T)
    assert emu.get(a) is None
    with pytest.raises(ApiException) as exc:
        sdk.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": "contact0@example.com"}),
                                          _request_timeout=T)
    assert exc.value.status == 400


def test_v3_unsubscribe_then_never_resubscribe(emu):
    emu.seed(1)
    prefs = client(emu).communication_preferences.status_api
    req = PublicUpdateSubscriptionStatusRequest(email_address="contact0@example.com", subscription_id="1002",
                                                legal_basis="CONSENT_WITH_NOTICE", legal_basis_explanation="asked")
    assert prefs.unsubscribe(req, _request_timeout=T).status == "NOT_SUBSCRIBED"
    with pytest.raises(PrefsApiException) as exc:
        prefs.subscribe(req, _request_timeout=T)
    assert exc.value.status == 400
    statuses = prefs.get_email_status("contact0@example.com", _request_timeout=T).subscription_statuses
    assert {s.id: s.status for s in statuses}["1002"] == "NOT_SUBSCRIBED"


def test_unsubscribe_all_sets_hs_email_optout(emu):
    (a,) = emu.seed(1, prefix="p")
    emu.unsubscribe("p0@example.com")
    got = client(emu).crm.contacts.basic_api.get_by_id(a, properties=["hs_email_optout"], _request_timeout=T)
    assert got.properties["hs_email_optout"] == "true"


def test_property_history_lists_every_version_newest_first(emu):
    (a,) = emu.seed(1, prefix="p")
    emu.advance(60)
    emu.unsubscribe("p0@example.com")
    emu.advance(60)
    emu.edit(a, firstname="Radia")
    api = client(emu).crm.contacts
    got = api.basic_api.get_by_id(
        a, properties=["firstname"], properties_with_history=["hs_email_optout", "firstname", "jobtitle"],
        _request_timeout=T,
    )
    optout = got.properties_with_history["hs_email_optout"]
    assert [v.value for v in optout] == ["true", "false"]
    assert optout[0].source_type == "EMAIL" and optout[0].timestamp > optout[1].timestamp
    assert optout[1].timestamp == got.created_at  # the value it was created with
    renamed = got.properties_with_history["firstname"]
    assert len(renamed) == 2 and renamed[0].value == "Radia" and renamed[0].source_type == "CRM_UI"
    assert got.properties_with_history["jobtitle"] == []  # never set
    # the record's own time moved with the rename; the opt-out's did not
    assert got.updated_at > optout[0].timestamp
    batch = api.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=a)], properties=["hs_email_optout"],
            properties_with_history=["hs_email_optout"],
        ),
        _request_timeout=T,
    )
    assert [v.value for v in batch.results[0].properties_with_history["hs_email_optout"]] == ["true", "false"]


def test_batch_read_with_history_takes_at_most_50(emu):
    ids = emu.seed(51, prefix="h")
    api = client(emu).crm.contacts.batch_api
    inputs = [SimplePublicObjectId(id=i) for i in ids]
    with pytest.raises(ApiException) as exc:
        api.read(BatchReadInputSimplePublicObjectId(inputs=inputs, properties=[], properties_with_history=["email"]),
                 _request_timeout=T)
    assert exc.value.status == 400
    done = api.read(BatchReadInputSimplePublicObjectId(inputs=inputs[:50], properties=[],
                                                       properties_with_history=["email"]), _request_timeout=T)
    assert len(done.results) == 50
    assert len(api.read(BatchReadInputSimplePublicObjectId(inputs=inputs, properties=["email"],
                                                           properties_with_history=[]),
                        _request_timeout=T).results) == 51  # 100 without history


def test_batch_read_requires_properties_and_properties_with_history(emu):
    (contact,) = emu.seed(1)
    api = client(emu).crm.contacts.batch_api
    with pytest.raises(ApiException) as exc:  # the spec marks both required; [] asks for none
        api.read(BatchReadInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=contact)], properties=["email"]),
                 _request_timeout=T)
    assert exc.value.status == 400 and "propertiesWithHistory" in json.loads(exc.value.body)["message"]


def test_injected_faults_reach_the_sdk(emu):
    api = client(emu).crm.contacts.basic_api
    emu.inject(Fault(503, {"status": "error", "message": "down"}), Fault(DROP))
    with pytest.raises(ApiException) as exc:
        api.get_page(_request_timeout=T)
    assert exc.value.status == 503
    with pytest.raises(Urllib3Error):
        api.get_page(_request_timeout=T)
    api.get_page(_request_timeout=T)
    assert emu.reads() == 3


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/communication-preferences/v4/statuses/a%40example.com", None),
    ("GET", "/communication-preferences/v4/statuses/a%40example.com/unsubscribe-all", None),
    ("POST", "/communication-preferences/v4/statuses/a%40example.com/unsubscribe-all", None),
    ("POST", "/communication-preferences/v4/statuses/batch/unsubscribe-all", {"inputs": ["a@example.com"]}),
    ("POST", "/communication-preferences/v4/statuses/batch/unsubscribe-all/read", {"inputs": ["a@example.com"]}),
])
def test_v4_status_calls_require_the_channel(emu, method, path, body):
    import requests
    emu.enterprise = True
    headers = {"Authorization": f"Bearer {TOKEN}"}
    without = requests.request(method, emu.url + path, json=body, headers=headers, timeout=T)
    with_it = requests.request(method, emu.url + path, params={"channel": "EMAIL"}, json=body, headers=headers,
                               timeout=T)
    assert without.status_code == 400 and with_it.status_code == 200
