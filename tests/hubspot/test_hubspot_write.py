"""HubSpot adapter writes over real HTTP: batch upsert, 207, 409, faults mid-batch, consent, merges, erasure."""

from __future__ import annotations

import pytest

from adapters._emulator import DROP, Fault
from adapters.base import WriteRequest
from adapters.errors import FatalProviderError
from adapters.hubspot.emulator import HubSpotEmulator

UPSERT = r"/batch/upsert$"


def req(ref, email, remote_id=None, **props):
    return WriteRequest(ref=ref, remote_id=remote_id, email=email, fields={"properties": props})


def test_a_hundred_creates_are_one_upsert_call(hubspot_emulator, hubspot_adapter):
    results = hubspot_adapter.write_contacts([req(str(i), f"p{i}@example.com", firstname=f"P{i}") for i in range(100)])
    assert all(r.ok and r.remote_id for r in results)
    assert [r.ref for r in results] == [str(i) for i in range(100)]
    assert hubspot_emulator.call_count("POST", UPSERT) == 1 and hubspot_emulator.writes() == 1
    assert hubspot_emulator.find("p42@example.com")["properties"]["firstname"] == "P42"
    assert results[42].remote_id == hubspot_emulator.find("p42@example.com")["id"]


def test_upsert_updates_by_email_and_clears_blanks(hubspot_emulator, hubspot_adapter):
    (a,) = hubspot_emulator.seed(1)
    hubspot_emulator.edit(a, company="Acme")
    (result,) = hubspot_adapter.write_contacts([req("x", "Contact0@Example.com", company=None, lastname="New")])
    assert result.ok and result.remote_id == a
    props = hubspot_emulator.get(a)["properties"]
    assert props["lastname"] == "New" and props.get("company") is None
    assert hubspot_emulator.count() == 1


def test_207_fails_only_the_bad_records(hubspot_emulator, hubspot_adapter):
    results = hubspot_adapter.write_contacts([
        req("good", "good@example.com", firstname="G"),
        req("bad", "bad@example.com", lifecyclestage="not-a-stage"),
        req("also", "also@example.com", lastname="A"),
    ])
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error == "VALIDATION_ERROR:INVALID_OPTION" and not results[1].retryable
    assert hubspot_emulator.find("good@example.com") and hubspot_emulator.find("also@example.com")
    assert hubspot_emulator.call_count("POST", UPSERT) == 1


def test_409_on_an_email_change_links_to_the_existing_contact(hubspot_emulator, hubspot_adapter):
    a, b, c = hubspot_emulator.seed(3)
    results = hubspot_adapter.write_contacts([
        req("moves", "contact1@example.com", remote_id=a, firstname="Moved"),  # contact1 is b's address
        req("plain", "contact2@example.com", remote_id=c, firstname="Plain"),
    ])
    assert results[0].ok and results[0].remote_id == b
    assert results[1].ok and results[1].remote_id == c
    assert hubspot_emulator.get(b)["properties"]["firstname"] == "Moved"
    assert hubspot_emulator.get(a)["properties"]["email"] == "contact0@example.com"
    assert hubspot_emulator.get(c)["properties"]["firstname"] == "Plain"
    assert hubspot_emulator.count() == 3


def test_email_change_moves_the_address(hubspot_emulator, hubspot_adapter):
    (a,) = hubspot_emulator.seed(1)
    (result,) = hubspot_adapter.write_contacts([
        WriteRequest(ref="r", remote_id=a, email="renamed@example.com", previous_email="contact0@example.com",
                     fields={"properties": {"email": "renamed@example.com"}})])
    assert result.ok and result.remote_id == a
    assert hubspot_emulator.find("renamed@example.com")["id"] == a
    assert hubspot_emulator.find("contact0@example.com") is None


def test_an_additional_email_collision_is_adopted_not_duplicated(hubspot_emulator, hubspot_adapter):
    a, b = hubspot_emulator.seed(2)
    survivor = hubspot_emulator.merge(a, b)  # contact1@ becomes an additional email of the survivor
    (result,) = hubspot_adapter.write_contacts([req("x", "contact1@example.com", firstname="Again")])
    assert result.ok and result.remote_id == survivor
    assert hubspot_emulator.count() == 1


