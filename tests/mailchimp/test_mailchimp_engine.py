"""The Mailchimp adapter under the engine and the state store: how many calls a push costs, and what a webhook
hint does to links kept by contact_id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from filesync import run, write_config, write_jsonl

from adapters.mailchimp._wire import subscriber_hash
from adapters.mailchimp.emulator import MailchimpEmulator
from connector.app import open_engine
from connector.config import load_config
from connector.engine import Engine

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


def _engine(config: Path) -> Any:
    return open_engine(load_config(config))


def _mailchimp_links(engine: Engine, email: str) -> list[str | None]:
    return [remote for provider, remote in engine.store.links_of(email)[1] if provider == "mailchimp"]


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


def test_a_member_deleted_for_good_removes_the_link_kept_by_its_contact_id(setup, tmp_path):
    mailchimp, config = setup
    write_jsonl(tmp_path / "in.jsonl", _people(3, last_name="One"))
    with _engine(config) as engine:  # one engine, as the daemon keeps for polls and webhook hints alike
        assert engine.sync().exit_code == 0
        [linked] = _mailchimp_links(engine, "p1@example.com")
        assert linked == mailchimp.member("p1@example.com")["contact_id"]
        mailchimp.forget(linked)  # permanently deleted in Mailchimp: its hash answers 404 from now on
        report = engine.sync_records("mailchimp", [subscriber_hash("p1@example.com")])  # the webhook's hint
        assert report.exit_code == 0, report.to_json()
        assert report.figures("mailchimp").deleted == 1
        assert _mailchimp_links(engine, "p1@example.com") == []
        assert len(_mailchimp_links(engine, "p0@example.com")) == 1


def test_a_hint_for_an_address_a_member_left_fetches_the_member_and_deletes_nothing(setup, tmp_path):
    mailchimp, config = setup
    write_jsonl(tmp_path / "in.jsonl", _people(3, last_name="One"))
    with _engine(config) as engine:
        assert engine.sync().exit_code == 0
        [linked] = _mailchimp_links(engine, "p1@example.com")
        mailchimp.edit(linked, email_address="p1.new@example.com")
        # a profile hint queued before the move names the old hash, which now answers 404
        report = engine.sync_records("mailchimp", [subscriber_hash("p1@example.com")])
        assert report.exit_code == 0, report.to_json()
        assert report.figures("mailchimp").deleted == 0
        assert _mailchimp_links(engine, "p1.new@example.com") == [linked]  # the person moved, still linked
        assert engine.store.links_of("p1@example.com")[0] is None
