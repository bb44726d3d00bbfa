"""The one HTTP transport: a pooled requests.Session, error classification and the one retry place.

Mailchimp, Zoho, ActiveCampaign and GetResponse send through ``Transport``; HubSpot keeps its SDK but
reuses ``retrying()`` and ``classify_status()``. Deciding is kept apart from acting: ``classify_*``
turn a status into an error from ``adapters/errors.py``; ``retrying()`` decides whether to go again.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import math
import re
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias
from urllib.parse import quote, quote_plus

import requests
import requests.auth
import tenacity
from requests.adapters import HTTPAdapter
from tenacity.wait import wait_exponential_jitter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from adapters.errors import (
    AuthError,
    FatalProviderError,
    ProviderError,
    RateLimited,
    RetryableError,
)
from adapters.ratelimit import RateLimiter
from adapters.secret import MASK

log = logging.getLogger(__name__)

TIMEOUT: Final = (5.0, 60.0)  # (connect, read) seconds, passed on every call: STYLE.md rule 7

# Headers that carry the provider's request id, for support tickets; looked up case-insensitively.
REQUEST_ID_HEADERS: Final = (
    "X-Request-Id",  # Mailchimp, ActiveCampaign
    "X-Hubspot-Correlation-Id",  # HubSpot
    "X-Zoho-Request-Id",
    "X-Correlation-Id",
)
_ZOHO_ID_HEADER: Final = re.compile(r"x-zoho-.*id", re.IGNORECASE)  # Zoho's id header name is undocumented
_URL_QUERY: Final = re.compile(r"(https?://[^\s'\"?]*)\?[^\s'\")>]*")
_ANY_QUERY: Final = re.compile(r"\?[^\s'\"]*")
# A path segment (or any other token) holding an address, raw or percent-encoded in any case: from one separator to
# the next around an "@" or "%40" ("/statuses/a%40example.com/unsubscribe-all" keeps "/statuses/***/unsubscribe-all").
# The look-behind starts a match only at a token's start, so a long token is scanned once, not once a character.
_SEPARATORS: Final = r"/?#&=\s'\"<>()\[\]{},;|"
_ADDRESS_TOKEN: Final = re.compile(
    rf"(?<![^{_SEPARATORS}])[^{_SEPARATORS}]*(?:@|%40)[^{_SEPARATORS}]*", re.IGNORECASE
)

Params: TypeAlias = Mapping[str, Any] | Sequence[tuple[str, Any]] | None


# -- secrets ---------------------------------------------------------------------------------
def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace each secret, and its URL-quoted forms, with ``***``."""
    forms = {form for secret in secrets if secret for form in _encodings(secret)}
    for form in sorted(forms, key=len, reverse=True):  # longest first: a quoted form may hold the plain one
        text = text.replace(form, MASK)
    return text


def _encodings(secret: str) -> tuple[str, ...]:
    return (secret, quote(secret, safe=""), quote(secret), quote_plus(secret))


# Mailchimp keys a member by the MD5 of its lower-cased address (its subscriber hash): a dictionary of addresses
# turns it back into one, so a member path shows neither ("/members/<hash>/tags" -> "/members/***/tags").
_MEMBER_HASH: Final = re.compile(r"(?<=/members/)[0-9a-f]{32}(?![0-9a-z])", re.IGNORECASE)


def redact_addresses(text: str) -> str:
    """Replace each token holding an address (``a@example.com``, ``a%40example.com``), and each Mailchimp
    subscriber hash in a member path, with ``***``.
    """
    if "/members/" in text:
        text = _MEMBER_HASH.sub(MASK, text)
    if "@" not in text and "%40" not in text.lower():
        return text
    return _ADDRESS_TOKEN.sub(MASK, text)


def safe_path(path: str) -> str:
    """A path fit for messages, logs and counters: no query, and ``***`` for a segment holding an address."""
    return redact_addresses(path.split("?", 1)[0])


