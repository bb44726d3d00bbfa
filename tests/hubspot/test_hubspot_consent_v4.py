"""When Communication Preferences v4 counts as missing: only by answers about the endpoint, never about one address.

A 4xx about one address (400 for a malformed one, 404 naming it) is that address's failure, retried next cycle,
and v4's ``unsubscribe-all`` (which covers subscription types created later) stays in use for everyone else. A 403
(scopes or tier), 405, 501 or a 404 naming nobody is about the endpoint: v3 takes over. After v4 has answered once,
one such refusal fails only its own address, and a second in a row turns to v3.
"""

from __future__ import annotations

import pytest

from adapters._emulator import Fault
from adapters.base import Cursor, WriteRequest
from adapters.hubspot.emulator import HubSpotEmulator

ONE_V4 = r"/v4/statuses/(?!batch/)[^/]+/unsubscribe-all$"  # the single-address opt-out (a request path)
ONE_V4_ROUTE = r"\(\?P<email>.*unsubscribe-all"  # the same call as the emulator counts it (its route pattern)
V3_WRITE = r"v3/unsubscribe"


def optout(ref: str, email: str) -> WriteRequest:
    return WriteRequest(ref=ref, remote_id=None, email=email, fields={"properties": {"hs_email_optout": "true"}})


def opted_out_of_all(emu: HubSpotEmulator, email: str) -> bool:
    """Opted out through v4's unsubscribe-all (v3 only sets each type, never the contact's hs_email_optout)."""
    return emu.portal.optout(email)


@pytest.mark.parametrize("status", [400, 404])
def test_a_v4_refusal_of_the_first_address_fails_that_address_only(hubspot_emulator, hubspot_adapter, status):
    hubspot_emulator.refuse_subscriber("bad@example.com", status)
    bad, good = hubspot_adapter.write_contacts([optout("bad", "bad@example.com"), optout("good", "good@example.com")])
    assert not bad.ok and bad.retryable and bad.error == "UNSUBSCRIBE_FAILED"
    assert good.ok and opted_out_of_all(hubspot_emulator, "good@example.com")
    (later,) = hubspot_adapter.write_contacts([optout("later", "later@example.com")])
    assert later.ok and opted_out_of_all(hubspot_emulator, "later@example.com")
    assert hubspot_emulator.call_count(pattern=V3_WRITE) == 0  # v3 (types only) was never needed
    hubspot_emulator.refused_subscribers.clear()  # fixed in HubSpot: the next cycle's retry goes through v4
    (again,) = hubspot_adapter.write_contacts([optout("bad", "bad@example.com")])
    assert again.ok and opted_out_of_all(hubspot_emulator, "bad@example.com")


@pytest.mark.parametrize("fault", [
    Fault(403, {"status": "error", "message": "This app lacks the required scopes", "category": "MISSING_SCOPES"}),
    Fault(405, {"status": "error", "message": "Method not allowed"}),
    Fault(501, {"status": "error", "message": "Not implemented"}),
    Fault(404, raw=b""),  # a route the portal (or a proxy) does not have
    Fault(404, {"status": "error", "message": "Resource not found"}),  # an error that names no record
], ids=["403-scope", "405", "501", "404-bare", "404-naming-nobody"])
def test_an_answer_about_the_endpoint_turns_to_v3(hubspot_emulator, make_hubspot_adapter, fault):
    adapter = make_hubspot_adapter(sleeps=[])
    hubspot_emulator.inject(Fault(fault.status, fault.body, raw=fault.raw, method="POST", path_pattern=ONE_V4))
    (result,) = adapter.write_contacts([optout("x", "v3@example.com")])
    assert result.ok
    assert set(hubspot_emulator.portal.statuses("v3@example.com").values()) == {"NOT_SUBSCRIBED"}
    assert hubspot_emulator.call_count(method="POST", pattern=ONE_V4_ROUTE) == 1  # v4 was not asked again
    (next_one,) = adapter.write_contacts([optout("y", "next@example.com")])
    assert next_one.ok and hubspot_emulator.call_count(method="POST", pattern=ONE_V4_ROUTE) == 1


def test_after_v4_answered_one_endpoint_refusal_fails_its_address_and_a_second_in_a_row_turns_to_v3(
    hubspot_emulator, hubspot_adapter
):
    refused = {"status": "error", "message": "This app lacks the required scopes", "category": "MISSING_SCOPES"}
    (first,) = hubspot_adapter.write_contacts([optout("a", "a@example.com")])
    assert first.ok and opted_out_of_all(hubspot_emulator, "a@example.com")
    hubspot_emulator.inject(Fault(403, refused, method="POST", path_pattern=ONE_V4))
    (second,) = hubspot_adapter.write_contacts([optout("b", "b@example.com")])
    assert not second.ok and second.retryable and hubspot_emulator.call_count(pattern=V3_WRITE) == 0
    hubspot_emulator.inject(Fault(403, refused, method="POST", path_pattern=ONE_V4))
    (third,) = hubspot_adapter.write_contacts([optout("c", "c@example.com")])
    assert third.ok and set(hubspot_emulator.portal.statuses("c@example.com").values()) == {"NOT_SUBSCRIBED"}
    assert hubspot_emulator.call_count(pattern=V3_WRITE) > 0


def test_a_batch_refused_for_one_address_goes_one_by_one_and_stays_in_use(make_hubspot_adapter):
    with HubSpotEmulator(burst=100_000, search_per_s=100_000, enterprise=True) as emu:
        adapter = make_hubspot_adapter(emu=emu)
        emu.refuse_subscriber("bad@example.com")
        results = adapter.write_contacts([optout(str(i), f"e{i}@example.com") for i in range(3)]
                                         + [optout("bad", "bad@example.com")])
        assert [r.ok for r in results] == [True, True, True, False] and results[-1].retryable
        assert all(opted_out_of_all(emu, f"e{i}@example.com") for i in range(3))
        assert emu.call_count(pattern=r"batch/unsubscribe-all$") == 1
        singles = emu.call_count(method="POST", pattern=ONE_V4_ROUTE)
        assert singles == 4
        adapter.write_contacts([optout(str(i), f"f{i}@example.com") for i in range(3)])
        assert emu.call_count(pattern=r"batch/unsubscribe-all$") == 2  # the batch call is still in use
        assert emu.call_count(method="POST", pattern=ONE_V4_ROUTE) == singles
        assert emu.call_count(pattern=V3_WRITE) == 0


def test_a_v4_read_refusing_one_address_asks_v3_for_that_address_only(hubspot_emulator, hubspot_adapter):
    a, b, c = hubspot_emulator.seed(3, prefix="r")
    for contact in (a, b, c):
        hubspot_emulator.portal.contacts[contact].props["hs_email_optout"] = "false"
    hubspot_emulator.unsubscribe("r0@example.com")
    hubspot_emulator.unsubscribe("r1@example.com")
    hubspot_emulator.hidden_properties = {"hs_email_optout"}
    hubspot_emulator.refuse_subscriber("r0@example.com")
    records = {r.remote_id: r for p in hubspot_adapter.read_contacts(Cursor()) for r in p.records}
    assert [records[x].data["properties"]["hs_email_optout"] for x in (a, b, c)] == ["true", "true", "false"]
    assert hubspot_emulator.call_count(pattern="v3/status") == 1  # r0 alone; v4 answered for r1 and r2
    assert hubspot_emulator.call_count(method="GET", pattern=ONE_V4_ROUTE) == 3
