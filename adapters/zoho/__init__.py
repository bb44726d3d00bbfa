"""Zoho CRM: adapter, OAuth token manager, notifications and emulator.

``create_adapter(name, options)`` reads: client_id, client_secret, refresh_token, data_center (com, eu, in,
com.au, jp, ca, com.cn, sa; default com), base_url, accounts_url, rate_limit, notify_url, notify_token (at most 50
characters), extra_fields (custom API names to read), page_size (1..200), max_connections (concurrency, default 5)
and token_store (a TokenStore the engine passes).
"""

from adapters.zoho.adapter import ZohoAdapter, create_adapter
from adapters.zoho.auth import CachedToken, MemoryTokenStore, TokenStore

__all__ = ["CachedToken", "MemoryTokenStore", "TokenStore", "ZohoAdapter", "create_adapter"]
