"""The Mailchimp adapter under the engine and the state store: how many calls a push costs, and what a webhook
hint does to links kept by contact_id (or, from before that, by subscriber hash)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from filesync import run, write_config, write_jsonl

from adapters.base import Cursor
from adapters.mailchimp._wire import subscriber_hash
from adapters.mailchimp.emulator import MailchimpEmulator
from connector.app import open_engine
from connector.config import load_config
from connector.engine import Engine
from state.store import L, Pulled

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


def _read_back(config: Path) -> Any:
    """Every member read and stored as a poll would store it: how many differ from their links' bases."""
    with _engine(config) as engine:
        rt = engine.runtimes["mailchimp"]
        pulled = [Pulled(remote_id=r.remote_id, email=str(fields["email"]), fields=fields, updated_at=r.updated_at)
                  for page in rt.adapter.read_contacts(Cursor()) for r in page.records
                  if (fields := rt.mapping.to_canonical(r.data))]
        return engine.store.store_page("mailchimp", None, pulled, None)


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
        for _ in range(2):  # the second cycle reads the members the first one created
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
        for _ in range(2):
            assert engine.sync().exit_code == 0
        [linked] = _mailchimp_links(engine, "p1@example.com")
        mailchimp.edit(linked, email_address="p1.new@example.com")
        # a profile hint queued before the move names the old hash, which now answers 404
        report = engine.sync_records("mailchimp", [subscriber_hash("p1@example.com")])
        assert report.exit_code == 0, report.to_json()
        assert report.figures("mailchimp").deleted == 0
        assert _mailchimp_links(engine, "p1.new@example.com") == [linked]  # the person moved, still linked
        assert engine.store.links_of("p1@example.com")[0] is None


def test_an_upemail_hint_moves_a_link_still_kept_by_the_old_hash(setup, tmp_path):
    mailchimp, config = setup
    write_jsonl(tmp_path / "in.jsonl", _people(3, last_name="One"))
    assert run(config, "sync")[0] == 0
    with _engine(config) as engine:  # links from before the contact_id upgrade were kept by the hash
        with engine.store.transaction() as conn:
            for i in range(3):
                email = f"p{i}@example.com"
                conn.execute(sa.update(L).where(L.c.provider == "mailchimp", L.c.remote_id == mailchimp.member(email)[
                    "contact_id"]).values(remote_id=subscriber_hash(email)))
    contact_id = mailchimp.member("p1@example.com")["contact_id"]
    contacts = run(config, "status")[1]["contacts"]
    mailchimp.edit(contact_id, email_address="p1.new@example.com")  # before any read upgraded the link
    with _engine(config) as engine:  # a fresh process: it has seen none of these members
        _, headers, body = mailchimp.webhook_delivery("upemail", "p1.new@example.com",
                                                      extra={"old_email": "p1@example.com"})
        [event] = engine.runtimes["mailchimp"].adapter.parse_webhook(headers=headers, body=body)
        assert event.remote_id is not None
        report = engine.sync_records("mailchimp", [event.remote_id])  # what the daemon does with the hint
        assert report.exit_code == 0, report.to_json()
        assert _mailchimp_links(engine, "p1.new@example.com") == [contact_id]  # the link moved to the contact_id
        assert engine.store.links_of("p1@example.com")[0] is None  # the person moved, not doubled
    assert run(config, "status")[1]["contacts"] == contacts


def test_members_crmsync_created_read_back_as_no_change(setup, tmp_path):
    # Mailchimp fills in what crmsync did not send (pending for an unknown consent, the opt-in stamp of a subscribed
    # create, empty tags and merge fields): the base keeps what the create answered, so the read-back is no change
    # and the first poll after a migration reconciles nobody again
    mailchimp, config = setup
    people = [{**p, "consent": "subscribed"} if i % 2 else p for i, p in enumerate(_people(30, last_name="One"))]
    write_jsonl(tmp_path / "in.jsonl", people)
    code, out = run(config, "sync")
    assert code == 0 and out["providers"]["mailchimp"]["created"] == 30, out
    assert {m["status"] for m in mailchimp.members()} == {"pending", "subscribed"}
    outcome = _read_back(config)
    assert (outcome.stored, outcome.unchanged) == (0, 30)


def test_members_crmsync_updated_read_back_as_no_change(setup, tmp_path):
    # An update (fields and tags, never a status it would force) leaves a member's opt-in time where it was: the
    # base keeps the time the last read or create saw, so reading the update back is no change either, for the
    # members crmsync created and for the ones that confirmed an opt-in there themselves
    mailchimp, config = setup
    people = [{**p, "consent": "subscribed"} for p in _people(20, last_name="One")]
    write_jsonl(tmp_path / "in.jsonl", people)
    assert run(config, "sync")[0] == 0
    time.sleep(1.1)  # Mailchimp stamps to the second: a re-signup's time is not the create's
    for i in range(10):  # half of them opt out and sign up again: a real opt-in time, read by the next cycle
        mailchimp.unsubscribe(f"p{i}@example.com")
        assert mailchimp.resubscribe(f"p{i}@example.com")
    assert run(config, "sync")[0] == 0
    write_jsonl(tmp_path / "in.jsonl", [{**p, "last_name": "Two"} for p in people])
    code, out = run(config, "sync")
    assert code == 0 and out["providers"]["mailchimp"]["updated"] == 20, out
    outcome = _read_back(config)
    assert (outcome.stored, outcome.unchanged) == (0, 20)
