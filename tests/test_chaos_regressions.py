"""Regressions the chaos test found: an email change made in Mailchimp follows the person everywhere, as one made
in Zoho or HubSpot does (SPEC promises 1 and 2). Members were linked by subscriber hash, which the move changes."""

from __future__ import annotations

from pathlib import Path

from filesync import read_jsonl, run
from test_chaos import PROVIDERS, SEEDED, _state
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
