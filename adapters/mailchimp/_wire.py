"""Mailchimp on the wire: base URL, auth, error classification and per-member refusals.

Facts: /work/shared/providers/mailchimp.md ("Base URL", "Errors", "Rate limits").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import requests

from adapters._http import classify_response
from adapters.errors import ProviderError, RateLimited, RecordRejected

PROVIDER: Final = "mailchimp"
COMPLIANCE: Final = "Member In Compliance State"
FORGOTTEN: Final = "Forgotten Email Not Subscribed"
SUPPRESSED_TITLES: Final = frozenset({COMPLIANCE, FORGOTTEN})
WRITABLE_STATUSES: Final = frozenset({"subscribed", "unsubscribed", "cleaned", "pending", "transactional"})
OPTED_OUT: Final = frozenset({"unsubscribed", "cleaned"})


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: MD5 of the trimmed, lower-cased address, everywhere."""
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


def member_ref(member: Mapping[str, Any]) -> str:
    """The id crmsync links a member by: its ``contact_id``, which an address change keeps, where the server
    gives one; else the subscriber hash, which changes with the address (``upemail``: a new hash).
    """
    contact_id = member.get("contact_id")
    if isinstance(contact_id, str) and contact_id.strip():
        return contact_id.strip()
    return str(member.get("id") or subscriber_hash(str(member.get("email_address", ""))))


# A webhook hint for an address change names the member's new hash and, after this mark, the old one. The
# old address is the only thing that ties a link kept by the old hash (from before links were kept by
# contact_id) to the member: the member itself no longer answers to that hash, and nothing in the API maps an
# old hash to the member, so the hint carries it (a hash, never the address) to fetch_contacts.
MOVED_FROM: Final = "<"


def moved_hint(new_email: str, old_email: str | None) -> str:
    """The webhook hint for a member whose address changed: ``<new hash><<old hash>`` (just the new hash
    when the old address is unknown or the same).
    """
    new_hash = subscriber_hash(new_email)
    old_hash = subscriber_hash(old_email) if old_email and old_email.strip() else new_hash
    return new_hash if old_hash == new_hash else f"{new_hash}{MOVED_FROM}{old_hash}"


def split_hint(remote_id: str) -> tuple[str, str | None]:
    """A hint as (the id to fetch, the hash the member had before its address changed, if the hint names it)."""
    key, mark, was = remote_id.partition(MOVED_FROM)
    return key, (was if mark and was else None)


def data_centre(api_key: str) -> str:
    """``"<key>-us21"`` -> ``"us21"`` (the key's suffix names the account's data centre)."""
    key, sep, dc = api_key.strip().rpartition("-")
    if not sep or not key or not dc.isalnum():
        raise ValueError("the Mailchimp api_key has no data-centre suffix (expected '<key>-<dc>')")
    return dc


def api_root(api_key: str, base_url: str | None) -> str:
    """The API root: ``base_url`` when set (``/3.0`` added to a bare host), else the key's data centre."""
    if base_url:
        parts = urlsplit(base_url.strip())
        if parts.path in ("", "/"):
            return base_url.strip().rstrip("/") + "/3.0"
        return base_url.strip().rstrip("/")
    return f"https://{data_centre(api_key)}.api.mailchimp.com/3.0"


class MemberRefused(RecordRejected):
    """A 4xx on a single-member call, with Mailchimp's problem ``title`` (never its detail: it holds the address)."""

    def __init__(self, message: str, *, title: str, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.title = title

    @property
    def suppressed(self) -> bool:
        return self.title in SUPPRESSED_TITLES


def problem_title(response: requests.Response) -> str:
    if not response.content:
        return ""
    try:
        body = json.loads(response.content)
    except ValueError:
        return ""
    title = body.get("title") if isinstance(body, dict) else None
    return title if isinstance(title, str) else ""


def classify(response: requests.Response) -> ProviderError | None:
    """Mailchimp's quirks before the shared table: bodiless 403/429 throttle, 400 titles per member."""
    method = (response.request.method if response.request is not None else None) or "GET"
    path = urlsplit(response.url).path
    status = response.status_code
    if status in (403, 429) and not response.content.strip():
        # Throttling at high volume comes as a bare 403 or 429 [RL]: back off and retry.
        return RateLimited(
            f"{PROVIDER} {method} {path} -> {status} without a body (throttled)",
            provider=PROVIDER,
            method=method,
            path=path,
            status=status,
        )
    if status in (400, 404, 405) and response.request is not None and "/members/" in path:
        error = classify_response(response, provider=PROVIDER, method=method, path=path)
        return MemberRefused(
            str(error),
            title=problem_title(response) or str(status),
            provider=PROVIDER,
            method=method,
            path=path,
            status=status,
            request_id=getattr(error, "request_id", None),
        )
    return None


def refusal_code(text: str, code: str, *, field: str = "") -> tuple[str, bool, bool]:
    """A batch member error as (short code, retryable, suppressed); the text holds the address, so only
    fixed phrases are looked for and never echoed. An error that names a ``field`` (with its ``field_message``)
    is that member's data failing validation [SPEC]: sending it again gets the same answer.
    """
    lowered = text.lower()
    if "compliance state" in lowered:
        return COMPLIANCE, False, True
    if "permanently deleted" in lowered or "forgotten" in lowered:
        return FORGOTTEN, False, True
    if code == "ERROR_CONTACT_EXISTS" or "already a list member" in lowered:
        return "ERROR_CONTACT_EXISTS", False, False
    if "fake or invalid" in lowered or "valid email" in lowered:
        return "ERROR_GENERIC: invalid email address", False, False
    if "merge field" in lowered:
        return "ERROR_GENERIC: invalid merge fields", False, False
    if field:
        return f"{code or 'ERROR_GENERIC'}: invalid field", False, False
    return f"{code or 'ERROR_GENERIC'}: refused", True, False
