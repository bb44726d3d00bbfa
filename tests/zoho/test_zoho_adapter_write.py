"""Zoho adapter writes over real HTTP: upsert results per record, consent, tags, email changes, erase."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from zoho_fixtures import make_adapter

from adapters._emulator import DROP, Fault
from adapters.base import WriteRequest
from adapters.errors import FatalProviderError
from adapters.zoho.emulator import ZohoEmulator


@pytest.fixture
def zoho() -> Iterator[ZohoEmulator]:
    with ZohoEmulator() as emulator:
        yield emulator


def req(ref: str, email: str, remote_id: str | None = None, **fields: object) -> WriteRequest:
    return WriteRequest(ref=ref, remote_id=remote_id, email=email, fields={"Email": email, **fields})


def test_upsert_answers_per_record_in_order(zoho: ZohoEmulator) -> None:
    [existing] = zoho.seed(1)
    adapter = make_adapter(zoho)
    results = adapter.write_contacts(
        [
            req("a", "new@example.com", Last_Name="New", First_Name="Ana"),
            req("b", "contact0@example.com", Title="Buyer"),  # matched by Email
            req("c", "nolast@example.com", First_Name="No", Last_Name=None),  # named by its address on a 2nd try
            req("d", "bad@example.com", Last_Name="Bad", Phone="call me"),  # INVALID_DATA Phone
        ]
    )
    assert [r.ref for r in results] == ["a", "b", "c", "d"]
    assert [r.ok for r in results] == [True, True, True, False]
    assert results[1].remote_id == existing
    assert zoho.find("nolast@example.com")["Last_Name"] == "nolast"
    assert results[3].error == "INVALID_DATA Phone" and not results[3].retryable
    assert zoho.find("new@example.com")["id"] == results[0].remote_id
    assert zoho.call_count("POST", "upsert") == 2


def test_every_record_refused_is_still_per_record(zoho: ZohoEmulator) -> None:
    results = make_adapter(zoho).write_contacts([req("a", "x@example.com", Phone="no!"), req("b", "y@", Phone="?")])
    assert [r.error for r in results] == ["INVALID_DATA Phone", "INVALID_DATA Phone"]
    assert not any(r.retryable for r in results)


def test_a_new_contact_without_a_last_name_is_named_by_its_address(zoho: ZohoEmulator) -> None:
    zoho.seed(1)
    adapter = make_adapter(zoho)
    results = adapter.write_contacts([req("a", "only.email@example.com"), req("b", "contact0@example.com", Title="X")])
    assert all(r.ok for r in results)
    assert zoho.find("only.email@example.com")["Last_Name"] == "only.email"
    assert zoho.find("contact0@example.com")["Last_Name"] != "contact0"  # a match keeps its name
    assert zoho.call_count("POST", "upsert") == 2


def multiple_errors(*errors: tuple[str, str, int]) -> dict[str, object]:
    return {
        "code": "MULTIPLE_OR_MULTI_ERRORS",
        "details": {
            "errors": [
                {
                    "code": code,
                    "details": {"api_name": name, "json_path": f"$.data[{i}].{name}"},
                    "message": "error",
                    "status": "error",
                }
                for code, name, i in errors
            ]
        },
        "message": "Multiple errors in the request",
        "status": "error",
    }


def test_a_missing_last_name_among_multiple_errors_is_still_named(zoho: ZohoEmulator) -> None:
    adapter = make_adapter(zoho)
    answer = {"data": [multiple_errors(("MANDATORY_NOT_FOUND", "Last_Name", 0))]}
    zoho.inject(Fault(status=400, body=answer, method="POST", path_pattern="/upsert"))
    [result] = adapter.write_contacts([req("a", "nameless@example.com")])
    assert result.ok and zoho.contact(result.remote_id)["Last_Name"] == "nameless"


def test_multiple_errors_of_one_record_are_all_named(zoho: ZohoEmulator) -> None:
    adapter = make_adapter(zoho)
    answer = {"data": [multiple_errors(("DUPLICATE_DATA", "Email", 0), ("DUPLICATE_DATA", "Mobile", 0))]}
    zoho.inject(Fault(status=400, body=answer, method="POST", path_pattern="/upsert"))
    [result] = adapter.write_contacts([req("a", "twin@example.com", Last_Name="T")])
    assert not result.ok and not result.retryable
    assert result.error == "DUPLICATE_DATA Email; DUPLICATE_DATA Mobile"


def test_a_short_answer_is_placed_by_json_path_not_by_position(zoho: ZohoEmulator) -> None:
    adapter = make_adapter(zoho)
    bad_phone = {
        "code": "INVALID_DATA",
        "details": {"api_name": "Phone", "json_path": "$.data[1].Phone", "expected_data_type": "phone"},
        "message": "invalid data",
        "status": "error",
    }
    zoho.inject(Fault(status=400, body={"data": [bad_phone]}, method="POST", path_pattern="/upsert"))
    results = adapter.write_contacts([req(str(i), f"s{i}@example.com", Last_Name="S") for i in range(3)])
    assert [r.error for r in results] == ["NO_RESULT", "INVALID_DATA Phone", "NO_RESULT"]
    assert [r.retryable for r in results] == [True, False, True]


def test_a_short_list_of_successes_is_no_result_for_all(zoho: ZohoEmulator) -> None:
    adapter = make_adapter(zoho)
    done = {"code": "SUCCESS", "status": "success", "action": "insert", "details": {"id": "5550000000000777"}}
    zoho.inject(Fault(status=200, body={"data": [done]}, method="POST", path_pattern="/upsert"))
    results = adapter.write_contacts([req(str(i), f"n{i}@example.com", Last_Name="N") for i in range(2)])
    assert [(r.ok, r.error, r.retryable) for r in results] == [(False, "NO_RESULT", True)] * 2


def test_an_error_of_the_whole_request_blames_no_record(zoho: ZohoEmulator) -> None:
    adapter = make_adapter(zoho)
    whole = {
        "code": "INVALID_DATA",
        "details": {"api_name": "name", "json_path": "$.apply_feature_execution[0].name"},
        "message": "invalid data",
        "status": "error",
    }
    zoho.inject(Fault(status=400, body={"data": [whole]}, method="POST", path_pattern="/upsert"))
    with pytest.raises(FatalProviderError, match="refused as a whole"):
        adapter.write_contacts([req("a", "w@example.com", Last_Name="W")])


def test_a_success_without_an_id_is_not_a_link(zoho: ZohoEmulator) -> None:
    adapter = make_adapter(zoho)
    bare = {"data": [{"code": "SUCCESS", "status": "success", "action": "insert", "message": "record added"}]}
    zoho.inject(Fault(status=200, body=bare, method="POST", path_pattern="/upsert"))
    [result] = adapter.write_contacts([req("a", "bare@example.com", Last_Name="B")])
    assert not result.ok and result.retryable and result.error == "NO_ID"


def test_a_company_is_written_as_a_lookup_with_its_account_id(zoho: ZohoEmulator) -> None:
    """Zoho documents lookups as {"id", "name"}: names are resolved to accounts, missing ones created once."""
    zoho.lookup_needs_id = True  # an implementation that refuses a lookup by name alone
    acme = zoho.org.account("Acme")["id"]
    adapter = make_adapter(zoho)
    odd = "Initech (EMEA), Ltd\\"
    results = adapter.write_contacts(
        [
            req("a", "a@example.com", Last_Name="A", Account_Name={"name": "acme"}),
            req("b", "b@example.com", Last_Name="B", Account_Name={"name": odd}),
            req("c", "c@example.com", Last_Name="C", Account_Name={"name": odd}),
        ]
    )
    assert [r.error for r in results] == [None, None, None]
    assert zoho.contact(results[0].remote_id)["Account_Name"] == {"name": "Acme", "id": acme}
    created = zoho.org.accounts[odd]
    assert zoho.contact(results[2].remote_id)["Account_Name"] == {"name": odd, "id": created}
    assert zoho.call_count("POST", "Accounts/upsert") == 1
    calls = zoho.call_count("GET", "Accounts/search")
    adapter.write_contacts([req("d", "d@example.com", Last_Name="D", Account_Name={"name": odd})])
    assert zoho.call_count("GET", "Accounts/search") == calls  # known this run: no second lookup


def test_without_access_to_accounts_a_company_is_written_by_name(
    zoho: ZohoEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = make_adapter(zoho)
    mismatch = {"code": "OAUTH_SCOPE_MISMATCH", "details": {}, "message": "invalid oauth scope", "status": "error"}
    zoho.inject(Fault(status=401, body=mismatch, method="GET", path_pattern="/Accounts/search"))
    [result] = adapter.write_contacts([req("a", "a@example.com", Last_Name="A", Account_Name={"name": "Globex"})])
    assert result.ok and zoho.contact(result.remote_id)["Account_Name"] == {"name": "Globex"}
    assert "OAUTH_SCOPE_MISMATCH" in caplog.text and "Globex" not in caplog.text


def test_batches_are_capped_at_100(zoho: ZohoEmulator) -> None:
    adapter = make_adapter(zoho)
    assert adapter.max_batch == 100
    results = adapter.write_contacts([req(str(i), f"p{i}@example.com", Last_Name="P") for i in range(100)])
    assert all(r.ok for r in results) and len(zoho.all_contacts()) == 100
    with pytest.raises(ValueError, match="100"):
        adapter.write_contacts([req(str(i), f"q{i}@example.com", Last_Name="Q") for i in range(101)])


def test_opt_out_is_written_and_never_cleared(zoho: ZohoEmulator) -> None:
    zoho.seed(2)
    zoho.unsubscribe("contact0@example.com")
    adapter = make_adapter(zoho)
    results = adapter.write_contacts(
        [
            req("a", "contact0@example.com", Email_Opt_Out=False, First_Name="Back"),
            req("b", "contact1@example.com", Email_Opt_Out=True),
        ]
    )
    assert all(r.ok for r in results)
    assert zoho.find("contact0@example.com")["Email_Opt_Out"] is True
    assert zoho.find("contact0@example.com")["First_Name"] == "Back"
    assert zoho.find("contact1@example.com")["Email_Opt_Out"] is True


def test_email_change_updates_the_same_record(zoho: ZohoEmulator) -> None:
    [rid, other] = zoho.seed(2)
    adapter = make_adapter(zoho)
    by_id = adapter.write_contacts([req("a", "renamed@example.com", remote_id=rid)])
    assert by_id[0].remote_id == rid and zoho.contact(rid)["Email"] == "renamed@example.com"
    by_old = adapter.write_contacts(
        [
            WriteRequest(
                ref="b",
                remote_id=None,
                email="moved@example.com",
                previous_email="contact1@example.com",
                fields={"Email": "moved@example.com"},
            )
        ]
    )
    assert by_old[0].remote_id == other and zoho.contact(other)["Email"] == "moved@example.com"
    assert len(zoho.all_contacts()) == 2


def test_an_address_held_only_as_secondary_email_is_not_that_contact(zoho: ZohoEmulator) -> None:
    """Search's email parameter looks in every email field: only a contact whose Email it is may be taken."""
    [holder, owner] = zoho.seed(2)
    zoho.edit(holder, Secondary_Email="contact1@example.com")  # listed first by the search
    adapter = make_adapter(zoho)
    found = adapter.find_by_email("Contact1@example.com")
    assert found is not None and found.remote_id == owner
    zoho.edit(owner, Email="elsewhere@example.com")
    assert adapter.find_by_email("contact1@example.com") is None
    adapter.erase_contact(remote_id=None, email="contact1@example.com")
    assert zoho.contact(holder) is not None  # forget never deletes someone else's record


