"""ActiveCampaign webhooks: URL-token verification and form-body parsing, with deliveries from the emulator."""

from __future__ import annotations

import datetime as dt
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from adapters.activecampaign import ActiveCampaignAdapter
from adapters.activecampaign.webhooks import parse_delivery
from adapters.errors import WebhookRejected
from adapters.secret import Secret

TOKEN = "Zt9q-unguessable-path-token"


def adapter(list_id: str = "1", token: str | None = TOKEN) -> ActiveCampaignAdapter:
    return ActiveCampaignAdapter(
        api_url="http://127.0.0.1:9",
        api_token=Secret("t"),
        list_id=list_id,
        webhook_token=Secret(token) if token else None,
    )


def form(**values: str) -> bytes:
    base = {
        "type": "unsubscribe",
        "date_time": "2026-03-01T04:00:00-05:00",
        "initiated_by": "public",
        "initiated_from": "public",
        "contact[id]": "42",
        "contact[email]": "Ana@Example.com",
        "list": "1",
        "list[0][id]": "1",
        "unsubscribe[reason]": "too many emails",
    }
    return urlencode({**base, **values}).encode()


@pytest.mark.parametrize(
    "url",
    [f"https://crm.example.com/webhooks/activecampaign/{TOKEN}", f"https://crm.example.com/webhooks/ac?token={TOKEN}"],
)
def test_the_url_token_is_accepted_in_the_path_or_the_query(url):
    adapter().verify_webhook(method="POST", url=url, headers={}, body=form())


@pytest.mark.parametrize(
    ("token", "url"),
    [
        (TOKEN, "https://crm.example.com/webhooks/activecampaign/wrong"),
        (TOKEN, "https://crm.example.com/webhooks/activecampaign?token="),
        (None, f"https://crm.example.com/webhooks/activecampaign/{TOKEN}"),
    ],
)
def test_a_wrong_or_missing_token_is_rejected_without_echoing_it(token, url):
    with pytest.raises(WebhookRejected) as err:
        adapter(token=token).verify_webhook(method="POST", url=url, headers={}, body=form())
    assert TOKEN not in str(err.value)


def test_an_unsubscribe_is_parsed_with_its_time_in_utc():
    [event] = adapter().parse_webhook(headers={}, body=form())
    assert event.kind == "unsubscribed" and event.remote_id == "42" and event.email == "ana@example.com"
    assert event.occurred_at == dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
    assert event.payload["reason"] == "too many emails"


def test_list_events_of_another_list_and_unknown_types_yield_nothing():
    assert adapter(list_id="7").parse_webhook(headers={}, body=form()) == []
    assert adapter().parse_webhook(headers={}, body=form(type="open")) == []
    [tagged] = adapter(list_id="7").parse_webhook(headers={}, body=form(type="contact_tag_added", list="0"))
    assert tagged.kind == "updated"  # listid does not filter tag events [SPEC]


def test_the_event_id_is_stable_and_holds_no_address():
    first = parse_delivery(form(), list_id="1")[0]
    assert first.event_id == parse_delivery(form(), list_id="1")[0].event_id
    assert first.event_id != parse_delivery(form(date_time="2026-03-01T04:00:01-05:00"), list_id="1")[0].event_id
    assert "ana" not in first.event_id


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=20), max_size=8))
def test_any_form_body_parses_without_raising(values):
    events = parse_delivery(urlencode(values).encode(), list_id="1")
    assert len(events) <= 1


class _Sink(BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        self.bodies.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def test_deliveries_from_the_emulator_verify_and_parse(ac_emulator, clock):
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{sink.server_address[1]}/webhooks/activecampaign/{TOKEN}"
        hook = {
            "name": "crmsync",
            "url": url,
            "events": ["subscribe", "unsubscribe", "update"],
            "sources": ["public", "admin"],
        }
        answer = requests.post(
            ac_emulator.url + "/api/3/webhooks",
            json={"webhook": hook},
            headers={"Api-Token": ac_emulator.api_token},
            timeout=5,
        )
        assert answer.status_code == 201
        ids = ac_emulator.seed(1)
        ac_emulator.edit(ids[0], firstName="Zed")
        ac_emulator.unsubscribe("contact0@example.com")
        new_id = ac_emulator.subscribe("new@example.com", firstName="New")
        ac_ = ActiveCampaignAdapter(
            api_url=ac_emulator.url,
            api_token=Secret(ac_emulator.api_token),
            list_id=ac_emulator.list_id,
            webhook_token=Secret(TOKEN),
        )
        events = []
        for path, body in _Sink.bodies:
            ac_.verify_webhook(method="POST", url=f"http://127.0.0.1{path}", headers={}, body=body)
            events += ac_.parse_webhook(headers={}, body=body)
        assert [(e.kind, e.remote_id) for e in events] == [
            ("updated", ids[0]),
            ("unsubscribed", ids[0]),
            ("created", new_id),
        ]
    finally:
        sink.shutdown()
        sink.server_close()
        _Sink.bodies.clear()
