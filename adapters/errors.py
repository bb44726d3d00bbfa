"""Provider failures, filed by what the caller does next.

The tree (only the CLI turns a class into an exit code)::

    ProviderError            provider, method, path, status, request id; never a body
    + AuthError              401/403: never retried, exit 3
    + RetryableError         408, 5xx, timeouts, resets: retried in one place; once spent, exit 3
      + RateLimited          429 inside a window: has retry_after
    + QuotaExhausted         a daily / credit budget is spent: the provider's cycle stops, exit 3
    + RecordRejected         one record refused: a pending write, the run goes on, exit 1
    + FatalProviderError     any other 4xx: this provider stops and its cursor stays put
    + WebhookRejected        a webhook whose signature, token or timestamp is wrong: 401
"""

from __future__ import annotations

from typing import Final

# What reading a provider's answer raises when the answer is not what the adapter expects (malformed JSON, a
# missing field, a wrong type): the caller treats it as an unreadable answer from that provider, not a bug.
UNREADABLE_ANSWER: Final = (ValueError, TypeError, KeyError, AttributeError, IndexError)


class ProviderError(Exception):
    """A provider call failed. The message names the call, never a body, token or address."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        method: str = "",
        path: str = "",
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.method = method
        self.path = path
        self.status = status
        self.request_id = request_id


class AuthError(ProviderError):
    """The provider refused the credentials (401/403). Never retried."""


class RetryableError(ProviderError):
    """A transient failure (408, 5xx, timeout, reset). Retried by the one retry place."""


class RateLimited(RetryableError):
    """429 inside a rolling window; ``retry_after`` is the provider's advice in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class QuotaExhausted(ProviderError):
    """A daily or credit budget is spent: stop this provider's cycle, do not spin."""


class RecordRejected(ProviderError):
    """One record was refused; the rest of the batch and the run go on."""


class FatalProviderError(ProviderError):
    """Any other refusal: this provider stops for this run and its cursor stays put."""


class WebhookRejected(ProviderError):
    """A webhook failed verification (signature, token, stale timestamp): answer 401, store nothing."""
