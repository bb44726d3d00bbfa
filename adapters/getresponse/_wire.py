"""GetResponse wire details shared by the adapter and the emulator: times, error envelopes, 429 waits.

Facts: /work/shared/providers/getresponse.md ("Errors", "Rate limits"). Errors come as
``{"httpStatus", "code", "codeDescription", "message", "moreInfo", "context", "uuid"}``; a 429 says when
the window resets in ``Retry-After``, ``context.timeToReset`` ("100 seconds") or ``X-RateLimit-Reset``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Final

import requests

from adapters._http import classify_response, parse_retry_after
from adapters.errors import FatalProviderError, ProviderError, RateLimited

PROVIDER: Final = "getresponse"
CODE_VALIDATION: Final = 1000  # 400: bad request / validation [OAS /contacts examples]
CODE_AUTH: Final = 1014  # 401
CODE_EXISTS: Final = 1008  # 409: the email is already in this campaign (or queued for it)
CODE_THROTTLED: Final = 1015  # 429
CODE_NOT_FOUND: Final = 1013  # 404 (unconfirmed code number)
_SECONDS: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:s|sec|secs|second|seconds)?\s*\Z", re.IGNORECASE)


class ContactRefused(FatalProviderError):
    """A 4xx about one contact (validation, exists, not found); ``code`` is GetResponse's error code."""

    def __init__(self, message: str, *, code: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.code = code


def format_time(when: dt.datetime) -> str:
    """GetResponse's own format: ``2026-03-01T09:00:00+0000`` (seconds, offset without a colon)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def parse_time(text: str) -> dt.datetime:
    """Read ``2026-03-01T09:00:00+0000`` (or any ISO 8601 with an offset) as aware UTC."""
    value = text.strip()
    if re.search(r"[+-]\d{4}\Z", value):
        value = value[:-2] + ":" + value[-2:]
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def parse_seconds(value: Any) -> float | None:
    """``"100 seconds"`` / ``"432"`` as seconds; None when unreadable."""
    if value is None:
        return None
    match = _SECONDS.match(str(value))
    return float(match[1]) if match else None


def error_body(status: int, code: int, message: str, context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The error envelope, as the emulator answers it."""
    return {
        "httpStatus": status,
        "code": code,
        "codeDescription": message,
        "message": message,
        "moreInfo": f"https://apidocs.getresponse.com/en/v3/errors/{code}",
        "context": dict(context or {}),
        "uuid": "00000000-0000-4000-8000-000000000000",
    }


def error_code(response: requests.Response) -> int | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return int(code) if isinstance(code, int) else None


def retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` ‖ ``context.timeToReset`` ‖ ``X-RateLimit-Reset`` (the fact sheet's conflict).

    The body comes before the header: ``X-RateLimit-Reset`` counts down the 10-minute window on every
    answer, while ``context.timeToReset`` belongs to the limit that was hit (80/s resets in a second).
    """
    wait = parse_retry_after(response.headers.get("Retry-After"))
    if wait is None:
        try:
            body = response.json()
        except ValueError:
            body = None
        context = body.get("context") if isinstance(body, dict) else None
        wait = parse_seconds(context.get("timeToReset")) if isinstance(context, dict) else None
    if wait is None:
        wait = parse_seconds(response.headers.get("X-RateLimit-Reset"))
    return wait


def classify(response: requests.Response) -> ProviderError | None:
    """The shared classification, with GetResponse's 429 wait and per-contact refusals kept apart."""
    request = response.request
    method = str(request.method or "GET") if request is not None else "GET"
    path = str(request.path_url or "") if request is not None else ""
    path = re.sub(r"^.*?/v3", "", path.split("?", 1)[0]) or path
    error = classify_response(response, provider=PROVIDER, method=method, path=path)
    if error is None:
        return None
    if isinstance(error, RateLimited):
        error.retry_after = retry_after(response)
        return error
    if type(error) is FatalProviderError and response.status_code in (400, 404, 409, 422):
        return ContactRefused(
            str(error),
            code=error_code(response),
            provider=PROVIDER,
            method=error.method,
            path=error.path,
            status=error.status,
            request_id=error.request_id,
        )
    return error
