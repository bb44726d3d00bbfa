"""Helpers for the daemon tests (no tests here): configs for the emulators, a daemon subprocess, signed deliveries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from adapters.hubspot.webhooks import sign_v3
from connector.sandbox import announcement

ROOT = Path(__file__).resolve().parents[1]
CORE = ("hubspot", "mailchimp", "zoho")  # the emulators these tests configure (running_emulators(kinds=CORE))


def write_config(folder: Path, state_url: str, emulators: dict[str, Any], *, interval: str = "1h",
                 extra: dict[str, dict[str, Any]] | None = None) -> Path:
    lines = [f'[state]\nurl = "{state_url}"\n', f'[sync]\ninterval = "{interval}"\n']
    for kind, entry in announcement(emulators)["providers"].items():
        lines.append(f'[providers.{kind}]\ntype = "{kind}"')
        options = {k: v for k, v in entry.items() if k != "credentials"} | entry["credentials"]
        options |= (extra or {}).get(kind, {})
        lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
        lines.append("")
    config = folder / "crmsync.toml"
    config.write_text("\n".join(lines))
    return config


def wait_until(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class DaemonProcess:
    """``crmsync daemon`` in a subprocess on a free port; its stderr (the log) goes to a file."""

    def __init__(self, config: Path, *args: str, log: Path, listen: str = "127.0.0.1:0") -> None:
        self.log = log
        self._err = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connector", "daemon", "--config", str(config), "--json",
             "--listen", listen, *args],
            stdout=subprocess.PIPE, stderr=self._err, cwd=str(config.parent),
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.ready: dict[str, Any] = {}
        reader = threading.Thread(target=self._read_first_line, daemon=True)
        reader.start()
        reader.join(timeout=30)

    def _read_first_line(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip():
            self.ready = json.loads(line)

    @property
    def url(self) -> str:
        assert self.ready, f"daemon did not start: {self.log.read_text()[-2000:]}"
        return f"http://{self.ready['listen']}"

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
        return requests.post(self.url + path, data=body, headers=headers or {}, timeout=10)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def interrupt(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._err.close()

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        self._err.close()
        return code

    def stop_quietly(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if not self._err.closed:
            self._err.close()


def hubspot_delivery(secret: str, url: str, events: list[dict[str, Any]], *,
                     timestamp_ms: int | None = None) -> tuple[dict[str, str], bytes]:
    body = json.dumps(events).encode()
    stamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    signature = sign_v3(secret, method="POST", uri=url, body=body, timestamp=stamp)
    return {"Content-Type": "application/json", "X-HubSpot-Signature-v3": signature,
            "X-HubSpot-Request-Timestamp": stamp}, body


def property_change(object_id: str, *, event_id: int, prop: str = "firstname", value: str = "x") -> dict[str, Any]:
    return {"eventId": event_id, "subscriptionId": 7, "portalId": 1, "occurredAt": int(time.time() * 1000),
            "subscriptionType": "contact.propertychange", "objectId": int(object_id), "propertyName": prop,
            "propertyValue": value}


def inbox_rows(state_url: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(state_url)
    try:
        with engine.connect() as conn:
            return [(r[0], r[1]) for r in conn.execute(sa.text("SELECT provider, status FROM webhook_inbox"))]
    finally:
        engine.dispose()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def add_mailchimp_hook(emulator: Any, url: str) -> str:
    """Register an audience webhook through the emulator's API, as an admin would; returns its signing secret."""
    answer = requests.post(
        f"{emulator.api_url}/lists/{emulator.list_id}/webhooks", auth=("crmsync", emulator.api_key), timeout=10,
        json={"url": url, "events": dict.fromkeys(("subscribe", "unsubscribe", "profile", "cleaned", "upemail"), True),
              "sources": {"user": True, "admin": True, "api": False}},
    )
    answer.raise_for_status()
    return str(answer.json()["signing_secret"])
