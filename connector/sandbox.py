"""``crmsync sandbox``: every provider emulator on localhost, with a ready config to reach them."""

from __future__ import annotations

import contextlib
import importlib
import json
import signal
import threading
from collections.abc import Iterator
from typing import Any, Final

EMULATORS: Final = (  # provider type -> "module:Class"
    ("hubspot", "adapters.hubspot.emulator:HubSpotEmulator"),
    ("mailchimp", "adapters.mailchimp.emulator:MailchimpEmulator"),
    ("zoho", "adapters.zoho.emulator:ZohoEmulator"),
    ("activecampaign", "adapters.activecampaign.emulator:ActiveCampaignEmulator"),
    ("getresponse", "adapters.getresponse.emulator:GetResponseEmulator"),
)
CORE_KINDS: Final = ("hubspot", "mailchimp", "zoho")
_ADDRESS_KEYS: Final = ("type", "base_url", "accounts_url")


@contextlib.contextmanager
def running_emulators(*, seed: int = 0, kinds: tuple[str, ...] | None = CORE_KINDS) -> Iterator[dict[str, Any]]:
    """Start the emulators of ``kinds`` (the three core providers by default; None: every one this build
    has), each seeded with ``seed`` contacts of its own (``<type>-<i>@example.com``); yield type -> emulator.
    """
    started: dict[str, Any] = {}
    try:
        for kind, target in EMULATORS:
            if kinds is not None and kind not in kinds:
                continue
            module_name, class_name = target.split(":")
            try:
                emulator_class = getattr(importlib.import_module(module_name), class_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:  # the emulator is there but something it needs is not: a real error
                    raise
                continue
            emulator = emulator_class()
            emulator.start()
            started[kind] = emulator
            if seed:
                emulator.seed(seed, prefix=f"{kind}-")
        yield started
    finally:
        for emulator in started.values():
            with contextlib.suppress(Exception):
                emulator.stop()


def announcement(emulators: dict[str, Any]) -> dict[str, Any]:
    """SPEC.md's first JSON line: base URLs (and Zoho's accounts URL) and the credentials they accept."""
    providers: dict[str, Any] = {}
    for kind, emulator in emulators.items():
        options = dict(emulator.sandbox_options())
        entry = {key: options.pop(key) for key in _ADDRESS_KEYS[1:] if key in options}
        options.pop("type", None)
        entry["credentials"] = options
        providers[kind] = entry
    return {"providers": providers}


def config_text(emulators: dict[str, Any], *, state_url: str = "sqlite:///crmsync-sandbox.db") -> str:
    lines = ["# crmsync sandbox: a config that reaches the local emulators", "[state]", f'url = "{state_url}"', ""]
    for kind, emulator in emulators.items():
        lines.append(f"[providers.{kind}]")
        for key, value in emulator.sandbox_options().items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


def wait_for_termination() -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
