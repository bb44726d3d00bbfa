"""When a HubSpot contact opted out: ``hs_email_optout``'s history, not the record's last change (SPEC promise 2)."""

from __future__ import annotations

import datetime as dt

import pytest

from adapters._emulator import Fault
from adapters.base import SupportsOptOutTimes
from adapters.hubspot._consent import _opted_out_since
from adapters.hubspot.emulator import HubSpotEmulator

HISTORY_READS = r"/batch/read$"


def _version(value: str, at: str) -> dict[str, str]:
    return {"value": value, "timestamp": at, "sourceType": "API"}


def test_the_opt_out_time_is_the_unsubscribe_not_a_later_edit(hubspot_emulator: HubSpotEmulator, hubspot_adapter):
    assert isinstance(hubspot_adapter, SupportsOptOutTimes)
    ids = hubspot_emulator.seed(3, prefix="t")
    hubspot_emulator.advance(60)
    hubspot_emulator.unsubscribe("t1@example.com")
    opted_out_at = hubspot_emulator.get(ids[1])["updatedAt"]
    hubspot_emulator.advance(60)
    hubspot_emulator.edit(ids[1], firstname="Radia")
    times = hubspot_adapter.opt_out_times(ids)
    assert set(times) == {ids[1]}  # the others are not opted out: nothing to time
    assert times[ids[1]] == dt.datetime.fromisoformat(opted_out_at.replace("Z", "+00:00"))
    assert times[ids[1]] < dt.datetime.fromisoformat(hubspot_emulator.get(ids[1])["updatedAt"].replace("Z", "+00:00"))


def test_a_contact_created_opted_out_is_timed_by_its_creation(hubspot_emulator: HubSpotEmulator, hubspot_adapter):
    contact_id = hubspot_emulator.create(email="born@example.com", hs_email_optout="true")
    created = hubspot_emulator.get(contact_id)["createdAt"]
    hubspot_emulator.advance(30)
    hubspot_emulator.edit(contact_id, firstname="Ada")
    assert hubspot_adapter.opt_out_times([contact_id]) == {
        contact_id: dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    }


def test_history_is_read_50_contacts_a_call(hubspot_emulator: HubSpotEmulator, hubspot_adapter):
    ids = hubspot_emulator.seed(120, prefix="many")
    for i in range(120):
        hubspot_emulator.unsubscribe(f"many{i}@example.com")
    hubspot_emulator.reset_counters()
    assert len(hubspot_adapter.opt_out_times([*ids, ids[0]])) == 120  # a repeated id is asked once
    assert hubspot_emulator.call_count(pattern=HISTORY_READS) == 3


def test_the_opt_out_starts_the_current_run_of_trues_whatever_the_order():
    versions = [
        _version("true", "2024-05-03T00:00:00Z"),
        _version("false", "2024-05-02T00:00:00Z"),
        _version("true", "2024-05-04T00:00:00Z"),  # set again: the run started the day before
        _version("true", "2024-05-01T00:00:00Z"),
    ]
    assert _opted_out_since(versions) == dt.datetime(2024, 5, 3, tzinfo=dt.UTC)
    assert _opted_out_since([*versions, _version("false", "2024-05-05T00:00:00Z")]) is None  # opted in since
    assert _opted_out_since([]) is None
    same_ms = [_version("true", "2024-05-01T00:00:00Z"), _version("false", "2024-05-01T00:00:00Z")]
    assert _opted_out_since(same_ms) == dt.datetime(2024, 5, 1, tzinfo=dt.UTC)  # newest first, as HubSpot lists


def test_malformed_versions_are_skipped_not_fatal():
    versions = [_version("true", "not a time"), "junk", {"value": "true"}, _version("true", "1714521600000")]
    assert _opted_out_since(versions) == dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize("raw", [b"[1, 2]", b'{"results": 5}', b'{"results": [5, {"propertiesWithHistory": 3}]}',
                                 b'{"results": [{"id": "1", "propertiesWithHistory": {"hs_email_optout": "x"}}]}'])
def test_a_malformed_history_answer_times_nobody(hubspot_emulator: HubSpotEmulator, hubspot_adapter, raw: bytes):
    ids = hubspot_emulator.seed(2, prefix="m")
    hubspot_emulator.unsubscribe("m0@example.com")
    fault = Fault(200, raw=raw)
    fault.method, fault.path_pattern = "POST", "batch/read"
    hubspot_emulator.inject(fault)
    assert hubspot_adapter.opt_out_times(ids) == {}
