"""The official hubspot-api-client, wrapped: host from base_url, a timeout on every call, its retry off.

providers/hubspot.md "Client library": extra ``HubSpot(...)`` kwargs are set on every generated
Configuration (``host=`` redirects them all); urllib3's own ``Retry`` is switched off so that
``adapters._http.retrying()`` is the one retry place; the API objects are built once and reused (each
access builds a new pool). Calls use ``_preload_content=False`` so the record JSON stays HubSpot's own.
Exceptions are per SDK package, so they are recognised by shape, and urllib3 errors are classified like
any other transport error. Messages name the call and HubSpot's error code, never a body or a token.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

from hubspot import HubSpot
from urllib3.exceptions import ConnectTimeoutError, HTTPError, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

from adapters._http import (
    TIMEOUT,
    ConnectFailed,
    describe_call,
    install_log_redactor,
    parse_retry_after,
    request_id,
    retrying,
)
from adapters.errors import (
    AuthError,
    FatalProviderError,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RecordRejected,
    RetryableError,
)
from adapters.ratelimit import RateLimiter

PROVIDER: Final = "hubspot"
DEFAULT_BASE_URL: Final = "https://api.hubapi.com"
# https://developers.hubspot.com/docs/api/usage-details: 100 requests / 10 s for the lowest tier.
DEFAULT_RATE_LIMIT: Final = "100/10s"
SEARCH_RATE: Final = "5/1s"  # https://developers.hubspot.com/docs/api-reference/search/guide: 5 a second
# Arrivals at HubSpot jitter by a few ms against our clock: keep each window a little wider than theirs.
WINDOW_MARGIN: Final = 1.05
_EXISTING_ID: Final = re.compile(r"Existing ID:\s*(\d+)")
# "contact HubSpot" [ERR]; 501 Not Implemented: the server does not serve the call, so another try cannot help
_NOT_RETRYABLE_5XX: Final = frozenset({501, 522, 525, 526})
TEN_SECONDLY_WAIT_S: Final = 10.0  # policyName TEN_SECONDLY_ROLLING: the burst window [USAGE]


class DuplicateContact(RecordRejected):
    """409 ``Contact already exists. Existing ID: <id>``: the address belongs to ``existing_id``."""

    def __init__(self, message: str, *, existing_id: str | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.existing_id = existing_id


class NotFound(FatalProviderError):
    """404: the record (or, on an older portal, the endpoint) is not there.

    ``names_record``: HubSpot's JSON error says so of the record asked for (category OBJECT_NOT_FOUND [ERR], or the
    record's key in its message or context). A bare 404, or one naming nothing, may be a route the portal lacks.
    """

    def __init__(self, message: str, *, names_record: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.names_record = names_record


class BadRequest(FatalProviderError):
    """400: HubSpot refused the input; ``codes`` are its error names (PROPERTY_DOESNT_EXIST, ...).

    ``properties`` names the properties refused as unknown or read-only (names, never values).
    """

    def __init__(
        self, message: str, *, codes: tuple[str, ...] = (), properties: tuple[str, ...] = (), **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.codes = codes
        self.properties = properties


def error_codes(body: Mapping[str, Any]) -> tuple[str, ...]:
    """HubSpot's error names from a body: ``errors[].code`` and the JSON inside "Property values were not valid"."""
    codes = [str(e.get("code")) for e in body.get("errors") or () if isinstance(e, Mapping) and e.get("code")]
    message = str(body.get("message") or "")
    if "[" in message:
        try:
            inner = json.loads(message[message.index("[") :])
        except ValueError:
            inner = []
        codes += [str(i.get("error")) for i in inner if isinstance(i, Mapping) and i.get("error")]
    return tuple(dict.fromkeys(codes))


PROPERTY_CODES: Final = frozenset({"PROPERTY_DOESNT_EXIST", "READ_ONLY_VALUE"})