def test_a_whole_batch_400_is_narrowed_to_the_bad_record(hubspot_emulator, hubspot_adapter):
    requests = [req(str(i), f"n{i}@example.com") for i in range(8)]
    requests[5] = WriteRequest(ref="5", remote_id=None, email="not an email", fields={})
    results = hubspot_adapter.write_contacts(requests)
    assert [r.ok for r in results] == [True] * 5 + [False] + [True] * 2
    assert results[5].error.startswith("VALIDATION_ERROR")


def test_a_property_the_portal_lacks_is_dropped_loudly_once(hubspot_emulator, hubspot_adapter, caplog):
    results = hubspot_adapter.write_contacts([req("x", "x@example.com", firstname="X", no_such_property="1")])
    assert results[0].ok and hubspot_emulator.find("x@example.com")["properties"]["firstname"] == "X"
    assert "no_such_property" in caplog.text and "x@example.com" not in caplog.text
    hubspot_emulator.reset_counters()
    assert hubspot_adapter.write_contacts([req("y", "y@example.com", no_such_property="2")])[0].ok
    assert hubspot_emulator.call_count("POST", UPSERT) == 1  # not sent again


def test_a_refusal_naming_no_property_fails_the_call(hubspot_emulator, hubspot_adapter):
    body = {"status": "error", "message": "Property values were not valid", "category": "VALIDATION_ERROR",
            "errors": [{"code": "PROPERTY_DOESNT_EXIST", "message": "x"}]}
    hubspot_emulator.inject(Fault(400, body, path_pattern=UPSERT))
    with pytest.raises(FatalProviderError) as exc:
        hubspot_adapter.write_contacts([req("x", "x@example.com")])
    assert "PROPERTY_DOESNT_EXIST" in str(exc.value) and "x@example.com" not in str(exc.value)


def test_faults_in_the_middle_of_a_batch_are_retried_without_duplicates(hubspot_emulator, make_hubspot_adapter):
    sleeps: list[float] = []
    adapter = make_hubspot_adapter(sleeps=sleeps)
    adapter.write_contacts([req(str(i), f"f{i}@example.com") for i in range(100)])
    hubspot_emulator.inject(Fault(DROP, path_pattern=UPSERT), Fault(500, {"status": "error"}, path_pattern=UPSERT),
                            Fault(429, {"status": "error", "policyName": "TEN_SECONDLY_ROLLING"},
                                  headers={"Retry-After": "2"}, path_pattern=UPSERT))
    results = adapter.write_contacts([req(str(i), f"f{i}@example.com", lastname="Second") for i in range(100, 200)])
    assert all(r.ok for r in results)
    results = adapter.write_contacts([req(str(i), f"f{i}@example.com", lastname="Third") for i in range(100)])
    assert all(r.ok for r in results)
    assert hubspot_emulator.count() == 200 and 2.0 in sleeps
    assert hubspot_emulator.find("f7@example.com")["properties"]["lastname"] == "Third"


def test_a_record_id_merged_away_moves_to_the_survivor(hubspot_emulator, hubspot_adapter):
    a, b = hubspot_emulator.seed(2)
    survivor = hubspot_emulator.merge(a, b)
    (result,) = hubspot_adapter.write_contacts([req("x", "contact1@example.com", remote_id=b, lastname="Kept")])
    assert result.ok and result.remote_id == survivor
    assert hubspot_emulator.get(survivor)["properties"]["lastname"] == "Kept"
    assert hubspot_emulator.count() == 1


def test_a_deleted_record_id_fails_plainly(hubspot_emulator, hubspot_adapter):
    (a,) = hubspot_emulator.seed(1)
    hubspot_emulator.delete(a)
    (result,) = hubspot_adapter.write_contacts([req("x", "contact0@example.com", remote_id=a, lastname="L")])
    assert not result.ok and result.error == "OBJECT_NOT_FOUND"


def test_unsubscribe_goes_through_communication_preferences(hubspot_emulator, hubspot_adapter):
    (a,) = hubspot_emulator.seed(1, prefix="u")
    hubspot_emulator.portal.contacts[a].props["hs_email_optout"] = "false"
    results = hubspot_adapter.write_contacts([
        req("old", "u0@example.com", remote_id=a, hs_email_optout="true"),
        req("new", "fresh@example.com", hs_email_optout="true", firstname="F"),
    ])
    assert all(r.ok for r in results)
    assert hubspot_emulator.get(a)["properties"]["hs_email_optout"] == "true"
    assert hubspot_emulator.find("fresh@example.com")["properties"]["hs_email_optout"] == "true"
    assert hubspot_emulator.call_count(pattern="unsubscribe-all") >= 1


