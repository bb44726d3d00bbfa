"""Fixtures for the Mailchimp tests: an emulator per test on a free port, on a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clocks import ManualClock

from adapters.mailchimp.emulator import MailchimpEmulator


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def mailchimp_emulator(clock: ManualClock) -> Iterator[MailchimpEmulator]:
    with MailchimpEmulator(clock=clock) as emulator:
        yield emulator