def _safe_text(exc: BaseException, secrets: Iterable[str]) -> str:
    """A loggable description: our own errors as they are, others without URL queries, addresses or secrets."""
    if isinstance(exc, ProviderError):
        return redact(redact_addresses(f"{type(exc).__name__}: {exc}"), secrets)
    text = redact_addresses(_URL_QUERY.sub(r"\1?" + MASK, str(exc)))
    return redact(f"{type(exc).__name__}: {text}", secrets)


class _LibraryLogRedactor(logging.Filter):
    """urllib3 logs every URL at DEBUG (the HubSpot SDK's pool too), query and path included: strip queries,
    addresses and every live transport's secrets, in the message and in the traceback text of ``exc_info``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [secret for transport in tuple(_LIVE) for secret in transport.secrets]
        text = redact_addresses(_ANY_QUERY.sub("?" + MASK, record.getMessage()))
        record.msg, record.args = redact(text, secrets), ()
        if record.exc_info and not record.exc_text:  # formatters print exc_text when it is set
            record.exc_text = redact(redact_addresses(_TRACEBACKS.formatException(record.exc_info)), secrets)
        return True


_LIVE: weakref.WeakSet[Transport] = weakref.WeakSet()
_REDACTOR: Final = _LibraryLogRedactor()
_TRACEBACKS: Final = logging.Formatter()
# Libraries whose loggers write URLs: urllib3 (request lines, retries, redirects, header warnings) and requests.
LIBRARY_LOGGERS: Final = ("urllib3", "requests")


def install_log_redactor(*names: str) -> None:
    """Put the redactor on each named logger and on every logger below it that exists now.

    A logger's filters see only the records logged on that very logger, never those its children pass up, so
    each module's logger needs its own (``urllib3.connectionpool``, ``urllib3.util.retry``, ...). Handlers are
    left alone: they belong to whoever configured logging (the daemon, pytest, an embedding application).
    """
    for name in names:
        logging.getLogger(name).addFilter(_REDACTOR)  # addFilter adds a filter once
        for other in list(logging.Logger.manager.loggerDict):
            if other.startswith(f"{name}."):
                logging.getLogger(other).addFilter(_REDACTOR)


install_log_redactor(*LIBRARY_LOGGERS)


# -- classification --------------------------------------------------------------------------
def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def request_id(headers: Mapping[str, str]) -> str | None:
    """The provider's request / correlation id, when it sent one."""
    for name in REQUEST_ID_HEADERS:
        value = _header(headers, name)
        if value:
            return value
    return next((v for k, v in headers.items() if _ZOHO_ID_HEADER.fullmatch(k) and v), None)


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (RFC 9110: delay-seconds or an HTTP-date); None when absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max((when - (now or dt.datetime.now(dt.UTC))).total_seconds(), 0.0)


def describe_call(*, provider: str, method: str, path: str, outcome: str, request: str | None) -> str:
    """``"<provider> <METHOD> <path> -> <outcome> (request <id>)"``: names the call, never a body."""
    path = safe_path(path)
    suffix = f" (request {request})" if request else ""
    return f"{provider} {method.upper()} {path} -> {outcome}{suffix}"


def classify_status(
    status: int, headers: Mapping[str, str], *, provider: str, method: str, path: str
) -> ProviderError | None:
    """The error for a status (for SDKs that give a status and headers rather than a Response)."""
    if status < 400:
        return None
    rid = request_id(headers)
    message = describe_call(provider=provider, method=method, path=path, outcome=str(status), request=rid)
    common: dict[str, Any] = {
        "provider": provider,
        "method": method.upper(),
        "path": safe_path(path),
        "status": status,
        "request_id": rid,
    }
    if status in (401, 403):
        return AuthError(message, **common)
    if status == 429:
        return RateLimited(message, retry_after=parse_retry_after(_header(headers, "Retry-After")), **common)
    if status == 408 or status >= 500:
        return RetryableError(message, **common)
    return FatalProviderError(message, **common)


