"""Zoho notifications over real HTTP: the watch channel, its renewal, token checks, callbacks as hints."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from zoho_fixtures import make_adapter

from adapters._emulator import Fault
from adapters.errors import WebhookRejected
from adapters.zoho.adapter import ZohoCallRejected
from adapters.zoho.emulator import ZohoEmulator


class Receiver:
    """A stand-in for the daemon's webhook route: records (path, body) of each POST."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.got.append((self.path, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/webhooks/zoho?key=K3Y"


@pytest.fixture
def zoho() -> Iterator[ZohoEmulator]:
    with ZohoEmulator() as emulator:
        yield emulator


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_watch_is_created_reused_and_renewed_before_expiry(zoho: ZohoEmulator, receiver: Receiver) -> None:
    adapter = make_adapter(zoho, notify_url=receiver.url, notify_token="tok-secret")
    expiry = adapter.ensure_watch()
    [channel] = list(zoho.iter_channels())
    assert channel.events == ["Contacts.all"] and channel.token == "tok-secret"
    assert dt.timedelta(days=6) < expiry - dt.datetime.now(dt.UTC) <= dt.timedelta(days=7)
    assert adapter.ensure_watch() == expiry  # still a week left: no new channel call
    assert zoho.call_count("POST", "watch") == 1
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=6, hours=12)  # under a day left
    zoho.advance_clock((later - dt.datetime.now(dt.UTC)).total_seconds())
    renewed = adapter.ensure_watch(now=later)
    assert renewed > expiry and zoho.call_count("POST", "watch") == 1 and zoho.call_count("PATCH", "watch") == 1
    [channel] = list(zoho.iter_channels())
    assert channel.expiry == renewed


def test_the_channel_is_found_among_many_others(zoho: ZohoEmulator, receiver: Receiver) -> None:
    """Zoho lists channels 200 a page: the adapter asks for its own by channel_id."""
    adapter = make_adapter(zoho, notify_url=receiver.url, notify_token="tok-secret")
    adapter.ensure_watch()
    others = [
        {"channel_id": str(10**6 + i), "events": ["Contacts.create"], "notify_url": f"https://other.example.com/{i}"}
        for i in range(250)
    ]
    for start in range(0, len(others), 50):
        adapter.call("POST", "/crm/v8/actions/watch", json={"watch": others[start : start + 50]}, idempotent=False)
    ours = zoho.channels.pop(next(iter(zoho.channels)))
    zoho.channels[ours.channel_id] = ours  # listed last, beyond the first page
    adapter.ensure_watch()
    assert zoho.call_count("POST", "watch") == 1 + 5 and zoho.call_count("PATCH", "watch") == 0


def test_a_listed_channel_without_expiry_is_renewed(zoho: ZohoEmulator, receiver: Receiver) -> None:
    adapter = make_adapter(zoho, notify_url=receiver.url, notify_token="tok-secret")
    adapter.ensure_watch()
    channel = adapter.call("GET", "/crm/v8/actions/watch").json()["watch"][0]
    listing = {"watch": [{k: v for k, v in channel.items() if k != "channel_expiry"}]}
    zoho.inject(Fault(status=200, body=listing, method="GET", path_pattern="/actions/watch"))
    adapter.ensure_watch()
    assert zoho.call_count("PATCH", "watch") == 1


def test_a_notify_token_longer_than_zoho_allows_is_a_config_error(zoho: ZohoEmulator) -> None:
    with pytest.raises(ValueError, match="at most 50"):
        make_adapter(zoho, notify_url="https://crm.example.com/hook", notify_token="t" * 51)


