"""OAuth access tokens kept in the state store, so threads, runs and daemon replicas share one token."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager

from adapters.zoho.auth import CachedToken
from state.store import Store


class StateTokenStore:
    """Satisfies the Zoho adapter's TokenStore: the token in ``crmsync_meta``, the refresh under a database lock."""

    def __init__(self, store: Store, key: str) -> None:
        self._store = store
        self._key = f"oauth:{key}"

    def load(self) -> CachedToken | None:
        raw = self._store.get_meta(self._key)
        if raw is None:
            return None
        data = json.loads(raw)
        return CachedToken(access_token=data["access_token"], expires_at=float(data["expires_at"]),
                           api_domain=data.get("api_domain"), lifetime_s=float(data.get("lifetime_s", 3600.0)))

    def save(self, token: CachedToken) -> None:
        self._store.set_meta(self._key, json.dumps({"access_token": token.access_token,
                                                    "expires_at": token.expires_at,
                                                    "api_domain": token.api_domain,
                                                    "lifetime_s": token.lifetime_s}))

    def lock(self) -> AbstractContextManager[None]:
        return self._store.named_lock(self._key)
