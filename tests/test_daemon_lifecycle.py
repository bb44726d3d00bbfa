"""The daemon as an ops engineer runs it: kill -9 after a 2xx loses nothing, SIGTERM stops cleanly, one per SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_daemon_support import (
    CORE,
    ROOT,
    DaemonProcess,
    hubspot_delivery,
    inbox_rows,
    property_change,
    wait_until,
    write_config,
)

from adapters.mailchimp._wire import subscriber_hash
from connector.sandbox import running_emulators


@pytest.fixture
def emulators() -> Iterator[dict[str, Any]]:
    with running_emulators(seed=3, kinds=CORE) as started:
        yield started


def _runs(state_url: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(state_url)
    try:
        with engine.connect() as conn:
            return [(r[0], r[1]) for r in conn.execute(sa.text("SELECT kind, status FROM run"))]
    finally:
        engine.dispose()


def test_an_event_answered_2xx_survives_kill_9_and_is_processed_after_restart(
    tmp_path: Path, state_url: str, emulators: dict[str, Any]
) -> None:
    hubspot, mailchimp = emulators["hubspot"], emulators["mailchimp"]
    config = write_config(tmp_path, state_url, emulators)
    first = DaemonProcess(config, "--debounce", "3600", "--lease-ttl", "2", log=tmp_path / "first.log")
    try:
        contact = hubspot.find("hubspot-2@example.com")
        hubspot.edit(contact["id"], firstname="Kasimir")
        headers, body = hubspot_delivery(hubspot.client_secret, first.url + "/webhooks/hubspot",
                                         [property_change(contact["id"], event_id=5, value="Kasimir")])
        assert first.post("/webhooks/hubspot", body, headers).status_code == 200
        first.kill()
    finally:
        first.stop_quietly()
    assert inbox_rows(state_url) == [("hubspot", "new")]

    second = DaemonProcess(config, "--debounce", "0", "--lease-ttl", "2", log=tmp_path / "second.log")
    try:
        wait_until(lambda: inbox_rows(state_url) == [("hubspot", "done")], what="the stored event to be processed")
        member = mailchimp.member(subscriber_hash("hubspot-2@example.com"))
        assert member is not None and member["merge_fields"]["FNAME"] == "Kasimir"
        assert second.terminate() == 0
    finally:
        second.stop_quietly()


def test_sigterm_mid_cycle_stops_between_batches_exits_0_and_a_restart_converges(
    tmp_path: Path, state_url: str
) -> None:
    with running_emulators(seed=400, kinds=CORE) as emulators:
        for emulator in emulators.values():
            getattr(emulator, "server", emulator).latency_s = 0.02  # cycles long enough to be interrupted
        config = write_config(tmp_path, state_url, emulators)
        daemon = DaemonProcess(config, "--log-format", "json", log=tmp_path / "daemon.log")
        try:
            wait_until(lambda: ("sync", "running") in _runs(state_url), what="a poll cycle to start")
            assert daemon.terminate(timeout=30) == 0
        finally:
            daemon.stop_quietly()
        assert ("sync", "running") not in _runs(state_url)
        lines = [json.loads(line) for line in (tmp_path / "daemon.log").read_text().splitlines() if line.strip()]
        assert any(line["msg"] == "daemon stopped" for line in lines)
        assert not any("@" in json.dumps(line) for line in lines)

        again = DaemonProcess(config, log=tmp_path / "again.log")
        try:
            everyone = 1200
            wait_until(lambda: emulators["hubspot"].count() == everyone and len(emulators["mailchimp"].members())
                       == everyone and len(emulators["zoho"].all_contacts()) == everyone,
                       timeout=60, what="every provider to hold every person once")
            assert again.terminate() == 0
        finally:
            again.stop_quietly()


def test_a_second_daemon_on_one_sqlite_file_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with running_emulators(kinds=CORE) as emulators:
        config = write_config(tmp_path, f"sqlite:///{tmp_path / 'state.db'}", emulators)
        first = DaemonProcess(config, log=tmp_path / "first.log")
        try:
            assert first.ready
            second = subprocess.run(
                [sys.executable, "-m", "connector", "daemon", "--config", str(config), "--listen", "127.0.0.1:0"],
                capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            assert second.returncode == 2
            assert "another crmsync daemon is already running" in second.stderr
            assert first.proc.poll() is None
            assert first.terminate() == 0
        finally:
            first.stop_quietly()
        # the lock went with the first daemon: a new one starts
        third = DaemonProcess(config, log=tmp_path / "third.log")
        try:
            assert third.ready and third.interrupt() == 0  # Ctrl-C stops it as cleanly as SIGTERM
        finally:
            third.stop_quietly()
