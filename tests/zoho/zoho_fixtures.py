"""Helpers shared by the Zoho adapter tests: an emulator per test and an adapter pointed at it."""

from __future__ import annotations

from typing import Any

from adapters.zoho import ZohoAdapter, create_adapter
from adapters.zoho.emulator import ZohoEmulator


def make_adapter(zoho: ZohoEmulator, *, clock: Any = None, **overrides: Any) -> ZohoAdapter:
    options = {**zoho.sandbox_options(), **overrides}
    adapter = create_adapter("zoho", options)
    if clock is not None:
        adapter._now = clock  # noqa: SLF001
    # tiny waits: the retry policy is the transport's; here only its count matters
    adapter._api._sleep = lambda s: None  # noqa: SLF001
    adapter._accounts._sleep = lambda s: None  # noqa: SLF001
    return adapter
