"""Email, phone and timestamp normalisation."""

from __future__ import annotations

import datetime as dt

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.normalize import (
    InvalidEmail,
    _split_validate,
    _validate,
    normalize_email,
    normalize_phone,
    normalize_timestamp,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ann@example.com", "ann@example.com"),
        ("  Ann.Lee@Example.COM \n", "ann.lee@example.com"),
        ("José@Exämple.COM", "josé@xn--exmple-cua.com"),
        ("bob@xn--exmple-cua.com", "bob@xn--exmple-cua.com"),
        ("BOB@EXÄMPLE.com", "bob@xn--exmple-cua.com"),
        ("first+tag@sub.example.co.uk", "first+tag@sub.example.co.uk"),
        ("用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v"),
    ],
)
def test_normalize_email(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "ann",
        "ann@",
        "@example.com",
        "ann@@example.com",
        "ann lee@example.com",
        "ann@example",
        "ann@localhost",
        "ann@exa_mple.com",
        '"ann"@example.com',
        "ann@[192.0.2.1]",
        "Ann Lee <ann@example.com>",
        "ann..lee@example.com",
        "ann@example..com",
        "ann@" + "a" * 64 + ".com",
    ],
)
def test_invalid_email_raises_without_the_address(raw: str) -> None:
    with pytest.raises(InvalidEmail) as info:
        normalize_email(raw)
    message = str(info.value)
    assert message == "empty" or message.startswith("not a valid address: ")
    if raw.strip():
        assert raw.strip() not in message
        assert raw.strip().lower() not in message
        local, _, domain = raw.strip().partition("@")
        for part in (local, domain):
            if len(part) >= 4:
                assert part not in message
                assert part.lower() not in message


def test_invalid_email_reason_drops_library_detail_that_quotes_the_domain() -> None:
    # IDNA errors embed the offending label in parentheses: that part must not survive
    with pytest.raises(InvalidEmail) as info:
        normalize_email("ann@exämple-\u200d.com")
    assert "exämple" not in str(info.value)
    assert "(" not in str(info.value)


def test_empty_email_says_empty() -> None:
    with pytest.raises(InvalidEmail, match="^empty$"):
        normalize_email(" \t ")


def test_invalid_email_is_a_value_error() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the subclass relation is the point
        normalize_email("nope")


local_parts = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,20}", fullmatch=True)
domains = st.sampled_from(["example.com", "Example.ORG", "exämple.com", "sub.example.co.uk", "XN--EXMPLE-CUA.COM"])


@given(local=local_parts, domain=domains, pad=st.sampled_from(["", " ", "\t", " \n"]))
def test_email_normalisation_is_idempotent_and_lower_case(local: str, domain: str, pad: str) -> None:
    raw = f"{pad}{local}@{domain}{pad}"
    try:
        once = normalize_email(raw)
    except InvalidEmail:
        return  # e.g. consecutive dots; invalidity is covered above
    assert normalize_email(once) == once
    assert once == once.strip().lower()
    assert once.isascii()


@given(st.emails())
def test_generated_valid_addresses_normalise_idempotently(address: str) -> None:
    try:
        once = normalize_email(address)
    except InvalidEmail:
        return  # hypothesis emails() may produce reserved or over-long domains
    assert normalize_email(once) == once
    assert normalize_email(address.upper()) == once or not address.isascii()


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_any_text_either_normalises_idempotently_or_raises_invalid_email(raw: str) -> None:
    try:
        once = normalize_email(raw)
    except InvalidEmail as exc:
        if "@" in raw and len(raw.strip()) >= 3:  # anything holding an "@" could be an address
            assert raw.strip() not in str(exc)
            assert raw.strip().lower() not in str(exc)
        return
    assert normalize_email(once) == once


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+49 30 1234567", None, "+49301234567"),
        ("030 1234567", "DE", "+49301234567"),
        ("(202) 555-0143", "US", "+12025550143"),
        ("+1 202-555-0143", "GB", "+12025550143"),
        ("020 7946 0018", "GB", "+442079460018"),
    ],
)
def test_normalize_phone(raw: str, region: str | None, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("", "DE"),
        ("   ", None),
        ("abc", "DE"),
        ("12", "US"),
        ("030 1234567", None),
        ("+99 123", None),
        ("030 1234567", "XX"),
        ("+1 555 0100 000000000000", None),
        ("9" * 300, "US"),
    ],
)
def test_bad_phone_is_none_never_an_error(raw: str, region: str | None) -> None:
    assert normalize_phone(raw, region) is None


@given(region=st.sampled_from(["DE", "US", "GB", "FR", "JP", "BR", "IN"]))
def test_example_numbers_round_trip_through_e164(region: str) -> None:
    number = phonenumbers.example_number(region)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    e164 = normalize_phone(national, region)
    assert e164 == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert normalize_phone(e164, None) == e164  # idempotent, whatever the region
    assert normalize_phone(e164, "US") == e164


@given(st.text(max_size=30), st.sampled_from([None, "DE", "US"]))
def test_phone_never_raises(raw: str, region: str | None) -> None:
    result = normalize_phone(raw, region)
    assert result is None or (result.startswith("+") and result[1:].isdigit())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00+00:00"),
        ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00+00:00"),
        ("2024-05-01 10:00", "2024-05-01T10:00:00+00:00"),
        ("2024-05-01T10:00:00.120Z", "2024-05-01T10:00:00.120000+00:00"),
        ("yesterday", None),
        ("", None),
        ("0001-01-01T00:00:00+01:00", None),
    ],
)
def test_normalize_timestamp(raw: str, expected: str | None) -> None:
    assert normalize_timestamp(raw) == expected


@given(st.datetimes(timezones=st.timezones()))
def test_timestamp_normalisation_is_idempotent(when: dt.datetime) -> None:
    text = when.isoformat()
    once = normalize_timestamp(text)
    if once is not None:
        assert normalize_timestamp(once) == once
        assert dt.datetime.fromisoformat(once) == dt.datetime.fromisoformat(text)  # the same instant


# The fast path validates the domain once per domain; it must accept exactly what the full validator does.
addresses = st.one_of(
    st.emails(),
    st.builds(lambda local, domain: f"{local}@{domain}", st.text(max_size=12), domains),
    st.builds(
        lambda local, domain: f"{local}@{domain}",
        st.from_regex(r"[a-zé.\"<> _+-]{1,70}", fullmatch=True),
        st.from_regex(r"[a-zä0-9.-]{1,190}\.(com|de|xn--p1ai)", fullmatch=True),
    ),
)


@settings(max_examples=500)
@given(addresses)
def test_the_split_fast_path_agrees_with_the_full_validator(address: str) -> None:
    text = address.strip().lower()
    full = _validate(text)  # a valid address makes its domain known to the fast path
    assert _split_validate(text) == (full if isinstance(full, str) else None)
    assert (normalize_email(address) if isinstance(full, str) else None) == (full if isinstance(full, str) else None)


def test_the_split_fast_path_respects_the_whole_length_limit() -> None:
    local, domain = "a" * 64, ".".join(["b" * 60] * 3 + ["ccc"]) + ".com"  # each part valid; together 255 octets
    text = f"{local}@{domain}"
    assert len(text) > 254
    assert isinstance(_validate(f"ann@{domain}"), str)  # the domain is known and valid
    assert _split_validate(text) is None
    with pytest.raises(InvalidEmail, match="too long"):
        normalize_email(text)
