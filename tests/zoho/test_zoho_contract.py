"""The shared adapter contract, run for Zoho CRM against its emulator over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from adapter_contract import AdapterContract

from adapters._emulator import Fault
from adapters.base import ProviderRecord, WriteRequest
from adapters.secret import Secret
from adapters.zoho import ZohoAdapter
from adapters.zoho.emulator import ZohoEmulator


class TestZohoContract(AdapterContract):
    __test__ = True
    http = True

    @pytest.fixture
    def emulator(self) -> Iterator[ZohoEmulator]:
        with ZohoEmulator() as emulator:
            yield emulator

    @pytest.fixture
    def adapter(self, emulator: ZohoEmulator) -> Iterator[ZohoAdapter]:
        adapter = ZohoAdapter(
            client_id=emulator.client_id,
            client_secret=Secret(emulator.client_secret),
            refresh_token=Secret(emulator.refresh_token),
            base_url=emulator.url,
            accounts_url=emulator.accounts_url,
            page_size=self.page_size,
            sleep=lambda s: None,
        )
        yield adapter
        adapter.close()

    @pytest.fixture
    def seed(self, emulator: ZohoEmulator) -> Callable[[int], list[str]]:
        return lambda n: emulator.seed(n, prefix="contact")

    @pytest.fixture
    def inject(self, emulator: ZohoEmulator) -> Callable[[Fault], None]:
        return emulator.inject

    def make_write(self, i: int) -> WriteRequest:
        email = f"new{i}@example.com"
        return WriteRequest(
            ref=f"w{i}", remote_id=None, email=email, fields={"Email": email, "First_Name": f"N{i}", "Last_Name": "New"}
        )

    def email_of(self, record: ProviderRecord) -> str | None:
        value = record.data.get("Email")
        return value.strip().lower() if isinstance(value, str) else None
