"""The shared adapter contract, run against the GetResponse adapter and its emulator over real HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from adapter_contract import AdapterContract, ids_of
from conftest import ManualClock

from adapters._emulator import Fault
from adapters.base import ProviderAdapter, ProviderRecord, WriteRequest
from adapters.getresponse import GetResponseAdapter
from adapters.getresponse.emulator import GetResponseEmulator
from adapters.secret import Secret


class TestGetResponseContract(AdapterContract):
    """GetResponse creates answer 202 without an id, so the two write tests are overridden.

    A create's result is ``ok=True, remote_id=None`` (the engine resolves the id from the next read by
    email), so the written contacts are checked by email rather than by the ids in the results.
    """

    __test__ = True
    http = True

    @pytest.fixture
    def emulator(self, gr_emulator: GetResponseEmulator) -> GetResponseEmulator:
        return gr_emulator

    @pytest.fixture
    def adapter(self, emulator: GetResponseEmulator, clock: ManualClock) -> GetResponseAdapter:
        return GetResponseAdapter(
            api_key=Secret(emulator.api_key),
            campaign_id=emulator.campaign_id,
            base_url=emulator.api_url,
            page_size=self.page_size,
            sleep=lambda s: None,
            clock=clock,  # GetResponse's clock: the watermark after a read comes from it
        )

    @pytest.fixture
    def seed(self, emulator: GetResponseEmulator) -> Callable[[int], list[str]]:
        return lambda n: emulator.seed(n, prefix="contact")

    @pytest.fixture
    def inject(self, emulator: GetResponseEmulator) -> Callable[[Fault], None]:
        return emulator.inject

    def make_write(self, i: int) -> WriteRequest:
        email = f"new{i}@example.com"
        return WriteRequest(
            ref=f"w{i}", remote_id=None, email=email, fields={"email": email, "nameParts": {"first": f"N{i}"}}
        )

    def email_of(self, record: ProviderRecord) -> str | None:
        value = record.data.get("email")
        return value.strip().lower() if isinstance(value, str) else None

    def test_write_results_align_with_requests(self, adapter: ProviderAdapter) -> None:
        requests = [self.make_write(i) for i in range(5)]
        results = adapter.write_contacts(requests)
        assert [result.ref for result in results] == [request.ref for request in requests]
        assert all(result.ok for result in results), [result.error for result in results]
        assert all(result.remote_id is None for result in results)  # 202: no id yet

    def test_written_contacts_are_read_back(self, adapter: ProviderAdapter, seed: Callable[[int], list[str]]) -> None:
        seeded = seed(2)
        requests = [self.make_write(i) for i in range(3)]
        assert all(result.ok for result in adapter.write_contacts(requests))
        read = self.backfill(adapter)
        assert set(seeded) <= set(ids_of(read)), "a write never loses what was there"
        emails = {self.email_of(record) for page in read for record in page.records}
        assert {request.email for request in requests} <= emails
