"""The engine with the HTTP emulators: targeted (webhook) cycles, merges, suppression, consent across three."""

from __future__ import annotations

from pathlib import Path

import pytest
from filesync import read_jsonl, run
from test_sandbox import _config_from

from connector.app import open_engine
from connector.config import load_config
from connector.sandbox import announcement, running_emulators


@pytest.fixture
def three(tmp_path: Path, state_url: str):
    with running_emulators(seed=4, kinds=("hubspot", "mailchimp", "zoho")) as emulators:
        config = _config_from(announcement(emulators), tmp_path, state_url)
        yield emulators, config


def test_a_targeted_cycle_fetches_only_the_hinted_records_and_moves_no_cursor(three, tmp_path):
    emulators, config = three
    assert run(config, "sync")[0] == 0
    hubspot = emulators["hubspot"]
    contact = hubspot.find("hubspot-1@example.com")
    hubspot.edit(contact["id"], company="Webhook Ltd")
    cursors = run(config, "status")[1]["cursors"]
    with open_engine(load_config(config)) as engine:
        report = engine.sync_records("hubspot", [contact["id"]])
    assert report.exit_code == 0, report.to_json()
    assert report.providers["hubspot"].pulled == 1
    assert read_jsonl(tmp_path / "export.jsonl")["hubspot-1@example.com"]["company"] == "Webhook Ltd"
    assert run(config, "status")[1]["cursors"] == cursors
    assert run(config, "sync")[1]["providers"]["export"]["updated"] == 0  # the poll finds nothing more to do


def test_an_unsubscribe_in_one_provider_reaches_all_within_one_cycle_and_sticks(three, tmp_path):
    emulators, config = three
    assert run(config, "sync")[0] == 0
    emulators["mailchimp"].unsubscribe("zoho-2@example.com")
    code, out = run(config, "sync")
    assert code == 0, out
    assert read_jsonl(tmp_path / "export.jsonl")["zoho-2@example.com"]["consent"] == "unsubscribed"
    hub = emulators["hubspot"].find("zoho-2@example.com")
    assert str(hub["properties"].get("hs_email_optout")).lower() == "true"
    # a later CRM edit that says "subscribed" does not resubscribe anyone
    zoho = emulators["zoho"]
    record = zoho.find("zoho-2@example.com")
    zoho.edit(record["id"], Email_Opt_Out=False, Last_Name="Edited")
    assert run(config, "sync")[0] == 0
    assert read_jsonl(tmp_path / "export.jsonl")["zoho-2@example.com"]["consent"] == "unsubscribed"
    assert read_jsonl(tmp_path / "export.jsonl")["zoho-2@example.com"]["last_name"] == "Edited"
    assert emulators["mailchimp"].member("zoho-2@example.com")["status"] == "unsubscribed"


def test_a_hubspot_merge_moves_the_link_and_creates_no_duplicate(three, tmp_path):
    emulators, config = three
    assert run(config, "sync")[0] == 0
    hubspot = emulators["hubspot"]
    first, second = hubspot.find("zoho-0@example.com"), hubspot.find("zoho-1@example.com")
    before = hubspot.count()
    survivor = hubspot.merge(first["id"], second["id"])
    hubspot.advance(5)
    code, out = run(config, "sync")
    assert code == 0, out
    assert hubspot.count() == before - 1, "nothing re-created in HubSpot"
    assert out["providers"]["hubspot"]["created"] == 0
    code, again = run(config, "sync")
    assert again["providers"]["hubspot"]["created"] == 0 and hubspot.count() == before - 1
    status = run(config, "status")[1]
    assert status["links"]["hubspot"] == before - 1
    assert hubspot.get(survivor)["properties"]["email"] in ("zoho-0@example.com", "zoho-1@example.com")
    exported = read_jsonl(tmp_path / "export.jsonl")
    assert "zoho-0@example.com" in exported and "zoho-1@example.com" in exported  # still two people elsewhere


def test_a_refused_write_is_retried_next_cycle_and_nothing_is_lost(three, tmp_path):
    from adapters._emulator import Fault

    emulators, config = three
    assert run(config, "sync")[0] == 0
    emulators["mailchimp"].subscribe("late@example.com", FNAME="Late")
    hubspot = emulators["hubspot"]
    hubspot.inject(Fault(401, body={"status": "error", "message": "expired", "category": "INVALID_AUTHENTICATION"},
                         method="POST", path_pattern=r"batch"))  # a token revoked mid-cycle: the write call fails
    code, out = run(config, "sync")
    assert code == 3 and "hubspot" in out["provider_errors"], out
    assert hubspot.find("late@example.com") is None
    assert "late@example.com" in read_jsonl(tmp_path / "export.jsonl")  # the others went on
    code, out = run(config, "sync")
    assert code == 0, out
    assert hubspot.find("late@example.com") is not None
    assert out["providers"]["hubspot"]["created"] == 1