def test_enterprise_portals_unsubscribe_in_one_batch_call(make_hubspot_adapter):
    with HubSpotEmulator(burst=100_000, search_per_s=100_000, enterprise=True) as emu:
        adapter = make_hubspot_adapter(emu=emu)
        adapter.write_contacts([req(str(i), f"e{i}@example.com", hs_email_optout="true") for i in range(50)])
        assert emu.call_count(pattern=r"batch/unsubscribe-all") == 1
        assert emu.call_count(pattern=r"\{?email|\(\?P<email>") == 0
        assert all(emu.find(f"e{i}@example.com")["properties"]["hs_email_optout"] == "true" for i in range(50))


def test_without_v4_the_v3_api_unsubscribes_each_type(hubspot_emulator, hubspot_adapter):
    hubspot_emulator.inject(Fault(404, {"status": "error", "message": "not found"}, path_pattern="/v4/"),
                            Fault(404, {"status": "error", "message": "not found"}, path_pattern="/v4/"))
    (result,) = hubspot_adapter.write_contacts([req("x", "v3@example.com", hs_email_optout="true")])
    assert result.ok
    assert set(hubspot_emulator.portal.statuses("v3@example.com").values()) == {"NOT_SUBSCRIBED"}


def test_an_opted_out_contact_is_never_resubscribed(hubspot_emulator, hubspot_adapter):
    (a,) = hubspot_emulator.seed(1, prefix="o")
    hubspot_emulator.unsubscribe("o0@example.com")
    results = hubspot_adapter.write_contacts([
        req("x", "o0@example.com", remote_id=a, hs_email_optout="false", firstname="Still"),
        WriteRequest(ref="y", remote_id=None, email="o0@example.com", fields={"properties": {"hs_email_optout": None}}),
    ])
    assert results[0].ok
    assert hubspot_emulator.get(a)["properties"]["hs_email_optout"] == "true"
    assert hubspot_emulator.call_count(pattern="subscribe") == 0  # no subscribe and no unsubscribe call at all


def test_an_unsubscribe_that_fails_is_retryable(hubspot_emulator, make_hubspot_adapter):
    adapter = make_hubspot_adapter(attempts=1)
    hubspot_emulator.inject(Fault(403, {"status": "error"}, path_pattern="batch/unsubscribe-all"),
                            Fault(500, {"status": "error"}, path_pattern="unsubscribe-all"))
    (result,) = adapter.write_contacts([req("x", "z@example.com", hs_email_optout="true")])
    assert not result.ok and result.retryable and result.error == "UNSUBSCRIBE_FAILED"


def test_erase_uses_gdpr_delete_and_blocks_the_address(hubspot_emulator, hubspot_adapter):
    (a,) = hubspot_emulator.seed(1)
    hubspot_adapter.erase_contact(remote_id=a, email="contact0@example.com")
    assert hubspot_emulator.get(a) is None and hubspot_emulator.count() == 0
    (result,) = hubspot_adapter.write_contacts([req("x", "contact0@example.com")])
    assert not result.ok
    hubspot_adapter.erase_contact(remote_id=None, email="never-seen@example.com")  # blocklisted for the future
    assert "never-seen@example.com" in hubspot_emulator.portal.blocklist


def test_more_than_max_batch_is_refused(hubspot_adapter):
    with pytest.raises(ValueError):
        hubspot_adapter.write_contacts([req(str(i), f"m{i}@example.com") for i in range(101)])


def test_the_same_address_twice_in_one_batch(hubspot_emulator, hubspot_adapter):
    results = hubspot_adapter.write_contacts([req("a", "d@example.com", firstname="A"), req("b", "D@example.com")])
    assert results[0].ok and not results[1].ok and results[1].retryable


def test_results_without_emails_are_reconciled_not_guessed(hubspot_emulator, hubspot_adapter):
    (a,) = hubspot_emulator.seed(1)
    odd = {"status": "COMPLETE", "results": [{"id": "424242", "properties": {}}], "numErrors": 0}
    hubspot_emulator.inject(Fault(207, odd, path_pattern=UPSERT))  # one result, no email, for two inputs
    results = hubspot_adapter.write_contacts([req("known", "contact0@example.com"), req("ghost", "ghost@example.com")])
    assert results[0].ok and results[0].remote_id == a
    assert not results[1].ok and results[1].error == "MISSING_RESULT" and results[1].retryable


