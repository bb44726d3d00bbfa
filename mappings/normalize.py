"""Normalisation of identity and contact values: email addresses, phone numbers, opt-in timestamps.

These sit on the hot path (every field of every contact of every cycle), so each is cached with a bound:
the same addresses come back cycle after cycle, and one validation costs far more than a cache hit.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Final

import email_validator
import phonenumbers

EMAIL_CACHE_SIZE: Final = 1 << 17  # ~130k addresses, ~40 MB at most; a hit is ~0.1 µs, a miss ~15 µs
PHONE_CACHE_SIZE: Final = 1 << 15
_ELLIPSIS: Final = "…"


class InvalidEmail(ValueError):
    """An address that cannot be an identity; the message says why and never holds the address."""


@dataclass(frozen=True, slots=True)
class _Rejected:
    reason: str


def normalize_email(raw: str) -> str:
    """Trimmed, whole address lower-cased, domain in IDNA ASCII form; SMTPUTF8 local parts allowed."""
    if not isinstance(raw, str):
        raise InvalidEmail("not text")
    result = _normalize_email(raw)
    if isinstance(result, _Rejected):
        raise InvalidEmail(result.reason)
    return result


@functools.lru_cache(maxsize=EMAIL_CACHE_SIZE)
def _normalize_email(raw: str) -> str | _Rejected:
    # Lower-case before validating: the validator NFC-normalises the local part, so the result is both
    # lower-case and NFC, and normalising it again changes nothing (n(n(x)) == n(x)).
    text = raw.strip().lower()
    if not text:
        return _Rejected("empty")
    try:
        valid = email_validator.validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except email_validator.EmailNotValidError as exc:
        return _Rejected("not a valid address: " + _scrub(str(exc), text))
    return f"{valid.local_part.lower()}@{valid.ascii_domain.lower()}"


def _scrub(message: str, address: str) -> str:
    """The validator's reason without any part of the address (its parenthesised details quote labels)."""
    reason = message.split(" (", 1)[0].rstrip(" .:") or "rejected"
    while len(address) >= 3 and address in reason:  # each pass shortens the text, so this ends
        reason = reason.replace(address, _ELLIPSIS)
    return reason


@functools.lru_cache(maxsize=PHONE_CACHE_SIZE)
def normalize_phone(raw: str, default_region: str | None) -> str | None:
    """E.164 form, or None for a number that cannot be parsed or is not valid (never an error)."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def is_phone_region(region: str) -> bool:
    """Whether a two-letter region code is one phonenumbers knows (for validating configuration)."""
    return region in phonenumbers.SUPPORTED_REGIONS


def normalize_timestamp(raw: str) -> str | None:
    """ISO 8601 in UTC (``2024-05-01T10:00:00+00:00``); a time without an offset is read as UTC."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.astimezone(dt.UTC).isoformat()
    except (ValueError, OverflowError):  # not ISO 8601, or shifted past year 1 / 9999 by its offset
        return None
