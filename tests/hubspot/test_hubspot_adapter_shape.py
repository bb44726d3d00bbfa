"""The HubSpot adapter's public shape: create_adapter options, abilities, one limiter per portal."""

from __future__ import annotations

import pytest

from adapters.base import ProviderAdapter, SupportsErase, SupportsFetchByIds, SupportsWebhooks
from adapters.hubspot import HubSpotAdapter, create_adapter
from adapters.hubspot.adapter import portal_limiters
from adapters.secret import Secret


def test_create_adapter_reads_the_config_keys(hubspot_emulator):
    options = {"type": "hubspot", "access_token": Secret("pat-na1-emulator-token"), "base_url": hubspot_emulator.url,
               "client_secret": Secret("s3cret"), "rate_limit": "190/10s", "page_size": 50,
               "properties": ["crmsync_score"], "subscription_id": "1002", "interval": "5m"}
    adapter = create_adapter("crm", options)
    assert adapter.name == "crm"
    for ability in (ProviderAdapter, SupportsErase, SupportsFetchByIds, SupportsWebhooks):
        assert isinstance(adapter, ability)
    adapter.check()
    assert "pat-na1" not in repr(adapter) and "s3cret" not in repr(adapter)
    hubspot_emulator.seed(60)
    hubspot_emulator.edit("1001", crmsync_score="7")
    from adapters.base import Cursor
    pages = list(adapter.read_contacts(Cursor()))
    assert [len(p.records) for p in pages] == [50, 10]
    assert pages[0].records[0].data["properties"]["crmsync_score"] == "7"


def test_search_rate_limit_defaults_to_hubspots_and_can_be_raised(hubspot_emulator):
    options = {"access_token": "pat-na1-emulator-token", "base_url": hubspot_emulator.url}
    default = create_adapter("crm", options).client._search_limiter
    raised = create_adapter("crm", {**options, "search_rate_limit": "50/1s"}).client._search_limiter
    assert (default.calls, raised.calls) == (5, 50)


def test_a_missing_token_is_refused(hubspot_emulator):
    with pytest.raises(ValueError, match="access_token"):
        HubSpotAdapter(access_token=Secret(""), base_url=hubspot_emulator.url)


def test_one_limiter_per_portal():
    a = portal_limiters("https://api.hubapi.com", "token-a", "100/10s")
    assert portal_limiters("https://api.hubapi.com", "token-a", "100/10s") is a
    assert portal_limiters("https://api.hubapi.com", "token-b", "100/10s") is not a
    burst, search = a
    assert burst.calls == 100 and burst.per_s >= 10 and search.calls == 5 and search.per_s >= 1
