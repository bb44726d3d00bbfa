"""A migration writes the target's batch while it reads and stores the next source pages (connector/ahead.py)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from adapters._emulator import Request, Response
from adapters.hubspot.emulator import HubSpotEmulator
from adapters.mailchimp.emulator import MailchimpEmulator
from connector.app import open_engine
from connector.config import load_config

PEOPLE = 2_400  # 24 HubSpot list pages; Mailchimp write calls of 1,000, 1,000 and 400 (batch subscribes of 500)


def _config(folder: Path, state_url: str, hubspot: HubSpotEmulator, mailchimp: MailchimpEmulator) -> Path:
    lines = [f'[state]\nurl = "{state_url}"\n', "[providers.hubspot]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in hubspot.sandbox_options().items() if k != "rate_limit"]
    lines += ['rate_limit = "100000/10s"', "", "[providers.mailchimp]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in mailchimp.sandbox_options().items()]
    path = folder / "crmsync.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _hold_first_batch_until(
    mailchimp: MailchimpEmulator, ready: threading.Event, held: list[bool], posts: list[str]
) -> None:
    """Mailchimp answers its first batch subscribe only once ``ready`` is set (or after 10 s)."""
    serve = mailchimp.dispatch

    def dispatch(request: Request) -> Response | None:
        if request.method == "POST" and request.path.endswith(f"/lists/{mailchimp.list_id}"):
            posts.append(request.path)
            if not held:
                held.append(ready.wait(timeout=10))
        return serve(request)

    mailchimp.dispatch = dispatch  # type: ignore[method-assign]


@pytest.mark.state
def test_the_next_pages_are_stored_while_the_target_takes_a_batch(tmp_path: Path, state_url: str):
    with HubSpotEmulator(burst=10**6) as hubspot, MailchimpEmulator() as mailchimp:
        hubspot.seed(PEOPLE, prefix="person")
        ready, held, posts = threading.Event(), [], []
        list_pages = hubspot.server.dispatch

        def count_pages(request: Request) -> Response | None:
            answer = list_pages(request)
            # the first batch goes out after page 10 is stored; page 11 may be read ahead by then, page 13 not
            if request.method == "GET" and hubspot.call_count("GET", r"/crm/v3/objects/contacts$") >= 13:
                ready.set()
            return answer

        hubspot.server.dispatch = count_pages  # type: ignore[method-assign]
        _hold_first_batch_until(mailchimp, ready, held, posts)
        config = load_config(_config(tmp_path, state_url, hubspot, mailchimp))
        with open_engine(config, names=["hubspot", "mailchimp"]) as engine:
            report = engine.migrate("hubspot", "mailchimp", resume=False)
        assert held == [True], "the first batch held the engine: no page was read while Mailchimp worked"
        assert report.status == "ok", report.provider_errors
        assert report.figures("mailchimp").created == PEOPLE
        assert len(mailchimp.members()) == PEOPLE
        assert len(posts) == 5  # batch subscribes of 500 (four) and 400: none sent twice


@pytest.mark.state
def test_a_target_error_in_flight_is_the_targets_and_resume_finishes_without_duplicates(tmp_path: Path, state_url: str):
    with HubSpotEmulator(burst=10**6) as hubspot, MailchimpEmulator() as mailchimp:
        hubspot.seed(PEOPLE, prefix="person")
        serve, posts = mailchimp.dispatch, []

        def fail_second_batch(request: Request) -> Response | None:
            if request.method == "POST" and request.path.endswith(f"/lists/{mailchimp.list_id}"):
                posts.append(request.path)
                if len(posts) == 3:  # the second write call's first batch subscribe
                    return Response.json({"title": "Forbidden", "status": 403, "detail": "list closed"}, 403)
            return serve(request)

        mailchimp.dispatch = fail_second_batch  # type: ignore[method-assign]
        config = load_config(_config(tmp_path, state_url, hubspot, mailchimp))
        with open_engine(config, names=["hubspot", "mailchimp"]) as engine:
            first: Any = engine.migrate("hubspot", "mailchimp", resume=False)
        assert set(first.provider_errors) == {"mailchimp"}
        assert len(mailchimp.members()) == 1_000  # the first write call was written and recorded
        mailchimp.dispatch = serve  # type: ignore[method-assign]
        with open_engine(config, names=["hubspot", "mailchimp"]) as engine:
            second = engine.migrate("hubspot", "mailchimp", resume=True)
        assert second.status == "ok", second.provider_errors
        emails = [m["email_address"] for m in mailchimp.members()]
        assert len(emails) == len(set(emails)) == PEOPLE
        assert first.figures("mailchimp").created + second.figures("mailchimp").created == PEOPLE


@pytest.mark.state
def test_a_file_target_is_written_in_the_engines_own_thread(tmp_path: Path, state_url: str, monkeypatch):
    """A file has no server to wait for: a batch written beside the next pages would only share the interpreter."""
    from filesync import write_config, write_csv

    from adapters.files import JsonlAdapter

    write_csv(tmp_path / "in.csv", [{"email": f"p{i}@example.com"} for i in range(2_500)])
    threads: set[str] = set()
    write = JsonlAdapter.write_contacts

    def recording(self: JsonlAdapter, requests: Any) -> Any:
        threads.add(threading.current_thread().name)
        return write(self, requests)

    monkeypatch.setattr(JsonlAdapter, "write_contacts", recording)
    config = write_config(tmp_path, state_url, {"src": ("csv", "in.csv"), "dst": ("jsonl", "out.jsonl")})
    with open_engine(load_config(config), names=["src", "dst"]) as engine:
        report = engine.migrate("src", "dst", resume=False)
    assert report.figures("dst").created == 2_500
    assert threads == {threading.main_thread().name}
