"""Fixtures for the ActiveCampaign tests: an emulator per test on a free port, on a clock the test moves."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest

from adapters.activecampaign.emulator import ActiveCampaignEmulator


class ManualClock:
    """One clock for the emulator and the adapter: starts at a fixed moment, moves only when told."""

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
def ac_emulator(clock: ManualClock) -> Iterator[ActiveCampaignEmulator]:
    with ActiveCampaignEmulator(clock=clock) as emulator:
        yield emulator