def test_a_backward_lifecycle_move_clears_the_stage_first(hubspot_emulator, hubspot_adapter):
    a, b = hubspot_emulator.seed(2)
    hubspot_emulator.edit(a, lifecyclestage="customer")
    hubspot_emulator.edit(b, lifecyclestage="lead")
    results = hubspot_adapter.write_contacts([
        req("back", "contact0@example.com", lifecyclestage="lead"),
        req("forward", "contact1@example.com", lifecyclestage="customer"),
    ])
    assert all(r.ok for r in results)
    assert hubspot_emulator.get(a)["properties"]["lifecyclestage"] == "lead"
    assert hubspot_emulator.get(b)["properties"]["lifecyclestage"] == "customer"
    assert hubspot_emulator.call_count("POST", r"batch/update") == 2  # clear + set, only for the stuck one


def test_a_207_error_naming_no_input_never_lets_an_unmatched_write_pass(hubspot_emulator, hubspot_adapter):
    a, b = hubspot_emulator.seed(2)  # both exist: a lookup by email would find them whether written or not
    answer = {"status": "COMPLETE", "numErrors": 1,
              "results": [{"id": a, "new": False, "properties": {"email": "contact0@example.com"}}],
              "errors": [{"status": "error", "category": "INTERNAL_ERROR", "message": "busy", "context": {}}]}
    hubspot_emulator.inject(Fault(207, answer, path_pattern=UPSERT))
    results = hubspot_adapter.write_contacts([req("a", "contact0@example.com", firstname="A"),
                                              req("b", "contact1@example.com", firstname="B")])
    assert results[0].ok and results[0].remote_id == a
    assert not results[1].ok and results[1].retryable and results[1].error == "INTERNAL_ERROR"


@pytest.mark.parametrize("context", [{"emails": ["CONTACT1@example.com"]}, {"ids": ["contact1@example.com"]},
                                     {"objectWriteTraceId": ["1"]}])
def test_a_207_error_names_its_input_by_any_of_its_context_keys(hubspot_emulator, hubspot_adapter, context):
    a, _ = hubspot_emulator.seed(2)
    answer = {"status": "COMPLETE", "numErrors": 1,
              "results": [{"id": a, "new": False, "properties": {"email": "contact0@example.com"}}],
              "errors": [{"status": "error", "category": "VALIDATION_ERROR", "message": "bad", "context": context,
                          "errors": [{"message": "bad", "code": "INVALID_EMAIL"}]}]}
    hubspot_emulator.inject(Fault(207, answer, path_pattern=UPSERT))
    results = hubspot_adapter.write_contacts([req("a", "contact0@example.com"), req("b", "contact1@example.com")])
    assert results[0].ok
    assert not results[1].ok and results[1].error == "VALIDATION_ERROR:INVALID_EMAIL" and not results[1].retryable


def test_a_not_found_error_with_details_is_still_followed_to_the_survivor(hubspot_emulator, hubspot_adapter):
    a, b = hubspot_emulator.seed(2)
    survivor = hubspot_emulator.merge(b, a)
    answer = {"status": "COMPLETE", "numErrors": 1, "results": [],
              "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Object not found",
                          "context": {"ids": [a]}, "errors": [{"message": "gone", "code": "OBJECT_NOT_FOUND"}]}]}
    hubspot_emulator.inject(Fault(207, answer, path_pattern=r"/batch/update$"))
    (result,) = hubspot_adapter.write_contacts([req("x", "contact0@example.com", remote_id=a, firstname="Moved")])
    assert result.ok and result.remote_id == survivor
    assert hubspot_emulator.get(survivor)["properties"]["firstname"] == "Moved"


def test_a_result_without_an_id_is_no_result(hubspot_emulator, hubspot_adapter):
    (a,) = hubspot_emulator.seed(1)
    hubspot_emulator.inject(Fault(200, {"status": "COMPLETE", "results": [
        {"new": False, "properties": {"email": "contact0@example.com"}}]}, path_pattern=UPSERT))
    (upserted,) = hubspot_adapter.write_contacts([req("u", "contact0@example.com", firstname="Z")])
    assert upserted.ok and upserted.remote_id == a  # looked up by email, not taken as contact "None"
    hubspot_emulator.inject(Fault(200, {"status": "COMPLETE", "results": [{"objectWriteTraceId": "0", "properties": {}}]},
                                  path_pattern=r"/batch/update$"))
    (updated,) = hubspot_adapter.write_contacts([req("v", "contact0@example.com", remote_id=a, firstname="Q")])
    assert not updated.ok and updated.retryable and updated.remote_id == a
