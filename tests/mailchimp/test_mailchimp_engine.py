"""The Mailchimp adapter under the engine and the state store: how many calls a push costs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from filesync import run, write_config, write_jsonl

from adapters.mailchimp.emulator import MailchimpEmulator

PEOPLE = 1_000


def _people(n: int, *, last_name: str) -> list[dict[str, Any]]:
    return [{"email": f"p{i}@example.com", "first_name": f"P{i}", "last_name": last_name} for i in range(n)]


@pytest.fixture
def setup(tmp_path: Path, state_url: str) -> Iterator[tuple[MailchimpEmulator, Path]]:
    with MailchimpEmulator() as mailchimp:
        options = "\n".join(f"{k} = {json.dumps(v)}" for k, v in mailchimp.sandbox_options().items())
        config = write_config(tmp_path, state_url, {"src": ("jsonl", "in.jsonl")},
                              extra=f"[providers.mailchimp]\n{options}\n")
        yield mailchimp, config


def test_a_thousand_updates_in_a_cycle_are_one_batches_job(setup, tmp_path):
    mailchimp, config = setup
    write_jsonl(tmp_path / "in.jsonl", _people(PEOPLE, last_name="One"))
    code, out = run(config, "sync")
    assert code == 0 and out["providers"]["mailchimp"]["created"] == PEOPLE, out
    write_jsonl(tmp_path / "in.jsonl", _people(PEOPLE, last_name="Two"))
    mailchimp.reset_counters()
    code, out = run(config, "sync")
    assert code == 0 and out["providers"]["mailchimp"]["updated"] == PEOPLE, out
    # one engine push of a thousand: one job and its polls, no batch subscribe (the members are linked)
    assert mailchimp.call_count("POST", "batches") == 1, "a job per 500 members"
    assert mailchimp.call_count("POST", r"lists/(?P<list>[^/]+)$") == 0
    assert mailchimp.member("p999@example.com")["merge_fields"]["LNAME"] == "Two"
