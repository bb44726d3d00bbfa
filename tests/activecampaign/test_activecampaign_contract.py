"""The shared adapter contract, run against the ActiveCampaign adapter and its emulator over real HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from adapter_contract import AdapterContract

from adapters._emulator import Fault
from adapters.activecampaign import ActiveCampaignAdapter
from adapters.activecampaign.emulator import ActiveCampaignEmulator
from adapters.base import ProviderRecord, WriteRequest
from adapters.secret import Secret


class TestActiveCampaignContract(AdapterContract):
    __test__ = True
    http = True

    @pytest.fixture
    def emulator(self, ac_emulator: ActiveCampaignEmulator) -> ActiveCampaignEmulator:
        return ac_emulator  # seeded contacts share one second: ordering rests on ids alone

    @pytest.fixture
    def adapter(self, emulator: ActiveCampaignEmulator, clock) -> ActiveCampaignAdapter:
        return ActiveCampaignAdapter(
            api_url=emulator.url,
            api_token=Secret(emulator.api_token),
            list_id=emulator.list_id,
            page_size=self.page_size,
            rate_limit="1000/s",
            sleep=lambda s: None,
            clock=clock,
        )

    @pytest.fixture
    def seed(self, emulator: ActiveCampaignEmulator) -> Callable[[int], list[str]]:
        return lambda n: emulator.seed(n, prefix="contact")

    @pytest.fixture
    def inject(self, emulator: ActiveCampaignEmulator) -> Callable[[Fault], None]:
        return emulator.inject

    def make_write(self, i: int) -> WriteRequest:
        email = f"new{i}@example.com"
        return WriteRequest(
            ref=f"w{i}", remote_id=None, email=email, fields={"email": email, "firstName": f"N{i}", "listStatus": "1"}
        )

    def email_of(self, record: ProviderRecord) -> str | None:
        value = record.data.get("email")
        return value.strip().lower() if isinstance(value, str) else None
