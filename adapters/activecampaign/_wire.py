"""ActiveCampaign on the wire: the API root, error classification and per-contact refusals.

Facts: /work/shared/providers/activecampaign.md ("Base URL and auth", "Errors", "Rate limits").
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Final
from urllib.parse import urlsplit

import requests

from adapters.errors import ProviderError, RateLimited, RecordRejected, RetryableError

PROVIDER: Final = "activecampaign"
API_PATH: Final = "/api/3"
BULK_THROTTLE_WAIT_S: Final = 60.0  # bulk import allows 100 calls a minute, then answers 400 [SPEC]


def api_root(api_url: str, base_url: str | None = None) -> str:
    """``https://<account>.api-us1.com`` (as Settings -> Developer shows it) -> ``.../api/3``; base_url wins."""
    url = (base_url or api_url).strip().rstrip("/")
    if not urlsplit(url).scheme:
        raise ValueError("the ActiveCampaign api_url must be an http(s) URL")
    return url if url.endswith(API_PATH) else url + API_PATH


def body_of(response: requests.Response) -> Any:
    try:
        return json.loads(response.content or b"null")
    except ValueError:
        return None


class ContactRefused(RecordRejected):
    """A 4xx on a one-contact call, with AC's error ``code`` (never its title: it may hold the address)."""

    def __init__(self, message: str, *, code: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.code = code


def _call(response: requests.Response) -> tuple[str, str]:
    method = (response.request.method if response.request is not None else None) or "GET"
    return method, urlsplit(response.url).path


def classify(response: requests.Response) -> ProviderError | None:
    """AC's quirks before the shared table: 403 without a message is transient, 422 is per record,
    a bulk import refused with "Rate limit exceeded." is a 429 in all but status.
    """
    status = response.status_code
    if status < 400:
        return None
    method, path = _call(response)
    common: dict[str, Any] = {"provider": PROVIDER, "method": method, "path": path, "status": status}
    body = body_of(response)
    message = body.get("message") if isinstance(body, dict) else None
    if status == 403 and not message:
        # Sporadic bare 403s are retried by the Singer tap [TAP]; a refused token says so in "message".
        return RetryableError(f"{PROVIDER} {method} {path} -> 403 without a message (transient)", **common)
    if status == 400 and path.endswith("/import/bulk_import") and "rate limit" in str(message).lower():
        return RateLimited(
            f"{PROVIDER} {method} {path} -> 400 bulk import throttled", retry_after=BULK_THROTTLE_WAIT_S, **common
        )
    if status == 422 or (status == 404 and "/contacts/" in path and method != "GET"):
        errors = body.get("errors") if isinstance(body, dict) else None
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        code = str(first.get("code") or status)
        return ContactRefused(f"{PROVIDER} {method} {path} -> {status} {code}", code=code, **common)
    return None


def parse_time(text: str) -> dt.datetime:
    """``udate`` carries the account's offset (``-05:00``): normalise to aware UTC [pitfall 2]."""
    value = dt.datetime.fromisoformat(text.strip().replace(" ", "T").replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def format_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).replace(microsecond=0).isoformat()