def refused_properties(body: Mapping[str, Any]) -> tuple[str, ...]:
    """Names of properties a 400 calls unknown or read-only: ``errors[].context.propertyName`` and the inner JSON."""
    names: list[str] = []
    for error in body.get("errors") or ():
        if isinstance(error, Mapping) and error.get("code") in PROPERTY_CODES:
            names += [str(n) for n in (error.get("context") or {}).get("propertyName") or ()]
    message = str(body.get("message") or "")
    if "[" in message:
        try:
            inner = json.loads(message[message.index("[") :])
        except ValueError:
            inner = []
        names += [
            str(i["name"])
            for i in inner
            if isinstance(i, Mapping) and i.get("error") in PROPERTY_CODES and i.get("name")
        ]
    return tuple(dict.fromkeys(names))


def _body(raw: Any) -> dict[str, Any]:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _names_record(body: Mapping[str, Any], subject: str | None) -> bool:
    """Whether an error body is about the record asked for: OBJECT_NOT_FOUND, or its key in what the error says."""
    if str(body.get("category") or "").strip().upper() == "OBJECT_NOT_FOUND":
        return True
    key = (subject or "").strip().lower()
    said = " ".join(str(body.get(name) or "") for name in ("message", "context", "errors")).lower()
    return bool(key) and (key in said or quote(key, safe="") in said)


def classify(
    status: int,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
    *,
    method: str,
    path: str,
    subject: str | None = None,
) -> ProviderError:
    """The error for one HubSpot answer (providers/hubspot.md "Errors" table); ``subject``: the record in the path."""
    rid = request_id(headers)
    codes = error_codes(body)
    outcome = f"{status} {body.get('category') or ''} {' '.join(codes)}".strip()
    common: dict[str, Any] = {"provider": PROVIDER, "method": method, "path": path, "status": status, "request_id": rid}
    message = describe_call(provider=PROVIDER, method=method, path=path, outcome=outcome, request=rid)
    if status == 429:
        return _rate_limited(headers, body, message, common)
    if status in (401, 403):
        return AuthError(message, **common)
    if status == 409:
        found = _EXISTING_ID.search(str(body.get("message") or ""))
        return DuplicateContact(message, existing_id=found[1] if found else None, **common)
    if status == 404:
        return NotFound(message, names_record=_names_record(body, subject), **common)
    if status in (423, 477):  # locked during a sync / migrating: wait as told (at least 2 s) [ERR]
        wait = parse_retry_after(_header(headers, "Retry-After"))
        return RateLimited(message, retry_after=max(wait or 0.0, 2.0), **common)
    if status == 408 or (status >= 500 and status not in _NOT_RETRYABLE_5XX):
        return RetryableError(message, **common)
    if status == 400:
        return BadRequest(message, codes=codes, properties=refused_properties(body), **common)
    return FatalProviderError(message, **common)


def _rate_limited(
    headers: Mapping[str, str], body: Mapping[str, Any], message: str, common: dict[str, Any]
) -> ProviderError:
    policy = str(body.get("policyName") or "").strip().upper()
    said = str(body.get("message") or "").lower()  # "You have reached your <policy> limit." [USAGE]
    if policy == "DAILY" or (not policy and "daily limit" in said):
        # the day's budget is spent: stop this provider's cycle, do not spin [USAGE]
        return QuotaExhausted(message + " (daily API limit reached)", **common)
    wait = parse_retry_after(_header(headers, "Retry-After"))
    if wait is None:
        interval = _header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
        wait = int(interval) / 1000 if interval and interval.strip().isdigit() else None
    if wait is None:  # no header says: the window the policy names (a rolling 10 s one clears within 10 s)
        rolling = policy == "TEN_SECONDLY_ROLLING" or (not policy and "ten_secondly" in said)
        wait = TEN_SECONDLY_WAIT_S if rolling else 1.0
    return RateLimited(message, retry_after=wait, **common)