def classify_response(response: requests.Response, *, provider: str, method: str, path: str) -> ProviderError | None:
    """None for 2xx/3xx (207 and 304 included); else the error that says what to do next."""
    return classify_status(response.status_code, response.headers, provider=provider, method=method, path=path)


class ConnectFailed(RetryableError):
    """The connection was never made, so the request never reached the server: safe to resend."""


def _never_sent(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def translate_exception(exc: requests.RequestException, *, provider: str, method: str, path: str) -> ProviderError:
    """A requests exception as a ProviderError whose message holds no URL, query or secret."""
    kind = type(exc).__name__
    common: dict[str, Any] = {"provider": provider, "method": method.upper(), "path": safe_path(path)}
    outcome = f"timed out ({kind})" if isinstance(exc, requests.Timeout) else f"connection failed ({kind})"
    message = describe_call(provider=provider, method=method, path=path, outcome=outcome, request=None)
    if _never_sent(exc):
        return ConnectFailed(message, **common)
    transient = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    if isinstance(exc, transient):
        return RetryableError(message, **common)
    return FatalProviderError(  # a bad URL, too many redirects: retrying cannot help
        describe_call(provider=provider, method=method, path=path, outcome=f"failed ({kind})", request=None),
        **common,
    )


# -- retrying --------------------------------------------------------------------------------
class WaitRetryAfter(tenacity.wait.wait_base):
    """Wait what a 429 asked for (``RateLimited.retry_after``, capped at ``cap_s``), else the fallback."""

    def __init__(self, *, fallback: tenacity.wait.wait_base, cap_s: float = 300.0) -> None:
        self.fallback = fallback
        self.cap_s = cap_s

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.cap_s)
        return min(self.fallback(retry_state), self.cap_s)


class _stop_after_waiting(tenacity.stop.stop_base):
    """Stop when the next sleep would take the total waited beyond ``max_wait_s``."""

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return retry_state.idle_for + retry_state.upcoming_sleep > self.max_wait_s


def is_retryable(exc: BaseException) -> bool:
    """Worth another try when the call is idempotent (reads, upserts)."""
    return isinstance(exc, RetryableError | requests.ConnectionError | requests.Timeout)


def is_retryable_unsent(exc: BaseException) -> bool:
    """Worth another try even for a create: the server refused (429) or never saw the request."""
    if isinstance(exc, RateLimited | ConnectFailed):
        return True
    return isinstance(exc, requests.RequestException) and _never_sent(exc)


def retrying(
    *,
    attempts: int = 5,
    max_wait_s: float = 300.0,
    sleep: Callable[[float], None] = time.sleep,
    idempotent: bool = True,
    secrets: Sequence[str] = (),
) -> tenacity.Retrying:
    """The one retry policy: Retry-After first, else exponential backoff with jitter.

    Retries RetryableError (RateLimited included), requests.ConnectionError and requests.Timeout;
    with ``idempotent=False`` only what cannot have reached the server (429, refused connects).
    Stops after ``attempts`` tries or when the waits would add up to more than ``max_wait_s``.
    """
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_retryable if idempotent else is_retryable_unsent),
        wait=WaitRetryAfter(fallback=wait_exponential_jitter(initial=1, max=60), cap_s=max_wait_s),
        stop=tenacity.stop_after_attempt(attempts) | _stop_after_waiting(max_wait_s),
        before_sleep=_log_retry(tuple(secrets)),
        sleep=sleep,
        reraise=True,
    )


def _log_retry(secrets: tuple[str, ...]) -> Callable[[tenacity.RetryCallState], None]:
    def log_it(retry_state: tenacity.RetryCallState) -> None:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        what = _safe_text(exc, secrets) if exc is not None else "an unaccepted result"
        log.warning("retrying in %.3g s (attempt %d): %s", retry_state.upcoming_sleep, retry_state.attempt_number, what)

    return log_it