def test_callbacks_verify_and_become_hints_fetched_by_id(zoho: ZohoEmulator, receiver: Receiver) -> None:
    ids = zoho.seed(2)
    adapter = make_adapter(zoho, notify_url=receiver.url, notify_token="tok-secret")
    adapter.ensure_watch()
    zoho.edit(ids[0], First_Name="Hinted")
    zoho.delete(ids[1])
    zoho.wait_deliveries(2)
    assert len(receiver.got) == 2
    events = []
    for path, body in receiver.got:
        url = "http://127.0.0.1" + path
        adapter.verify_webhook(method="POST", url=url, headers={}, body=body)
        events += adapter.parse_webhook(headers={}, body=body)
    assert [(e.kind, e.remote_id) for e in events] == [("updated", ids[0]), ("deleted", ids[1])]
    assert len({e.event_id for e in events}) == 2
    records = adapter.fetch_contacts([e.remote_id for e in events if e.remote_id])
    assert records[0].data["First_Name"] == "Hinted" and records[1].deleted


def test_wrong_token_or_key_is_rejected(zoho: ZohoEmulator, receiver: Receiver) -> None:
    adapter = make_adapter(zoho, notify_url=receiver.url, notify_token="tok-secret")
    good = {"operation": "update", "ids": ["1"], "token": "tok-secret", "channel_id": 1, "server_time": 1}
    adapter.verify_webhook(method="POST", url=receiver.url, headers={}, body=json.dumps(good).encode())
    for body, url in (
        ({**good, "token": "tok-secreT"}, receiver.url),
        ({k: v for k, v in good.items() if k != "token"}, receiver.url),
        (good, receiver.url.replace("K3Y", "nope")),
        (good, receiver.url.split("?")[0]),
    ):
        with pytest.raises(WebhookRejected) as caught:
            adapter.verify_webhook(method="POST", url=url, headers={}, body=json.dumps(body).encode())
        assert "tok-secret" not in str(caught.value)
    with pytest.raises(WebhookRejected):
        adapter.verify_webhook(method="POST", url=receiver.url, headers={}, body=b"not json")


def test_a_callback_url_without_its_query_is_verified_by_the_echoed_query_params(
    zoho: ZohoEmulator, receiver: Receiver
) -> None:
    zoho.callback_keeps_query = False  # the parameters only in the body's query_params
    [rid] = zoho.seed(1)
    adapter = make_adapter(zoho, notify_url=receiver.url, notify_token="tok-secret")
    adapter.ensure_watch()
    zoho.edit(rid, First_Name="Hinted")
    zoho.wait_deliveries(1)
    [(path, body)] = receiver.got
    assert "?" not in path
    adapter.verify_webhook(method="POST", url="http://127.0.0.1" + path, headers={}, body=body)
    forged = {**json.loads(body), "query_params": {"key": "nope"}}
    with pytest.raises(WebhookRejected):
        adapter.verify_webhook(
            method="POST", url="http://127.0.0.1" + path, headers={}, body=json.dumps(forged).encode()
        )
    in_url = receiver.url.replace("K3Y", "nope")  # a parameter in the URL is the one compared
    with pytest.raises(WebhookRejected):
        adapter.verify_webhook(method="POST", url=in_url, headers={}, body=body)


def test_without_a_notify_token_every_callback_is_rejected(zoho: ZohoEmulator) -> None:
    adapter = make_adapter(zoho)
    with pytest.raises(WebhookRejected):
        adapter.verify_webhook(method="POST", url="http://x/", headers={}, body=b'{"token": ""}')


def test_emulator_refuses_a_channel_beyond_a_week(zoho: ZohoEmulator) -> None:
    adapter = make_adapter(zoho)
    too_far = (dt.datetime.now(dt.UTC) + dt.timedelta(days=8)).replace(microsecond=0).isoformat()
    body = {
        "watch": [{"channel_id": 1, "events": ["Contacts.all"], "notify_url": "http://x/", "channel_expiry": too_far}]
    }
    with pytest.raises(ZohoCallRejected) as caught:
        adapter.call("POST", "/crm/v8/actions/watch", json=body, idempotent=False)
    assert caught.value.code == "INVALID_DATA" and caught.value.items
