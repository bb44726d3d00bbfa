"""SPEC.md's promises 1-6, end to end through the CLI, with CSV and JSONL providers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from filesync import read_csv, read_jsonl, run, write_config, write_csv, write_jsonl


@pytest.fixture
def two_files(tmp_path: Path, state_url: str):
    def make(crm_rows, mail_rows, *, policy="newest", extra=""):
        write_csv(tmp_path / "crm.csv", crm_rows)
        write_jsonl(tmp_path / "mail.jsonl", mail_rows)
        return write_config(tmp_path, state_url, {"crm": ("csv", "crm.csv"), "mail": ("jsonl", "mail.jsonl")},
                            policy=policy, extra=extra)

    return make


def test_first_sync_gives_both_sides_everyone_once(tmp_path, two_files):
    config = two_files(
        [{"email": "Ann@Example.com", "first_name": "Ann"}, {"email": "bob@example.com", "first_name": "Bob"}],
        [{"email": "ann@example.com", "company": "Acme"}, {"email": "cy@example.com", "first_name": "Cy"}],
    )
    code, out = run(config, "sync")
    assert code == 0, out
    crm, mail = read_csv(tmp_path / "crm.csv"), read_jsonl(tmp_path / "mail.jsonl")
    assert set(crm) == set(mail) == {"ann@example.com", "bob@example.com", "cy@example.com"}
    assert crm["ann@example.com"]["company"] == "Acme" and mail["ann@example.com"]["first_name"] == "Ann"
    assert out["providers"]["crm"]["created"] == 1 and out["providers"]["mail"]["created"] == 1


def test_no_echo_a_second_cycle_plans_and_writes_nothing(tmp_path, two_files):
    config = two_files([{"email": f"p{i}@example.com", "first_name": f"P{i}", "tags": "a;b"} for i in range(30)],
                       [{"email": f"q{i}@example.com", "tags": ["x"], "consent": "subscribed"} for i in range(20)])
    assert run(config, "sync")[0] == 0
    stamps = {p: os.stat(tmp_path / p).st_mtime_ns for p in ("crm.csv", "mail.jsonl")}
    code, plan = run(config, "sync", "--dry-run")
    assert code == 0 and plan["dry_run"]
    assert all(f["created"] == f["updated"] == 0 for f in plan["providers"].values()), plan
    code, out = run(config, "sync")
    assert all(f["created"] == f["updated"] == f["failed"] == 0 for f in out["providers"].values()), out
    assert stamps == {p: os.stat(tmp_path / p).st_mtime_ns for p in ("crm.csv", "mail.jsonl")}


def test_dry_run_writes_nothing_not_even_cursors(tmp_path, two_files):
    config = two_files([{"email": "a@example.com"}], [{"email": "b@example.com"}])
    before = (tmp_path / "crm.csv").read_bytes(), (tmp_path / "mail.jsonl").read_bytes()
    code, plan = run(config, "sync", "--dry-run")
    assert code == 0 and plan["providers"]["crm"]["created"] == 1 and plan["providers"]["mail"]["created"] == 1
    assert before == ((tmp_path / "crm.csv").read_bytes(), (tmp_path / "mail.jsonl").read_bytes())
    code, status = run(config, "status")
    assert status["cursors"] == [] and status["contacts"] == 0
    assert status["leases"] == [] and status["inbox"] == {}  # no daemon has run on this state


def test_consent_is_sticky_across_providers_and_later_edits(tmp_path, two_files):
    config = two_files([{"email": "ann@example.com", "consent": "subscribed"}],
                       [{"email": "ann@example.com", "consent": "subscribed"}])
    assert run(config, "sync")[0] == 0
    write_jsonl(tmp_path / "mail.jsonl", [{"email": "ann@example.com", "consent": "unsubscribed"}])
    code, out = run(config, "sync")
    assert code == 0 and out["providers"]["crm"]["unsubscribed"] == 1
    assert read_csv(tmp_path / "crm.csv")["ann@example.com"]["consent"] == "unsubscribed"
    # a later CRM edit (a plain "subscribed") does not resubscribe her anywhere
    rows = read_csv(tmp_path / "crm.csv")
    rows["ann@example.com"]["consent"] = "subscribed"
    rows["ann@example.com"]["first_name"] = "Ann"
    write_csv(tmp_path / "crm.csv", list(rows.values()))
    assert run(config, "sync")[0] == 0
    assert read_csv(tmp_path / "crm.csv")["ann@example.com"]["consent"] == "unsubscribed"
    assert read_jsonl(tmp_path / "mail.jsonl")["ann@example.com"]["consent"] == "unsubscribed"
    assert read_jsonl(tmp_path / "mail.jsonl")["ann@example.com"]["first_name"] == "Ann"


def test_only_an_explicit_newer_opt_in_lifts_an_opt_out(tmp_path, two_files):
    config = two_files([{"email": "ann@example.com", "consent": "unsubscribed"}], [])
    assert run(config, "sync")[0] == 0
    write_jsonl(tmp_path / "mail.jsonl", [{"email": "ann@example.com", "consent": "subscribed",
                                          "opt_in_at": "2099-01-01T00:00:00+00:00"}])
    assert run(config, "sync")[0] == 0
    assert read_csv(tmp_path / "crm.csv")["ann@example.com"]["consent"] == "subscribed"


def test_unsubscribe_command_suppresses_everywhere_and_for_later_imports(tmp_path, two_files):
    config = two_files([{"email": "ann@example.com", "consent": "subscribed"}], [])
    assert run(config, "sync")[0] == 0
    code, out = run(config, "unsubscribe", " ANN@example.com")
    assert code == 0, out
    assert read_csv(tmp_path / "crm.csv")["ann@example.com"]["consent"] == "unsubscribed"
    assert read_jsonl(tmp_path / "mail.jsonl")["ann@example.com"]["consent"] == "unsubscribed"
    code, _ = run(config, "unsubscribe", "new@example.com")  # not known yet: suppressed for later imports
    assert code == 0
    write_jsonl(tmp_path / "mail.jsonl", [*read_jsonl(tmp_path / "mail.jsonl").values(),
                                          {"email": "new@example.com", "consent": "subscribed"}])
    assert run(config, "sync")[0] == 0
    assert read_csv(tmp_path / "crm.csv")["new@example.com"]["consent"] == "unsubscribed"


def test_identity_survives_an_email_change(tmp_path, two_files):
    config = two_files([{"id": "c-1", "email": "old@example.com", "first_name": "Ann"}], [])
    assert run(config, "sync")[0] == 0
    write_csv(tmp_path / "crm.csv", [{"id": "c-1", "email": "new@example.com", "first_name": "Ann"}])
    code, out = run(config, "sync")
    assert code == 0, out
    mail = read_jsonl(tmp_path / "mail.jsonl")
    assert set(mail) == {"new@example.com"}, "the same person, not a second contact"
    assert run(config, "status")[1]["contacts"] == 1


def test_manual_conflicts_wait_and_overwrite_nothing(tmp_path, two_files):
    config = two_files([{"email": "ann@example.com", "company": "Acme"}], [], policy="manual")
    assert run(config, "sync")[0] == 0
    rows = read_csv(tmp_path / "crm.csv")
    rows["ann@example.com"]["company"] = "Acme Corp"
    write_csv(tmp_path / "crm.csv", list(rows.values()))
    mail = read_jsonl(tmp_path / "mail.jsonl")
    mail["ann@example.com"]["company"] = "ACME Ltd"
    write_jsonl(tmp_path / "mail.jsonl", mail.values())
    code, out = run(config, "sync")
    assert code == 0 and out["conflicts"] == 1
    assert read_csv(tmp_path / "crm.csv")["ann@example.com"]["company"] == "Acme Corp"
    assert read_jsonl(tmp_path / "mail.jsonl")["ann@example.com"]["company"] == "ACME Ltd"
    _, listed = run(config, "conflicts")
    [conflict] = listed["conflicts"]
    assert conflict["field"] == "company"
    assert run(config, "sync")[1]["providers"]["crm"]["updated"] == 0  # still waiting
    code, _ = run(config, "resolve", str(conflict["id"]), "--use", "mail")
    assert code == 0
    assert run(config, "sync")[0] == 0
    assert read_csv(tmp_path / "crm.csv")["ann@example.com"]["company"] == "ACME Ltd"
    assert run(config, "conflicts")[1]["conflicts"] == []


def test_blank_is_not_a_value_unless_a_user_cleared_it(tmp_path, two_files):
    config = two_files([{"email": "ann@example.com", "company": "", "city": "Leeds"}],
                       [{"email": "ann@example.com", "company": "Acme"}])
    assert run(config, "sync")[0] == 0
    assert read_csv(tmp_path / "crm.csv")["ann@example.com"]["company"] == "Acme"
    assert read_jsonl(tmp_path / "mail.jsonl")["ann@example.com"]["city"] == "Leeds"
    rows = read_csv(tmp_path / "crm.csv")
    rows["ann@example.com"]["city"] = ""  # a user clears it where it had been set
    write_csv(tmp_path / "crm.csv", list(rows.values()))
    assert run(config, "sync")[0] == 0
    assert not read_jsonl(tmp_path / "mail.jsonl")["ann@example.com"].get("city")


def test_forget_erases_everywhere_and_no_import_brings_them_back(tmp_path, two_files):
    config = two_files([{"email": "ann@example.com"}, {"email": "bob@example.com"}], [])
    assert run(config, "sync")[0] == 0
    code, out = run(config, "forget", "ann@example.com")
    assert code == 0, out
    assert set(read_csv(tmp_path / "crm.csv")) == set(read_jsonl(tmp_path / "mail.jsonl")) == {"bob@example.com"}
    write_jsonl(tmp_path / "mail.jsonl", [{"email": "ann@example.com"}, {"email": "bob@example.com"}])
    assert run(config, "sync")[0] == 0
    assert "ann@example.com" not in read_csv(tmp_path / "crm.csv")
    for leftover in (tmp_path / "state.db", tmp_path / "state.db-wal"):  # free pages and the WAL included
        if leftover.exists():
            assert b"ann@example.com" not in leftover.read_bytes(), leftover.name


def test_rules_classify_contacts(tmp_path, two_files):
    extra = '[[rules]]\nwhen = "lifetime_value >= 10000"\nadd_tags = ["vip"]\nset_lifecycle = "vip"\n'
    config = two_files([{"email": "big@example.com", "custom.lifetime_value": "25000"},
                        {"email": "small@example.com", "custom.lifetime_value": "10"}], [], extra=extra)
    assert run(config, "sync")[0] == 0
    mail = read_jsonl(tmp_path / "mail.jsonl")
    assert "vip" in mail["big@example.com"]["tags"] and mail["big@example.com"]["lifecycle"] == "vip"
    assert "vip" not in (mail["small@example.com"].get("tags") or [])


def test_state_file_is_private(tmp_path, two_files):
    config = two_files([{"email": "a@example.com"}], [])
    assert run(config, "sync")[0] == 0
    state = tmp_path / "state.db"
    if state.exists():
        assert state.stat().st_mode & 0o777 == 0o600


def test_a_file_crmsync_rewrote_is_not_read_back_and_a_later_edit_still_is(tmp_path, two_files):
    config = two_files([{"email": f"p{i}@example.com", "first_name": f"P{i}"} for i in range(5)],
                       [{"email": "q@example.com", "first_name": "Q"}])
    assert run(config, "sync")[0] == 0  # both files rewritten with the other's people
    code, out = run(config, "sync")
    assert code == 0 and all(f["pulled"] == 0 for f in out["providers"].values()), out
    rows = read_jsonl(tmp_path / "mail.jsonl")
    rows["p1@example.com"]["first_name"] = "Edited"
    write_jsonl(tmp_path / "mail.jsonl", rows.values())
    code, out = run(config, "sync")
    assert code == 0 and out["providers"]["mail"]["pulled"] == 6, out
    assert read_csv(tmp_path / "crm.csv")["p1@example.com"]["first_name"] == "Edited"


def test_a_migrated_file_keeps_the_order_of_its_source(tmp_path):
    # people new to the hub are stored in address order (a lock order), but written in the order read
    emails = [f"{name}@example.com" for name in ("zoe", "adam", "mia", "bob", "Yann", "carl")]
    write_csv(tmp_path / "in.csv", [{"email": e, "first_name": e[:3]} for e in emails] * 2)  # and duplicated
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'state.db'}",
                          {"src": ("csv", "in.csv"), "dst": ("jsonl", "out.jsonl")})
    code, out = run(config, "migrate", "--from", "src", "--to", "dst")
    assert code == 0, out
    written = [json.loads(line)["email"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert written == [e.lower() for e in emails]