def _translate(exc: Exception, *, method: str, path: str, subject: str | None = None) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    common: dict[str, Any] = {"provider": PROVIDER, "method": method, "path": path}
    if isinstance(exc, HTTPError):
        reason = exc.reason if isinstance(exc, MaxRetryError) else exc
        kind = type(reason).__name__
        message = describe_call(provider=PROVIDER, method=method, path=path, outcome=f"failed ({kind})", request=None)
        if isinstance(reason, NewConnectionError | ConnectTimeoutError):
            return ConnectFailed(message, **common)
        return RetryableError(message, **common)
    status = getattr(exc, "status", None)
    if type(exc).__module__.startswith("hubspot.") and isinstance(status, int):
        if status == 0:  # the SDK's wrapper for an SSL failure
            return FatalProviderError(
                describe_call(provider=PROVIDER, method=method, path=path, outcome="TLS failed", request=None), **common
            )
        headers = dict(getattr(exc, "headers", None) or {})
        body = _body(getattr(exc, "body", None))
        return classify(status, headers, body, method=method, path=path, subject=subject)
    raise exc


class HubSpotClient:
    """One portal connection: cached SDK APIs, the rate limiters, retries, and call counters."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        limiter: RateLimiter,
        search_limiter: RateLimiter,
        timeout: tuple[float, float] = TIMEOUT,
        attempts: int = 5,
        max_wait_s: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = base_url.rstrip("/")
        sdk = HubSpot(
            access_token=token, host=base, base_url=base, retry=Retry(total=0, redirect=0, raise_on_status=False)
        )
        self.basic = sdk.crm.contacts.basic_api
        self.batch = sdk.crm.contacts.batch_api
        self.search_api = sdk.crm.contacts.search_api
        self.status_api = sdk.communication_preferences.status_api
        self.definition_api = sdk.communication_preferences.definition_api
        install_log_redactor("hubspot")  # the SDK's rest loggers, imported just now, log bodies at DEBUG
        self._limiter = limiter
        self._search_limiter = search_limiter
        self._timeout = timeout
        self._attempts = attempts
        self._max_wait_s = max_wait_s
        self._sleep = sleep
        self.calls: Counter[str] = Counter()
        self.server_time: dt.datetime | None = None  # HubSpot's clock at the last answer (its Date header)
        self._lock = threading.Lock()

    def call(
        self,
        method: str,
        path: str,
        fn: Callable[..., Any],
        *args: Any,
        search: bool = False,
        idempotent: bool = True,
        subject: str | None = None,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        """One SDK call with the limiter, a timeout and the one retry policy: (status, parsed JSON).

        ``subject`` is the record the path names (an address in the path), so that a 404 can tell whether it is
        about that record or about the route (``NotFound.names_record``).
        """
        limiter = self._search_limiter if search else self._limiter
        for attempt in retrying(
            attempts=self._attempts, max_wait_s=self._max_wait_s, sleep=self._sleep, idempotent=idempotent
        ):
            with attempt:
                limiter.acquire()
                with self._lock:
                    self.calls[f"{method} {path}"] += 1
                try:
                    response = fn(*args, _request_timeout=self._timeout, _preload_content=False, **kwargs)
                except Exception as exc:  # every SDK and urllib3 failure is classified here
                    raise _translate(exc, method=method, path=path, subject=subject) from None
                self.server_time = _http_date(response.headers.get("Date")) or self.server_time
                data = response.data
                return response.status, (json.loads(data) if data else None)
        raise AssertionError("unreachable: retrying() reraises")  # pragma: no cover

    def raw(
        self,
        method: str,
        path: str,
        *,
        path_params: Mapping[str, str] | None = None,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
    ) -> tuple[int, Any]:
        """A path the SDK has no method for (communication preferences v4), through the same ApiClient."""
        api_client = self.basic.api_client
        headers = {"Accept": "application/json", "Content-Type": "application/json"}

        def send(**kwargs: Any) -> Any:
            return api_client.call_api(
                path,
                method,
                path_params=dict(path_params or {}),
                query_params=list(query),
                header_params=headers,
                body=body,
                auth_settings=["oauth2"],
                **kwargs,
            )

        subject = next(iter((path_params or {}).values()), None)
        return self.call(method, path, send, subject=subject)


def _http_date(value: str | None) -> dt.datetime | None:
    """HubSpot's clock from a ``Date`` header (aware UTC), or None."""
    if not value:
        return None
    try:
        stamp = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return stamp.astimezone(dt.UTC) if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