# -- the transport ---------------------------------------------------------------------------
@dataclass(slots=True)
class TransportStats:
    """Counters for benchmarks and ``status``: attempts sent, retries, 429s, calls per route."""

    calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    by_method_path: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_call(self, method: str, path: str) -> None:
        with self._lock:
            self.calls += 1
            self.by_method_path[f"{method.upper()} {safe_path(path)}"] += 1

    def count_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def count_rate_limited(self) -> None:
        with self._lock:
            self.rate_limited += 1


Classifier: TypeAlias = Callable[[requests.Response], ProviderError | None]


class Transport:
    """One provider connection: pooled session, concurrency cap, rate limiter, classification, retries.

    ``max_connections`` bounds both the connection pool and the requests in flight (Mailchimp allows
    10 simultaneous connections per user: https://mailchimp.com/developer/marketing/docs/fundamentals/).
    urllib3's own retries are off so that tenacity is the one retry place.
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        auth: requests.auth.AuthBase | None = None,
        limiter: RateLimiter | None = None,
        max_connections: int = 10,
        timeout: tuple[float, float] = TIMEOUT,
        secrets: Sequence[str] = (),
        classify: Classifier | None = None,
        attempts: int = 5,
        max_wait_s: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.stats = TransportStats()
        self._secrets = tuple(s for s in secrets if s)
        _LIVE.add(self)
        self._limiter = limiter
        self._classify = classify
        self._attempts = attempts
        self._max_wait_s = max_wait_s
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(max_connections)
        self._session = requests.Session()
        pool = HTTPAdapter(pool_connections=1, pool_maxsize=max_connections, max_retries=0)
        self._session.mount("http://", pool)
        self._session.mount("https://", pool)
        self._session.headers.update(headers or {})
        self._session.auth = auth

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def add_secret(self, secret: str) -> None:
        """Redact one more value (a refreshed access token) from messages and logs."""
        if secret:
            self._secrets = (*self._secrets, secret)

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> requests.Response:
        """Send one call with retries; the response when 2xx/3xx, else the classified ProviderError."""
        method = method.upper()
        retryer = retrying(
            attempts=self._attempts,
            max_wait_s=self._max_wait_s,
            sleep=self._sleep,
            idempotent=idempotent,
            secrets=self._secrets,
        )
        for attempt in retryer:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.stats.count_retry()
                response = self._send_once(method, path, params=params, json=json, data=data, headers=headers)
        return response

    def _send_once(
        self,
        method: str,
        path: str,
        *,
        params: Params,
        json: Any,
        data: Any,
        headers: Mapping[str, str] | None,
    ) -> requests.Response:
        with self._slots:  # a slot first: a call waiting for its turn must not hold a rate-limit slot
            if self._limiter is not None:
                self._limiter.acquire()
            self.stats.count_call(method, path)
            failure: ProviderError | None = None
            try:
                response = self._session.request(
                    method,
                    self.url(path),
                    params=params,
                    json=json,
                    data=data,
                    headers=headers,
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                failure = translate_exception(exc, provider=self.provider, method=method, path=path)
        if failure is not None:  # raised outside the except block: str(exc) holds the URL and its query
            raise self._redacted(failure)
        error = self._classify(response) if self._classify is not None else None
        if error is None:
            error = classify_response(response, provider=self.provider, method=method, path=path)
        if error is None:
            return response
        if response.status_code == 429 or isinstance(error, RateLimited):
            self.stats.count_rate_limited()
        response.close()
        raise self._redacted(error)

    def _redacted(self, error: ProviderError) -> ProviderError:
        """Secrets and addresses out of the message and path, whichever classifier built the error."""
        text = str(error)
        clean = redact(redact_addresses(text), self._secrets)
        if clean != text:
            error.args = (clean,)
        error.path = safe_path(redact(error.path, self._secrets))
        return error

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Transport({self.provider!r}, {redact(self.base_url, self._secrets)!r})"
