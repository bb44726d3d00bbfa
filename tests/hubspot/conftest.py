"""Fixtures for the HubSpot tests: one emulator server for the session, reset to a fresh portal per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters.hubspot import HubSpotAdapter
from adapters.hubspot.emulator import HubSpotEmulator


@pytest.fixture(scope="session")
def _hubspot_server() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(burst=100_000, search_per_s=100_000) as emu:
        yield emu


@pytest.fixture
def hubspot_emulator(_hubspot_server: HubSpotEmulator) -> HubSpotEmulator:
    """A fresh portal (data, faults, counters, limits, knobs) on the shared server: faults never leak."""
    _hubspot_server.reset()
    return _hubspot_server


@pytest.fixture
def make_hubspot_adapter(hubspot_emulator: HubSpotEmulator) -> Callable[..., HubSpotAdapter]:
    """An adapter on the emulator with fast limits and recorded (not slept) retry waits."""

    def make(*, sleeps: list[float] | None = None, emu: HubSpotEmulator | None = None, **kwargs: Any) -> HubSpotAdapter:
        target = emu or hubspot_emulator
        options = target.sandbox_options()
        kwargs.setdefault("rate_limit", "100000/10s")
        kwargs.setdefault("search_rate_limit", "100000/1s")
        return HubSpotAdapter(
            name="hubspot",
            access_token=options["access_token"],
            base_url=options["base_url"],
            client_secret=options["client_secret"],
            sleep=sleeps.append if sleeps is not None else (lambda s: None),
            timeout=(2.0, 5.0),
            **kwargs,
        )

    return make


@pytest.fixture
def hubspot_adapter(make_hubspot_adapter: Callable[..., HubSpotAdapter]) -> HubSpotAdapter:
    return make_hubspot_adapter()