def test_tags_go_through_bulk_actions(zoho: ZohoEmulator) -> None:
    [rid] = zoho.seed(1)
    zoho.edit(rid, Last_Name="T")
    with zoho.org.lock:
        zoho.org.contacts[rid]["Tag"] = []
        zoho.org.set_tags(zoho.org.contacts[rid], ["old", "vip"], add=True)
    adapter = make_adapter(zoho)
    zoho.reset_counters()
    results = adapter.write_contacts(
        [
            req("a", "contact0@example.com", remote_id=rid, Tag=[{"name": "vip"}, {"name": "new"}]),
            req("b", "n1@example.com", Last_Name="N", Tag=[{"name": "new"}]),
            req("c", "n2@example.com", Last_Name="N", Tag=[{"name": "new"}, {"name": "vip"}]),
        ]
    )
    assert all(r.ok for r in results)
    assert {t["name"] for t in zoho.contact(rid)["Tag"]} == {"vip", "new"}
    assert {t["name"] for t in zoho.find("n1@example.com")["Tag"]} == {"new"}
    assert {t["name"] for t in zoho.find("n2@example.com")["Tag"]} == {"new", "vip"}
    # one upsert, one read of the updated record's tags, add "new", add "vip", remove "old"
    tag_calls = [path.rsplit("/", 1)[1] for method, path, _ in zoho.server.log if "/actions/" in path]
    assert sorted(tag_calls) == ["add_tags", "add_tags", "remove_tags"]
    assert zoho.call_count("GET", r"/Contacts$") == 1