def test_forget_erases_from_all_three_and_no_later_import_brings_them_back(three, tmp_path):
    emulators, config = three
    assert run(config, "sync")[0] == 0
    email = "hubspot-1@example.com"
    code, out = run(config, "forget", email)
    assert code == 0, out
    assert emulators["hubspot"].find(email) is None
    assert emulators["zoho"].find(email) is None
    member = emulators["mailchimp"].member(email)
    assert member is None or member["status"] == "archived"
    assert email not in read_jsonl(tmp_path / "export.jsonl")
    # the person comes back in an import file: crmsync drops them, everywhere
    rows = read_jsonl(tmp_path / "export.jsonl")
    rows[email] = {"email": email, "first_name": "Back", "consent": "subscribed"}
    (tmp_path / "export.jsonl").write_text("".join(__import__("json").dumps(r) + "\n" for r in rows.values()))
    assert run(config, "sync")[0] == 0
    assert emulators["hubspot"].find(email) is None and emulators["zoho"].find(email) is None


def test_an_email_change_in_one_provider_follows_the_person_everywhere(three, tmp_path):
    emulators, config = three
    assert run(config, "sync")[0] == 0
    zoho = emulators["zoho"]
    record = zoho.find("zoho-3@example.com")
    zoho.edit(record["id"], Email="zoho-3.new@example.com")
    code, out = run(config, "sync")
    assert code == 0, out
    assert emulators["hubspot"].find("zoho-3.new@example.com") is not None
    assert emulators["mailchimp"].member("zoho-3.new@example.com") is not None
    exported = read_jsonl(tmp_path / "export.jsonl")
    assert "zoho-3.new@example.com" in exported and "zoho-3@example.com" not in exported
    hub_old = emulators["hubspot"].find("zoho-3@example.com")
    assert hub_old is None or hub_old["id"] == emulators["hubspot"].find("zoho-3.new@example.com")["id"]
    assert run(config, "status")[1]["contacts"] == 12  # nobody doubled


@pytest.mark.parametrize("policy", ["newest", "priority", "manual"])
def test_a_conflict_between_two_crms_under_each_policy(three, tmp_path, policy):
    import datetime as dt

    emulators, config = three
    text = config.read_text()
    config.write_text(text.replace("[state]", f'[sync]\nconflict_policy = "{policy}"\n'
                                              'priority = ["hubspot", "zoho", "mailchimp", "export"]\n\n[state]', 1))
    assert run(config, "sync")[0] == 0
    email = "hubspot-2@example.com"
    hubspot, zoho = emulators["hubspot"], emulators["zoho"]
    hubspot.edit(hubspot.find(email)["id"], firstname="FromHubSpot",
                 at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    zoho.edit(zoho.find(email)["id"], First_Name="FromZoho")  # the later edit
    code, out = run(config, "sync")
    assert code == 0 and out["conflicts"] == 1, out
    names = {hubspot.find(email)["properties"]["firstname"], zoho.find(email)["First_Name"],
             emulators["mailchimp"].member(email)["merge_fields"]["FNAME"]}
    if policy == "newest":
        assert names == {"FromZoho"}
    elif policy == "priority":
        assert names == {"FromHubSpot"}
    else:
        assert hubspot.find(email)["properties"]["firstname"] == "FromHubSpot"
        assert zoho.find(email)["First_Name"] == "FromZoho"  # nothing overwritten
        [conflict] = run(config, "conflicts")[1]["conflicts"]
        assert conflict["field"] == "first_name"


def test_zohos_placeholder_last_name_never_spreads_and_the_next_cycle_is_quiet(three, tmp_path):
    emulators, config = three
    assert run(config, "sync")[0] == 0
    emulators["hubspot"].create(email="solo@example.com", firstname="Solo")
    assert run(config, "sync")[0] == 0
    assert emulators["zoho"].find("solo@example.com")["Last_Name"] == "solo"  # Zoho requires one
    code, out = run(config, "sync")
    assert code == 0, out
    assert all(f["created"] + f["updated"] == 0 for f in out["providers"].values()), out
    assert "last_name" not in read_jsonl(tmp_path / "export.jsonl")["solo@example.com"]
    assert not emulators["hubspot"].find("solo@example.com")["properties"].get("lastname")
    assert not emulators["mailchimp"].member("solo@example.com")["merge_fields"].get("LNAME")


def test_a_mailchimp_upemail_webhook_moves_the_person_everywhere(three, tmp_path):
    emulators, config = three
    assert run(config, "sync")[0] == 0
    mailchimp = emulators["mailchimp"]
    mailchimp.edit("zoho-2@example.com", email_address="zoho-2.new@example.com")
    with open_engine(load_config(config)) as engine:
        _, headers, body = mailchimp.webhook_delivery("upemail", "zoho-2.new@example.com",
                                                      extra={"old_email": "zoho-2@example.com"})
        [event] = engine.runtimes["mailchimp"].adapter.parse_webhook(headers=headers, body=body)
        report = engine.sync_records("mailchimp", [event.remote_id])  # what the daemon does with the hint
    assert report.exit_code == 0, report.to_json()
    assert emulators["zoho"].find("zoho-2.new@example.com") is not None
    assert emulators["zoho"].find("zoho-2@example.com") is None  # moved, not doubled
    assert emulators["hubspot"].find("zoho-2.new@example.com") is not None
    exported = read_jsonl(tmp_path / "export.jsonl")
    assert "zoho-2.new@example.com" in exported and "zoho-2@example.com" not in exported
    assert run(config, "status")[1]["contacts"] == 12  # nobody doubled
