"""Zoho OAuth: the refresh-token grant, one refresh at a time, the access token shared through a TokenStore.

One refresh token may mint at most 10 access tokens per 10 minutes and every replica shares that budget
(https://zoho.com/accounts/protocol/oauth/web-apps/access-token-expiry.html), so the token is cached in a
store that threads and daemon replicas share, refreshed under the store's lock, and reused until it
nears expiry. A 401 refreshes once, and only if nobody refreshed in the meantime.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable
from urllib.parse import urlsplit

import requests

from adapters._http import Transport
from adapters.errors import AuthError, ProviderError, QuotaExhausted
from adapters.secret import Secret

log = logging.getLogger(__name__)

REFRESH_MARGIN_S: Final = 300.0  # refresh five minutes before expiry: a call in flight must not expire

# providers/zoho.md "Data centres": API domain and token URL per data centre (SDK dc/ classes).
DATA_CENTERS: Final = {
    "com": ("https://www.zohoapis.com", "https://accounts.zoho.com/oauth/v2/token"),
    "eu": ("https://www.zohoapis.eu", "https://accounts.zoho.eu/oauth/v2/token"),
    "in": ("https://www.zohoapis.in", "https://accounts.zoho.in/oauth/v2/token"),
    "com.au": ("https://www.zohoapis.com.au", "https://accounts.zoho.com.au/oauth/v2/token"),
    "jp": ("https://www.zohoapis.jp", "https://accounts.zoho.jp/oauth/v2/token"),
    "ca": ("https://www.zohoapis.ca", "https://accounts.zohocloud.ca/oauth/v2/token"),
    "com.cn": ("https://www.zohoapis.com.cn", "https://accounts.zoho.com.cn/oauth/v2/token"),
    "sa": ("https://www.zohoapis.sa", "https://accounts.zoho.sa/oauth/v2/token"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedToken:
    """An access token and when it expires (epoch seconds); the api_domain Zoho named with it."""

    access_token: str
    expires_at: float
    api_domain: str | None = None
    lifetime_s: float = 3600.0  # what expires_in said: a short-lived token gets a proportionally short margin

    def __repr__(self) -> str:
        return f"CachedToken(access_token='***', expires_at={self.expires_at!r}, api_domain={self.api_domain!r})"

    def fresh(self, now: float, margin_s: float = REFRESH_MARGIN_S) -> bool:
        """Still usable: not within ``margin_s`` (at most a tenth of its lifetime) of expiry."""
        return now < self.expires_at - min(margin_s, self.lifetime_s / 10)


@runtime_checkable
class TokenStore(Protocol):
    """Where the access token lives between calls, threads, runs and replicas.

    ``lock()`` is held around a refresh so that one refresh happens at a time across everyone sharing
    the store (the engine passes a state-backed store with a database lock; the default is in memory).
    """

    def load(self) -> CachedToken | None: ...

    def save(self, token: CachedToken) -> None: ...

    def lock(self) -> AbstractContextManager[None]: ...


class MemoryTokenStore:
    """The default store: one process, thread-safe."""

    def __init__(self) -> None:
        self._token: CachedToken | None = None
        self._data_lock = threading.Lock()
        self._refresh_lock = threading.Lock()

    def load(self) -> CachedToken | None:
        with self._data_lock:
            return self._token

    def save(self, token: CachedToken) -> None:
        with self._data_lock:
            self._token = token

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with self._refresh_lock:
            yield


def domain_allowed(api_domain: str, *, data_center: str, base_url: str | None) -> bool:
    """Whether a token answer's api_domain may receive our calls: the configured DC's hosts, or the override."""
    parts = urlsplit(api_domain)
    if base_url:
        wanted = urlsplit(base_url)
        return (parts.scheme, parts.netloc) == (wanted.scheme, wanted.netloc)
    default = urlsplit(DATA_CENTERS[data_center][0]).hostname or ""
    suffix = default.removeprefix("www.")  # "zohoapis.eu": www., sandbox. and developer. hosts of that DC
    host = parts.hostname or ""
    return parts.scheme == "https" and (host == suffix or host.endswith("." + suffix))


class TokenManager:
    """Hands out a valid access token; refreshes single-flight through the store's lock."""

    def __init__(
        self,
        *,
        accounts: Transport,
        client_id: str,
        client_secret: Secret,
        refresh_token: Secret,
        store: TokenStore | None = None,
        clock: Callable[[], float] = time.time,
        margin_s: float = REFRESH_MARGIN_S,
    ) -> None:
        self._accounts = accounts
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self.store: TokenStore = store if store is not None else MemoryTokenStore()
        self._clock = clock
        self._margin_s = margin_s
        self.refreshes = 0  # refresh grants this manager made (benchmarks: per hour of daemon run)

    def token(self) -> CachedToken:
        """A token that is not near expiry, from the store when it has one."""
        cached = self.store.load()
        if cached is not None and cached.fresh(self._clock(), self._margin_s):
            return cached
        return self._refresh_unless(lambda c: c.fresh(self._clock(), self._margin_s))

    def after_401(self, rejected: str) -> CachedToken:
        """The token ``rejected`` got a 401: refresh once, unless someone already replaced it."""
        return self._refresh_unless(lambda c: c.access_token != rejected and c.fresh(self._clock(), 0.0))

    def _refresh_unless(self, good: Callable[[CachedToken], bool]) -> CachedToken:
        with self.store.lock():
            cached = self.store.load()  # another thread or replica may have refreshed while we waited
            if cached is not None and good(cached):
                return cached
            token = self._grant()
            self.store.save(token)
            return token

    def _grant(self) -> CachedToken:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token.reveal(),
            "client_id": self._client_id,
            "client_secret": self._client_secret.reveal(),
        }
        started = self._clock()
        body = self._post(data=form)  # a form body, as the official SDK sends it (measured)
        if not body.get("access_token"):
            # Zoho's pages show the parameters in the query string; an accounts server that reads only
            # those refuses the body: ask once more that way before calling the credentials bad.
            body = self._post(params=form)
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise _grant_error(str(body.get("error") or "no access_token"), int(body.get("_status") or 200))
        self._accounts.add_secret(access)
        log.info("zoho: access token refreshed (expires in %s s)", body.get("expires_in"))
        domain = body.get("api_domain")
        lifetime = _lifetime_s(body)
        return CachedToken(
            access_token=access,
            expires_at=started + lifetime,
            api_domain=domain if isinstance(domain, str) else None,
            lifetime_s=lifetime,
        )

    def _post(self, **kwargs: Any) -> dict[str, Any]:
        """One token request; an ``{"error": ...}`` answer is returned, a spent budget raised."""
        try:
            response = self._accounts.request("POST", self._accounts.base_url, **kwargs)
        except GrantRefused as exc:
            return {"error": exc.code, "_status": exc.status}
        finally:
            self.refreshes += 1
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ProviderError(
                "zoho POST oauth/v2/token -> not JSON",
                provider="zoho",
                method="POST",
                path="/oauth/v2/token",
                status=response.status_code,
            )
        return body


