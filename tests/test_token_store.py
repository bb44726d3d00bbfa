"""Zoho's access token lives in the state store: shared by threads and processes, refreshed once."""

from __future__ import annotations

import threading
import time

from adapters.zoho.auth import CachedToken
from connector.tokens import StateTokenStore
from state.store import Store


def test_the_token_survives_the_process_and_is_shared(state_url):
    first = Store(state_url)
    StateTokenStore(first, "zoho").save(CachedToken(access_token="tok-1", expires_at=time.time() + 3600,
                                                    api_domain="https://www.zohoapis.eu", lifetime_s=60.0))
    first.close()
    second = Store(state_url)
    token = StateTokenStore(second, "zoho").load()
    assert token is not None and token.access_token == "tok-1" and token.api_domain == "https://www.zohoapis.eu"
    assert token.lifetime_s == 60.0
    assert StateTokenStore(second, "other").load() is None
    second.close()


def test_the_lock_lets_one_refresher_in_at_a_time(state_url):
    stores = [Store(state_url) for _ in range(2)]  # two "replicas" on one database
    inside, most = 0, 0
    guard = threading.Lock()

    def refresh(store: Store) -> None:
        nonlocal inside, most
        with StateTokenStore(store, "zoho").lock():
            with guard:
                inside += 1
                most = max(most, inside)
            time.sleep(0.02)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=refresh, args=(stores[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert most == 1
    for store in stores:
        store.close()
