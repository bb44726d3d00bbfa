"""Regressions the chaos test found: an email change made in Mailchimp follows the person everywhere, as one made
in Zoho or HubSpot does (SPEC promises 1 and 2). Members were linked by subscriber hash, which the move changes.
An explicit opt-in newer than an opt-out lifts it, even when both reach crmsync in one cycle, and HubSpot (which
crmsync never resubscribes) keeping its own opt-out does not undo it (promise 2)."""

from __future__ import annotations

import time
from pathlib import Path

from filesync import read_jsonl, run
from test_chaos import PROVIDERS, SEEDED, _exported, _state
from test_sandbox import _config_from

from connector.sandbox import announcement, running_emulators


def test_an_email_change_in_mailchimp_follows_the_person_everywhere(tmp_path: Path):
    with running_emulators(seed=SEEDED, kinds=PROVIDERS) as emulators:
        config = _config_from(announcement(emulators), tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
        assert run(config, "sync")[0] == 0
        emulators["mailchimp"].edit("hubspot-0@example.com", email_address="hubspot-0.new@example.com")
        code, out = run(config, "sync")
        assert code == 0, out
        state = {**_state(emulators), "export": read_jsonl(tmp_path / "export.jsonl")}
        for name, seen in state.items():
            held = {e for e in seen if e.startswith("hubspot-0")}
            assert held == {"hubspot-0.new@example.com"}, (name, held)  # moved, not doubled


def test_an_opt_out_after_an_email_change_in_mailchimp_reaches_the_person_everywhere(tmp_path: Path):
    with running_emulators(seed=SEEDED, kinds=PROVIDERS) as emulators:
        config = _config_from(announcement(emulators), tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
        assert run(config, "sync")[0] == 0
        emulators["mailchimp"].edit("hubspot-0@example.com", email_address="hubspot-0.new@example.com")
        emulators["mailchimp"].unsubscribe("hubspot-0.new@example.com")
        assert run(config, "sync")[0] == 0
        state = _state(emulators)
        for name, seen in state.items():
            subscribed = sorted(e for e, (_, out, _) in seen.items() if e.startswith("hubspot-0") and not out)
            assert not subscribed, (name, subscribed)  # the person opted out, under whichever address


def test_an_opt_in_confirmed_at_mailchimp_after_an_opt_out_in_a_crm_lifts_it_in_the_same_cycle(tmp_path: Path):
    # the chaos test's consent round trip: an opt-out in HubSpot, then (before any sync) the person confirms
    # Mailchimp's double opt-in mail; the merge let any opt-out of a cycle win over a newer explicit opt-in in it
    with running_emulators(seed=SEEDED, kinds=PROVIDERS) as emulators:
        config = _config_from(announcement(emulators), tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
        assert run(config, "sync")[0] == 0
        emulators["hubspot"].unsubscribe("hubspot-0@example.com")
        time.sleep(1.1)  # Mailchimp stamps the opt-in to the second: newer than the opt-out, to its clock too
        assert emulators["mailchimp"].resubscribe("hubspot-0@example.com")  # pending since crmsync added her
        assert run(config, "sync")[0] == 0
        state = {**_state(emulators), "export": _exported(tmp_path)}
        outs = {name: seen["hubspot-0@example.com"][1] for name, seen in state.items()}
        # HubSpot keeps her own opt-out there (crmsync never resubscribes in HubSpot)
        assert outs == {"hubspot": True, "mailchimp": False, "zoho": False, "export": False}, outs


def test_crms_keep_their_opt_outs_after_an_explicit_opt_in_and_their_read_back_is_no_new_opt_out(tmp_path: Path):
    # crmsync never resubscribes in HubSpot (its API) nor clears Zoho's Email_Opt_Out (providers/zoho.md): it stored
    # "subscribed" as their base all the same, so their next read (its own write's echo, or any later edit there)
    # came back as a fresh opt-out and undid the opt-in everywhere, Mailchimp's confirmed one included
    email = "hubspot-0@example.com"
    with running_emulators(seed=SEEDED, kinds=PROVIDERS) as emulators:
        config = _config_from(announcement(emulators), tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
        assert run(config, "sync")[0] == 0
        emulators["hubspot"].unsubscribe(email)
        assert run(config, "sync")[0] == 0
        time.sleep(1.1)
        assert emulators["mailchimp"].resubscribe(email)
        time.sleep(1.1)
        for _ in range(2):
            assert run(config, "sync")[0] == 0
        emulators["hubspot"].edit(emulators["hubspot"].find(email)["id"], firstname="Radia")
        for _ in range(2):
            code, out = run(config, "sync")
            assert code == 0, out
        assert all(f["unsubscribed"] == 0 for f in out["providers"].values()), out
        state = {**_state(emulators), "export": _exported(tmp_path)}
        outs = {name: seen[email][1] for name, seen in state.items()}
        assert outs == {"hubspot": True, "mailchimp": False, "zoho": True, "export": False}, outs
        assert {seen[email][0] for seen in state.values()} == {"Radia"}


def _opt_out_then_opt_in_then_edit(tmp_path: Path, crm: str) -> dict[str, bool]:
    """An opt-out in ``crm``, a confirmed opt-in at Mailchimp, then an edit in ``crm``: all before one sync."""
    email = "hubspot-0@example.com"
    with running_emulators(seed=SEEDED, kinds=PROVIDERS) as emulators:
        config = _config_from(announcement(emulators), tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
        assert run(config, "sync")[0] == 0
        emulators[crm].unsubscribe(email)
        time.sleep(1.1)  # the emulators stamp to the second: each step newer than the last on every clock
        assert emulators["mailchimp"].resubscribe(email)
        time.sleep(1.1)
        if crm == "hubspot":
            emulators["hubspot"].edit(emulators["hubspot"].find(email)["id"], firstname="Radia")
        else:
            emulators["zoho"].edit(emulators["zoho"].find(email)["id"], First_Name="Radia")
        for _ in range(2):
            code, out = run(config, "sync")
            assert code == 0, out
        state = {**_state(emulators), "export": _exported(tmp_path)}
        assert {seen[email][0] for seen in state.values()} == {"Radia"}
        return {name: seen[email][1] for name, seen in state.items()}


def test_an_edit_in_hubspot_after_an_opt_in_elsewhere_does_not_date_its_older_opt_out_anew(tmp_path: Path):
    # HubSpot's opt-out was timed by the record's last change: the rename made it newer than Mailchimp's confirmed
    # opt-in, and it won. Its real time is hs_email_optout's history, read only when an opt-in competes with it
    outs = _opt_out_then_opt_in_then_edit(tmp_path, "hubspot")
    assert outs == {"hubspot": True, "mailchimp": False, "zoho": False, "export": False}, outs


def test_an_edit_in_zoho_after_an_opt_in_elsewhere_does_not_date_its_older_opt_out_anew(tmp_path: Path):
    # Zoho records its opt-out's time (Unsubscribed_Time); the record's Modified_Time moves with any edit
    outs = _opt_out_then_opt_in_then_edit(tmp_path, "zoho")
    assert outs == {"hubspot": False, "mailchimp": False, "zoho": True, "export": False}, outs
