"""Webhook intake through a real daemon process: verification, the inbox, and targeted cycles to every provider."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_daemon_support import (
    CORE,
    DaemonProcess,
    add_mailchimp_hook,
    free_port,
    hubspot_delivery,
    inbox_rows,
    property_change,
    wait_until,
    write_config,
)

from adapters.mailchimp._wire import subscriber_hash
from connector.sandbox import running_emulators

ZOHO_TOKEN = "zoho-channel-token-1"


@pytest.fixture
def emulators() -> Iterator[dict[str, Any]]:
    with running_emulators(seed=3, kinds=CORE) as started:
        yield started


def test_signed_deliveries_are_stored_once_and_forged_or_stale_ones_are_refused(
    tmp_path: Path, state_url: str, emulators: dict[str, Any]
) -> None:
    config = write_config(tmp_path, state_url, emulators, extra={
        "zoho": {"notify_token": ZOHO_TOKEN, "notify_url": "http://127.0.0.1:9/webhooks/zoho?key=K3Y"}})
    daemon = DaemonProcess(config, "--debounce", "3600", log=tmp_path / "daemon.log")  # nothing drains
    try:
        secret = emulators["hubspot"].client_secret
        url = daemon.url + "/webhooks/hubspot"
        headers, body = hubspot_delivery(secret, url, [property_change("1001", event_id=1)])
        assert daemon.post("/webhooks/hubspot", body, headers).status_code == 200
        assert daemon.post("/webhooks/hubspot", body, headers).status_code == 200  # replayed: stored once
        forged = dict(headers, **{"X-HubSpot-Signature-v3": headers["X-HubSpot-Signature-v3"][::-1]})
        other = hubspot_delivery(secret, url, [property_change("1002", event_id=2)])[1]
        assert daemon.post("/webhooks/hubspot", other, forged).status_code == 401
        assert daemon.post("/webhooks/hubspot", other, headers).status_code == 401  # a signature of another body
        stale_headers, stale_body = hubspot_delivery(secret, url, [property_change("1003", event_id=3)],
                                                     timestamp_ms=int((time.time() - 600) * 1000))
        assert daemon.post("/webhooks/hubspot", stale_body, stale_headers).status_code == 401

        mailchimp = emulators["mailchimp"]
        query, mc_headers, mc_body = mailchimp.webhook_delivery("profile", "mailchimp-0@example.com")
        assert daemon.post(f"/webhooks/mailchimp?{query}", mc_body, mc_headers).status_code == 200
        assert daemon.post("/webhooks/mailchimp?secret=wrong", mc_body, mc_headers).status_code == 401
        assert daemon.get("/webhooks/mailchimp").status_code == 200  # Mailchimp's URL check

        zoho_body = (b'{"server_time": 1795454458715, "module": "Contacts", "ids": ["77"], "operation": "update",'
                     b' "channel_id": 5, "token": "%s"}' % ZOHO_TOKEN.encode())
        assert daemon.post("/webhooks/zoho?key=K3Y", zoho_body).status_code == 200
        assert daemon.post("/webhooks/zoho?key=K3Y", zoho_body.replace(b"-1", b"-2")).status_code == 401
        assert daemon.post("/webhooks/zoho?key=other", zoho_body).status_code == 401

        assert daemon.post("/webhooks/nobody", b"{}").status_code == 404
        assert daemon.post("/webhooks/hubspot", b"[" + b" " * (2 << 20) + b"]", headers).status_code == 413
        def polled() -> dict[str, Any] | None:
            health = daemon.get("/healthz").json()
            names = {lease["name"] for lease in health.get("leases", ())}
            return health if "poll:hubspot,mailchimp,zoho" in names else None

        health = wait_until(polled, what="the first poll cycle's marker")
        assert health["ok"] and health["state_store"] and health["scheduler"]
        metrics = daemon.get("/metrics").text
        assert 'crmsync_cycles_total{kind="poll",provider="hubspot",status=' in metrics
        assert 'crmsync_records_pulled_total{provider="mailchimp"} 3.0' in metrics
        assert sorted(inbox_rows(state_url)) == [("hubspot", "new"), ("mailchimp", "new"), ("zoho", "new")]
        metrics = daemon.get("/metrics").text
        assert "crmsync_inbox_depth 3.0" in metrics
        assert 'crmsync_webhooks_total{outcome="rejected",provider="hubspot"} 3.0' in metrics
        assert 'crmsync_rate_limited_total{provider="mailchimp"} 0.0' in metrics
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()
    log = (tmp_path / "daemon.log").read_text()
    assert "@example.com" not in log
    assert ZOHO_TOKEN not in log and mailchimp.webhook_secret not in log


def _fname(emulators: dict[str, Any], email: str) -> tuple[Any, Any, Any]:
    hub = emulators["hubspot"].find(email) or {}
    member = emulators["mailchimp"].member(subscriber_hash(email)) or {}
    zoho = emulators["zoho"].find(email) or {}
    return (hub.get("properties", {}).get("firstname"), member.get("merge_fields", {}).get("FNAME"),
            zoho.get("First_Name"))


def test_each_providers_webhooks_become_targeted_cycles_that_reach_the_others(
    tmp_path: Path, state_url: str, emulators: dict[str, Any]
) -> None:
    hubspot, mailchimp, zoho = emulators["hubspot"], emulators["mailchimp"], emulators["zoho"]
    listen = f"127.0.0.1:{free_port()}"
    signing = add_mailchimp_hook(mailchimp, f"http://{listen}/webhooks/mailchimp")
    config = write_config(tmp_path, state_url, emulators, extra={
        "mailchimp": {"webhook_secret": signing},
        "zoho": {"notify_token": ZOHO_TOKEN, "notify_url": f"http://{listen}/webhooks/zoho?key=K3Y"}})
    daemon = DaemonProcess(config, "--debounce", "0.2", log=tmp_path / "daemon.log", listen=listen)
    try:
        assert daemon.ready, (tmp_path / "daemon.log").read_text()
        # The first poll cycle copies the nine seeded people everywhere; the Zoho channel gets registered.
        wait_until(lambda: hubspot.count() == 9 and len(mailchimp.members()) == 9 and len(zoho.all_contacts()) == 9,
                   what="the first poll cycle to converge")
        wait_until(lambda: list(zoho.iter_channels()), what="the zoho watch channel")

        contact = hubspot.find("hubspot-1@example.com")
        hubspot.edit(contact["id"], firstname="Hedda")
        url = daemon.url + "/webhooks/hubspot"
        headers, body = hubspot_delivery(hubspot.client_secret, url,
                                         [property_change(contact["id"], event_id=11, value="Hedda")])
        assert daemon.post("/webhooks/hubspot", body, headers).status_code == 200
        wait_until(lambda: _fname(emulators, "hubspot-1@example.com") == ("Hedda",) * 3, what="hubspot -> others")

        mailchimp.edit(subscriber_hash("mailchimp-2@example.com"), FNAME="Mirja")  # the emulator posts a webhook
        wait_until(lambda: _fname(emulators, "mailchimp-2@example.com") == ("Mirja",) * 3, what="mailchimp -> others")

        zoho.edit(zoho.find("zoho-0@example.com")["id"], First_Name="Zelda")  # the channel posts a notification
        wait_until(lambda: _fname(emulators, "zoho-0@example.com") == ("Zelda",) * 3, what="zoho -> others")
        wait_until(lambda: all(status == "done" for _, status in inbox_rows(state_url)), what="an empty inbox")
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()


def test_a_burst_of_events_for_one_contact_becomes_one_targeted_cycle(
    tmp_path: Path, state_url: str, emulators: dict[str, Any]
) -> None:
    import sqlalchemy as sa

    hubspot, mailchimp = emulators["hubspot"], emulators["mailchimp"]
    config = write_config(tmp_path, state_url, emulators)
    daemon = DaemonProcess(config, "--debounce", "2", log=tmp_path / "daemon.log")
    try:
        wait_until(lambda: any(lease["name"].startswith("poll:") and lease["last_done_at"]
                               for lease in daemon.get("/healthz").json().get("leases", ())),
                   what="the first poll cycle to finish")
        contact = hubspot.find("hubspot-0@example.com")
        for n, name in enumerate(("Ada", "Adah", "Adele")):  # three edits in a row, three deliveries
            hubspot.edit(contact["id"], firstname=name)
            headers, body = hubspot_delivery(hubspot.client_secret, daemon.url + "/webhooks/hubspot",
                                             [property_change(contact["id"], event_id=50 + n, value=name)])
            assert daemon.post("/webhooks/hubspot", body, headers).status_code == 200
        wait_until(lambda: inbox_rows(state_url) == [("hubspot", "done")] * 3, what="the burst to be processed")
        member = mailchimp.member(subscriber_hash("hubspot-0@example.com"))
        assert member is not None and member["merge_fields"]["FNAME"] == "Adele"
        engine = sa.create_engine(state_url)
        with engine.connect() as conn:
            webhook_runs = conn.execute(sa.text("SELECT count(*) FROM run WHERE kind = 'webhook'")).scalar_one()
        engine.dispose()
        assert webhook_runs == 1
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()
