"""Fixtures for the GetResponse tests: an emulator per test on a free port, on a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from clocks import ManualClock

from adapters.getresponse.emulator import GetResponseEmulator


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def gr_emulator(clock: ManualClock) -> Iterator[GetResponseEmulator]:
    with GetResponseEmulator(clock=clock) as emulator:
        yield emulator


@pytest.fixture
def gr_http(gr_emulator: GetResponseEmulator) -> Iterator[requests.Session]:
    """A plain HTTP client with the emulator's key, as any GetResponse client sends it."""
    with requests.Session() as session:
        session.headers["X-Auth-Token"] = f"api-key {gr_emulator.api_key}"
        yield session
