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
import email_validator.syntax
import phonenumbers

# Small bounds on purpose: a cycle touches each address once or twice (pull, then push), so a big cache
# buys little and makes memory grow with the list; the domain cache is the one that pays.
EMAIL_CACHE_SIZE: Final = 1 << 13
DOMAIN_CACHE_SIZE: Final = 1 << 15
PHONE_CACHE_SIZE: Final = 1 << 12
EMAIL_MAX_OCTETS: Final = 254  # RFC 3696 errata 1690 / RFC 5321 4.5.3.1.3, as email-validator counts it
_PLAIN_LOCAL: Final = frozenset('"\\()<>[]:; ,@')  # any of these in a local part: the full path
_DOMAINS: dict[str, tuple[str, str]] = {}  # valid email domain as written -> (Unicode form, IDNA ASCII form)
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
    return _split_validate(text) or _validate(text)


def _validate(text: str) -> str | _Rejected:
    """The whole address through email-validator: the authority, and the one that gives the reason."""
    try:
        valid = email_validator.validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except email_validator.EmailNotValidError as exc:
        return _Rejected("not a valid address: " + _scrub(str(exc), text))
    ascii_domain = valid.ascii_domain.lower()
    # A valid address has exactly one "@" (no quoted local part, no display name): remember its domain.
    if len(_DOMAINS) >= DOMAIN_CACHE_SIZE:
        _DOMAINS.clear()  # a crude bound, and enough: the common domains come straight back
    _DOMAINS[text.rpartition("@")[2]] = (valid.domain, ascii_domain)
    return f"{valid.local_part.lower()}@{ascii_domain}"


def _split_validate(text: str) -> str | None:
    """The fast path, for an address whose domain was seen valid before: only the local part is checked.

    email-validator checks the local part and the domain independently and then the whole length
    (``validate_email_length``), so validating ``<local>@a.co``, knowing the domain valid, and checking
    the same three lengths accepts exactly what it accepts. Anything else returns None (the full path).
    """
    local, at, domain = text.rpartition("@")
    known = _DOMAINS.get(domain) if at and local else None
    if known is None:
        return None
    if not _PLAIN_LOCAL.isdisjoint(local):
        return None  # quoting, comments, display names: only the full validator splits those right
    try:
        # The same local-part check validate_email() runs after splitting, without its per-call set-up
        # (an order of magnitude cheaper). email-validator is pinned below 3, where this lives.
        local = email_validator.syntax.validate_email_local_part(
            local, allow_smtputf8=True, allow_empty_local=False, quoted_local_part=False
        )["local_part"]
    except email_validator.EmailNotValidError:
        return None
    unicode_domain, ascii_domain = known
    for form in (text, f"{local}@{unicode_domain}", f"{local}@{ascii_domain}"):
        if len(form.encode()) > EMAIL_MAX_OCTETS:
            return None
    return f"{local.lower()}@{ascii_domain}"


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
    # "Possible" (a plausible length for the country), not "valid" (a range the metadata knows): a new
    # number range must not make crmsync drop a number a person typed, and the check is twice as cheap.
    if not phonenumbers.is_possible_number(number):
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
