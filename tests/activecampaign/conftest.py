"""Fixtures for the ActiveCampaign tests: an emulator per test on a free port, on a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clocks import ManualClock

from adapters.activecampaign.emulator import ActiveCampaignEmulator


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ac_emulator(clock: ManualClock) -> Iterator[ActiveCampaignEmulator]:
    with ActiveCampaignEmulator(clock=clock) as emulator:
        yield emulator
