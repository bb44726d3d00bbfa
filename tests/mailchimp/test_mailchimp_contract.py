"""The shared adapter contract, run against the Mailchimp adapter and its emulator over real HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from adapter_contract import AdapterContract

from adapters._emulator import Fault
from adapters.base import ProviderRecord, WriteRequest
from adapters.mailchimp import MailchimpAdapter
from adapters.mailchimp.emulator import MailchimpEmulator
from adapters.secret import Secret


class TestMailchimpContract(AdapterContract):
    __test__ = True
    http = True

    @pytest.fixture
    def emulator(self, mailchimp_emulator: MailchimpEmulator) -> MailchimpEmulator:
        return mailchimp_emulator  # seeded members share one second: the hardest case for paging

    @pytest.fixture
    def adapter(self, emulator: MailchimpEmulator) -> MailchimpAdapter:
        return MailchimpAdapter(
            api_key=Secret(emulator.api_key),
            list_id=emulator.list_id,
            base_url=emulator.api_url,
            page_size=self.page_size,
            sleep=lambda s: None,
        )

    @pytest.fixture
    def seed(self, emulator: MailchimpEmulator) -> Callable[[int], list[str]]:
        return lambda n: emulator.seed(n, prefix="contact")

    @pytest.fixture
    def inject(self, emulator: MailchimpEmulator) -> Callable[[Fault], None]:
        return emulator.inject

    def make_write(self, i: int) -> WriteRequest:
        email = f"new{i}@example.com"
        return WriteRequest(
            ref=f"w{i}",
            remote_id=None,
            email=email,
            fields={"email_address": email, "merge_fields": {"FNAME": f"N{i}"}, "status": None},
        )

    def email_of(self, record: ProviderRecord) -> str | None:
        value = record.data.get("email_address")
        return value.strip().lower() if isinstance(value, str) else None
