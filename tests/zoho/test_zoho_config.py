"""The Zoho adapter built the way the CLI builds it: TOML config, ${ENV} secrets, then a call."""

from __future__ import annotations

from pathlib import Path

from adapters.base import Cursor
from adapters.zoho import ZohoAdapter
from adapters.zoho.emulator import ZohoEmulator
from connector.config import load_config_from_mapping
from connector.runtime import build_adapter


def test_config_with_base_and_accounts_urls_reaches_the_emulator(tmp_path: Path) -> None:
    with ZohoEmulator() as zoho:
        ids = zoho.seed(3)
        raw = {
            "providers": {
                "crm": {
                    "type": "zoho",
                    "client_id": zoho.client_id,
                    "client_secret": "${ZOHO_CLIENT_SECRET}",
                    "refresh_token": "${ZOHO_REFRESH_TOKEN}",
                    "data_center": "eu",
                    "base_url": zoho.url,
                    "accounts_url": zoho.accounts_url,
                    "notify_token": "${ZOHO_NOTIFY_TOKEN}",
                    "page_size": 2,
                }
            }
        }
        env = {
            "ZOHO_CLIENT_SECRET": zoho.client_secret,
            "ZOHO_REFRESH_TOKEN": zoho.refresh_token,
            "ZOHO_NOTIFY_TOKEN": "tok-1",
        }
        config = load_config_from_mapping(raw, base_dir=tmp_path, environ=env)
        adapter = build_adapter(config.providers["crm"])
        assert isinstance(adapter, ZohoAdapter)
        assert zoho.client_secret not in repr(vars(adapter))
        adapter.check()
        pages = list(adapter.read_contacts(Cursor()))
        assert sorted(r.remote_id for p in pages for r in p.records) == sorted(ids)
        assert len(pages) == 2