def test_tag_failure_leaves_the_record_retryable(zoho: ZohoEmulator) -> None:
    adapter = make_adapter(zoho)
    zoho.inject(
        Fault(
            status=400,
            body={"code": "INVALID_DATA", "details": {}, "message": "x", "status": "error"},
            method="POST",
            path_pattern="add_tags",
        )
    )
    [result] = adapter.write_contacts([req("a", "t@example.com", Last_Name="T", Tag=[{"name": "vip"}])])
    assert not result.ok and result.retryable and result.error == "TAGS_NOT_WRITTEN"


def test_a_dropped_upsert_is_retried_once_idempotently(zoho: ZohoEmulator) -> None:
    adapter = make_adapter(zoho)
    zoho.inject(
        Fault(status=DROP, method="POST", path_pattern="upsert"),
        Fault(status=503, body={"code": "INTERNAL_ERROR"}, method="POST", path_pattern="upsert"),
    )
    results = adapter.write_contacts([req(str(i), f"r{i}@example.com", Last_Name="R") for i in range(10)])
    assert all(r.ok for r in results) and len(zoho.all_contacts()) == 10


def test_erase_deletes_by_id_or_by_email(zoho: ZohoEmulator) -> None:
    ids = zoho.seed(2)
    adapter = make_adapter(zoho)
    adapter.erase_contact(remote_id=ids[0], email="contact0@example.com")
    adapter.erase_contact(remote_id=None, email="contact1@example.com")
    adapter.erase_contact(remote_id=None, email="nobody@example.com")
    assert zoho.all_contacts() == []
    assert {d.id for d in zoho.org.deleted} == set(ids)
    assert {d.kind for d in zoho.org.deleted} == {"permanent"}  # purged from the recycle bin too


