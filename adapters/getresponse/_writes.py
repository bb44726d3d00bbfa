"""Writing one contact to GetResponse, which has no upsert and creates asynchronously.

The recipe (providers/getresponse.md "Upsert recipe"): find the contact by exact email in the campaign;
found -> ``POST /contacts/{id}`` (plus the additive custom-field call, so fields crmsync does not map
stay); not found -> ``POST /contacts``, which answers 202 with no id.

The 202 case: the result is ``ok=True, remote_id=None``; the engine keeps the link without an id, and
the next read (or fetch) brings the contact with its ``contactId`` and email, which resolves it. A
retried create never makes a duplicate: every create is preceded by the exact-match find, a create
whose answer was lost is not resent by the transport (``idempotent=False``), and GetResponse answers
409 code 1008 for an email that is already in the campaign *or still queued for it*; a 409 switches
to the find -> update path, or, while still queued, to the same ``ok=True, remote_id=None``.

Consent: ``fields["status"] == "unsubscribed"`` removes an existing contact from the campaign and never
creates one (``suppressed=True``). Unsubscribed and removed contacts are hidden from the find, and a
create would add them again, so creates are checked against the campaign's removed contacts (Search
Contacts type ``removed``, read at most once a minute) and refused as ``suppressed``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from adapters.base import WriteRequest, WriteResult
from adapters.errors import AuthError, RetryableError
from adapters.getresponse._wire import CODE_EXISTS, ContactRefused

OPT_OUT: Final = "unsubscribed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Body:
    """What one request asks for, in GetResponse's terms (ids resolved by the adapter)."""

    name: str | None  # None: leave the name alone
    tags: list[str] | None  # tag names; None: leave tags alone
    custom: dict[str, str | None]  # custom field name -> value (None: clear)
    opts_out: bool


def body_of(request: WriteRequest) -> Body:
    fields = request.fields
    parts = fields.get("nameParts")
    name = None
    if isinstance(parts, Mapping):
        words = [str(parts.get(k) or "").strip() for k in ("first", "last")]
        name = " ".join(w for w in words if w) or None
    elif isinstance(fields.get("name"), str):
        name = str(fields["name"]).strip() or None
    tags = fields.get("tags")
    custom = fields.get("customFields")
    return Body(
        name=name,
        tags=sorted(str(t) for t in tags) if isinstance(tags, list | tuple | set | frozenset) else None,
        custom={str(k): (None if v is None else str(v)) for k, v in custom.items()}
        if isinstance(custom, Mapping)
        else {},
        opts_out=fields.get("status") == OPT_OUT,
    )


def failed(request: WriteRequest, exc: Exception) -> WriteResult:
    """A per-record failure as a result; auth failures are the whole call's and are raised."""
    if isinstance(exc, AuthError):
        raise exc
    if isinstance(exc, ContactRefused):
        code = f" code {exc.code}" if exc.code is not None else ""
        return WriteResult(ref=request.ref, ok=False, error=f"{exc.status}{code}", retryable=exc.status == 404)
    if isinstance(exc, RetryableError):
        return WriteResult(ref=request.ref, ok=False, error=f"{exc.status or 'network'} retries spent", retryable=True)
    raise exc


def exists(exc: ContactRefused) -> bool:
    return exc.status == 409 and exc.code in (CODE_EXISTS, None)


def each(requests: list[WriteRequest], write: Callable[[WriteRequest], WriteResult]) -> Callable[[int], WriteResult]:
    def run(i: int) -> WriteResult:
        try:
            return write(requests[i])
        except (ContactRefused, RetryableError) as exc:
            return failed(requests[i], exc)

    return run


def values_of(custom: Mapping[str, str | None], ids: Mapping[str, str]) -> list[dict[str, Any]]:
    """``customFieldValues`` entries (arrays of strings) for the fields the account has."""
    return [
        {"customFieldId": ids[name], "value": [] if value is None else [value]}
        for name, value in sorted(custom.items())
        if name in ids
    ]
