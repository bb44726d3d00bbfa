"""Fixtures for the GetResponse tests: an emulator per test on a free port, on a clock the test moves."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
import requests

from adapters.getresponse.emulator import GetResponseEmulator


class ManualClock:
    """GetResponse's clock in tests: starts at a fixed moment and moves only when told (second precision)."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 3, 1, 9, 0, 0, tzinfo=dt.UTC)
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float = 1.0) -> dt.datetime:
        with self._lock:
            self.now += dt.timedelta(seconds=seconds)
            return self.now


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