def test_erase_survives_a_recycle_bin_refusal(zoho: ZohoEmulator) -> None:
    [rid] = zoho.seed(1)
    zoho.inject(
        Fault(
            status=403,
            body={"code": "NOT_SUPPORTED", "details": {}, "message": "admin only", "status": "error"},
            path_pattern="recycle_bin",
        )
    )
    make_adapter(zoho).erase_contact(remote_id=rid, email="contact0@example.com")
    assert zoho.all_contacts() == [] and zoho.org.deleted[0].kind == "recycle"


def test_merge_in_the_crm_shows_as_an_edit_and_a_deletion(zoho: ZohoEmulator) -> None:
    ids = zoho.seed(2)
    zoho.merge(ids[0], ids[1])
    records = make_adapter(zoho).fetch_contacts(ids)
    assert not records[0].deleted and records[1].deleted


def test_known_ids_are_updated_by_id_and_new_ones_upserted(zoho: ZohoEmulator) -> None:
    [rid, gone] = zoho.seed(2)
    zoho.delete(gone)
    adapter = make_adapter(zoho)
    zoho.reset_counters()
    results = adapter.write_contacts(
        [
            req("a", "contact0@example.com", remote_id=rid, Title="Boss"),
            req("b", "fresh@example.com", Last_Name="Fresh"),
            req("c", "contact1@example.com", remote_id=gone, Title="Ghost"),
        ]
    )
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].error == "INVALID_DATA id" and not results[2].retryable
    assert zoho.find("contact1@example.com") is None  # a contact deleted in Zoho is not brought back
    assert zoho.call_count("PUT", r"/Contacts$") == 1 and zoho.call_count("POST", "upsert") == 1