def _lifetime_s(body: dict[str, Any]) -> float:
    """Seconds the token lives. Beside ``expires_in_sec``, Zoho's ``expires_in`` is in milliseconds (the official
    SDK reads it so: OAuthToken.get_token_expires_in in zohocrmsdk8-0); alone, it is in seconds.
    """
    for key, scale in (("expires_in_sec", 1.0), ("expires_in", 1000.0 if "expires_in_sec" in body else 1.0)):
        try:
            value = float(body.get(key) or 0) / scale
        except (TypeError, ValueError):
            continue
        if value > 0:
            return value
    return 3600.0


class GrantRefused(AuthError):
    """Zoho Accounts refused the refresh grant; ``code`` is its short error word (never a secret)."""

    def __init__(self, message: str, *, code: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.code = code


def _grant_error(code: str, status: int) -> ProviderError:
    common: dict[str, Any] = {"provider": "zoho", "method": "POST", "path": "/oauth/v2/token", "status": status}
    if code == "Access Denied":  # the 10-per-10-minutes refresh budget is spent (OAUTH)
        return QuotaExhausted("zoho POST oauth/v2/token -> refresh budget spent (Access Denied)", **common)
    return GrantRefused(f"zoho POST oauth/v2/token -> refused ({code[:40]})", code=code[:40], **common)


def classify_accounts(response: requests.Response) -> ProviderError | None:
    """Zoho Accounts answers a spent refresh budget with 400 ``{"error": "Access Denied"}``."""
    if response.status_code != 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return _grant_error(str(code), 400) if code else None
