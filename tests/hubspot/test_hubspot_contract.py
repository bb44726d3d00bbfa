"""The shared adapter contract, run for HubSpot against its emulator over real HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from adapter_contract import AdapterContract

from adapters._emulator import Fault
from adapters.base import ProviderRecord, WriteRequest
from adapters.hubspot import HubSpotAdapter
from adapters.hubspot.emulator import HubSpotEmulator


class TestHubSpotContract(AdapterContract):
    __test__ = True
    http = True

    @pytest.fixture
    def emulator(self, hubspot_emulator: HubSpotEmulator) -> HubSpotEmulator:
        return hubspot_emulator  # a fresh portal per test on the session's server: faults never leak

    @pytest.fixture
    def adapter(self, emulator: HubSpotEmulator) -> HubSpotAdapter:
        options = emulator.sandbox_options()
        return HubSpotAdapter(
            access_token=options["access_token"], base_url=options["base_url"], page_size=self.page_size,
            rate_limit="100000/10s", search_rate_limit="100000/1s", sleep=lambda s: None,
        )

    @pytest.fixture
    def seed(self, emulator: HubSpotEmulator) -> Callable[[int], list[str]]:
        return lambda n: emulator.seed(n, prefix="contact")

    @pytest.fixture
    def inject(self, emulator: HubSpotEmulator) -> Callable[[Fault], None]:
        return emulator.inject

    def make_write(self, i: int) -> WriteRequest:
        email = f"new{i}@example.com"
        return WriteRequest(ref=f"w{i}", remote_id=None, email=email,
                            fields={"properties": {"email": email, "firstname": f"N{i}"}})

    def email_of(self, record: ProviderRecord) -> str | None:
        value = (record.data.get("properties") or {}).get("email")
        return value.strip().lower() if isinstance(value, str) else None
