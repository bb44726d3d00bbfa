"""The mapping machinery: tables, overrides, tag maps, normalisation, and the csv / jsonl file tables."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import pkgutil
from typing import Any

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mappings.providers
from mappings.contact import OPT_IN_AT, SCALAR_FIELDS, Consent, Contact, Lifecycle
from mappings.fieldmap import FieldMapping, ProviderTable
from mappings.mapper import (
    InvalidRecord,
    MappingError,
    ProviderMapping,
    UnknownProviderType,
    build_mapping,
    load_table,
)
from mappings.normalize import normalize_email, normalize_timestamp

# A table shaped like a CRM's: nested paths, a read-only computed field, conversions both ways.
NESTED = ProviderTable(
    provider_type="nested",
    fields=(
        FieldMapping(canonical="email", provider="properties.email", required=True),
        FieldMapping(canonical="first_name", provider="properties.firstname"),
        FieldMapping(canonical="phone", provider="properties.phone"),
        FieldMapping(canonical="company", provider="company.name"),
        FieldMapping(
            canonical="lifecycle",
            provider="properties.stage",
            inbound={"lead": "prospect", "customer": "customer", "evangelist": "vip"}.get,
            outbound={"prospect": "lead", "customer": "customer", "vip": "evangelist", "other": "other"}.__getitem__,
        ),
        FieldMapping(
            canonical="consent",
            provider="properties.optout",
            inbound=lambda v: Consent.UNSUBSCRIBED if v == "true" else Consent.SUBSCRIBED,
            outbound=lambda c: "true" if c in (Consent.UNSUBSCRIBED, Consent.CLEANED) else "false",
        ),
        FieldMapping(canonical="tags", provider="lists", inbound=lambda v: [x["name"] for x in v]),
        FieldMapping(canonical="job_title", provider="properties.title_computed", read_only=True),
    ),
    tags={"vip": "VIP List"},
)


def nested(**overrides: Any) -> ProviderMapping:
    return ProviderMapping(
        NESTED,
        field_overrides=overrides.pop("fields", {}),
        tag_overrides=overrides.pop("tags", {}),
        default_region=overrides.pop("default_region", None),
    )


def record(**properties: Any) -> dict[str, Any]:
    return {"properties": {"email": "Ann@Example.com", **properties}}


# --- loading and building --------------------------------------------------------------------------------


def test_unknown_provider_type_names_it() -> None:
    with pytest.raises(UnknownProviderType, match="'nosuchcrm'"):
        build_mapping("nosuchcrm")


@pytest.mark.parametrize("name", ["", "CSV", "csv.x", "../csv", "_private", "csv ", "mapper"])
def test_odd_provider_types_are_unknown_never_imported(name: str) -> None:
    with pytest.raises(UnknownProviderType):
        build_mapping(name)


def test_unknown_provider_type_is_a_value_error() -> None:
    assert issubclass(UnknownProviderType, ValueError)
    assert issubclass(MappingError, ValueError)


def provider_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(mappings.providers.__path__) if not m.name.startswith("_"))


@pytest.mark.parametrize("provider_type", provider_modules())
def test_every_provider_table_builds(provider_type: str) -> None:
    mapping = build_mapping(provider_type)
    assert load_table(provider_type).provider_type == provider_type
    assert "email" in mapping.carried_fields
    assert mapping.carried_fields <= {*SCALAR_FIELDS, "tags", "consent", OPT_IN_AT} | {
        f for f in mapping.carried_fields if f.startswith("custom.")
    }


def test_the_file_tables_are_there() -> None:
    assert {"csv", "jsonl"} <= set(provider_modules())


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"favourite_colour": "colour"}, "fields.favourite_colour: unknown canonical field"),
        ({"custom.": "x"}, "unknown canonical field"),
        ({"_opt_in_at": "x"}, "unknown canonical field"),
        ({"first_name": ""}, "fields.first_name: provider field must be a dotted name"),
        ({"first_name": "a..b"}, "dotted name"),
        ({"first_name": ".a"}, "dotted name"),
        ({"first_name": "properties.phone"}, "'first_name' and 'phone' write the same provider field"),
        ({"first_name": "properties"}, "write the same provider field"),
    ],
)
def test_bad_field_overrides_are_mapping_errors(fields: dict[str, str], match: str) -> None:
    with pytest.raises(MappingError, match=match):
        nested(fields=fields)


def test_override_naming_unknown_field_through_build_mapping() -> None:
    with pytest.raises(MappingError, match="nickname"):
        build_mapping("csv", field_overrides={"nickname": "Nick"})


def test_tag_map_must_be_one_to_one() -> None:
    with pytest.raises(MappingError, match="both map to provider tag 'VIP List'"):
        nested(tags={"gold": "VIP List"})
    with pytest.raises(MappingError, match="non-empty"):
        nested(tags={"gold": ""})


def test_unknown_default_region_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="default_region 'XX'"):
        build_mapping("csv", default_region="XX")


@pytest.mark.parametrize(
    ("table_fields", "match"),
    [
        ((FieldMapping(canonical="first_name", provider="fn"),), "does not map email"),
        (
            (FieldMapping(canonical="email", provider="e"), FieldMapping(canonical="email", provider="f")),
            "maps 'email' twice",
        ),
        ((FieldMapping(canonical="email", provider="e"), FieldMapping(canonical="nick", provider="n")), "'nick'"),
    ],
)
def test_broken_tables_are_mapping_errors(table_fields: tuple[FieldMapping, ...], match: str) -> None:
    with pytest.raises(MappingError, match=match):
        ProviderMapping(ProviderTable(provider_type="t", fields=table_fields), field_overrides={}, tag_overrides={})


def test_override_replaces_a_path_and_keeps_the_conversions() -> None:
    mapping = nested(fields={"lifecycle": "properties.lifecyclestage"})
    fields = mapping.to_canonical(record(lifecyclestage="evangelist", stage="lead"))
    assert fields["lifecycle"] == "vip"
    assert mapping.to_provider({"lifecycle": "prospect"}) == {"properties": {"lifecyclestage": "lead"}}


def test_override_of_a_read_only_field_makes_it_written() -> None:
    mapping = nested(fields={"job_title": "properties.jobtitle"})
    assert "job_title" in mapping.carried_fields
    assert mapping.to_provider({"job_title": "CTO"}) == {"properties": {"jobtitle": "CTO"}}


def test_override_adds_custom_and_missing_canonical_fields_as_text() -> None:
    mapping = nested(fields={"custom.score": "properties.score", "industry": "properties.industry"})
    fields = mapping.to_canonical(record(score=12, industry=" Retail "))
    assert fields["custom.score"] == "12"
    assert fields["industry"] == "Retail"
    assert {"custom.score", "industry"} <= mapping.carried_fields
    assert mapping.to_provider({"custom.score": "13"}) == {"properties": {"score": "13"}}


# --- to_canonical ----------------------------------------------------------------------------------------


def test_to_canonical_walks_paths_and_leaves_missing_ones_absent() -> None:
    fields = nested().to_canonical(record(firstname=" Ann "))
    assert fields == {"email": "ann@example.com", "first_name": "Ann"}


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_null_empty_and_blank_text_are_all_none(blank: Any) -> None:
    fields = nested().to_canonical({**record(firstname=blank), "company": {"name": blank}})
    assert fields["first_name"] is None
    assert fields["company"] is None


def test_path_through_a_non_object_is_missing() -> None:
    assert "company" not in nested().to_canonical({**record(), "company": "Acme"})


def test_blank_tags_and_consent_have_their_own_blank() -> None:
    table = load_table("jsonl")
    mapping = ProviderMapping(table, field_overrides={}, tag_overrides={})
    fields = mapping.to_canonical({"email": "ann@example.com", "tags": None, "consent": ""})
    assert fields["tags"] == frozenset()
    assert fields["consent"] is Consent.UNKNOWN


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({}, "nested: record has no email"),
        ({"properties": {}}, "record has no email"),
        ({"properties": {"email": ""}}, "blank email"),
        ({"properties": {"email": None}}, "blank email"),
    ],
)
def test_a_record_without_an_email_is_invalid(raw: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRecord, match=match):
        nested().to_canonical(raw)


@pytest.mark.parametrize("address", ["ann.lee@exa_mple.com", "ann.lee.example.com", "ann.lee@@example.com", "ann@x"])
def test_an_invalid_email_rejects_the_record_without_showing_it(address: str) -> None:
    with pytest.raises(InvalidRecord) as info:
        nested().to_canonical({"properties": {"email": address}})
    message = str(info.value)
    assert message.startswith("nested: email: not a valid address")
    assert address not in message
    assert "ann" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_email_is_normalised() -> None:
    fields = nested().to_canonical({"properties": {"email": "  José@Exämple.COM "}})
    assert fields["email"] == "josé@xn--exmple-cua.com"


def test_phone_goes_to_e164_with_the_default_region() -> None:
    assert nested(default_region="DE").to_canonical(record(phone="030 1234567"))["phone"] == "+49301234567"
    assert nested(default_region="de").to_canonical(record(phone="+1 202 555 0143"))["phone"] == "+12025550143"


def test_an_unreadable_phone_never_rejects_the_contact_and_never_blanks() -> None:
    for bad in ("030 1234567", "not a phone", "12"):  # no region for a national number: unreadable
        fields = nested().to_canonical(record(phone=bad, firstname="Ann"))
        assert "phone" not in fields
        assert fields["first_name"] == "Ann"
    assert nested().to_canonical(record(phone=""))["phone"] is None  # a real blank stays a blank


def test_lifecycle_is_a_lifecycle_value_or_absent() -> None:
    assert nested().to_canonical(record(stage="lead"))["lifecycle"] == "prospect"
    csv_mapping = build_mapping("csv")
    assert csv_mapping.to_canonical({"email": "a@example.com", "lifecycle": " VIP "})["lifecycle"] == "vip"
    assert "lifecycle" not in csv_mapping.to_canonical({"email": "a@example.com", "lifecycle": "gold"})
    assert csv_mapping.to_canonical({"email": "a@example.com", "lifecycle": ""})["lifecycle"] is None


def test_tags_go_through_the_tag_map_and_unmapped_ones_keep_their_name() -> None:
    raw = {**record(), "lists": [{"name": "VIP List"}, {"name": "Newsletter"}, {"name": " "}]}
    assert nested().to_canonical(raw)["tags"] == frozenset({"vip", "Newsletter"})
    overridden = nested(tags={"news": "Newsletter"})
    assert overridden.to_canonical(raw)["tags"] == frozenset({"vip", "news"})


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("subscribed", Consent.SUBSCRIBED),
        (" Unsubscribed ", Consent.UNSUBSCRIBED),
        ("CLEANED", Consent.CLEANED),
        ("pending", Consent.PENDING),
        ("opted-in", Consent.UNKNOWN),
        ("", Consent.UNKNOWN),
        (True, Consent.UNKNOWN),
    ],
)
def test_file_consent_is_the_canonical_word_and_garbage_is_unknown(word: Any, expected: Consent) -> None:
    fields = build_mapping("jsonl").to_canonical({"email": "a@example.com", "consent": word})
    assert fields["consent"] is expected


def test_opt_in_time_maps_to_the_meta_key_in_utc() -> None:
    mapping = build_mapping("csv")
    fields = mapping.to_canonical({"email": "a@example.com", "opt_in_at": "2024-05-01T12:00:00+02:00"})
    assert fields[OPT_IN_AT] == "2024-05-01T10:00:00+00:00"
    assert mapping.to_provider(fields)["opt_in_at"] == "2024-05-01T10:00:00+00:00"
    assert OPT_IN_AT not in mapping.to_canonical({"email": "a@example.com", "opt_in_at": "last week"})


def test_an_inbound_that_fails_rejects_the_record_without_the_value() -> None:
    table = ProviderTable(
        provider_type="strict",
        fields=(
            FieldMapping(canonical="email", provider="email", required=True),
            FieldMapping(
                canonical="consent", provider="status", inbound={"subscribed": Consent.SUBSCRIBED}.__getitem__
            ),
        ),
    )
    mapping = ProviderMapping(table, field_overrides={}, tag_overrides={})
    with pytest.raises(InvalidRecord, match=r"^strict: consent: value not understood \(KeyError\)$") as info:
        mapping.to_canonical({"email": "a@example.com", "status": "secret-status-value"})
    assert "secret-status-value" not in str(info.value)


def test_an_inbound_that_returns_none_gives_the_blank() -> None:
    fields = nested().to_canonical({**record(), "lists": [], "properties": {"email": "a@example.com", "stage": "x"}})
    assert fields["tags"] == frozenset()
    assert fields["lifecycle"] is None  # {..}.get("x") is None: the table says "no stage"


def test_non_text_in_a_text_field_rejects_the_record() -> None:
    with pytest.raises(InvalidRecord, match="^csv: first_name is not text$"):
        build_mapping("csv").to_canonical({"email": "a@example.com", "first_name": {"given": "Ann"}})


def test_numbers_and_booleans_are_spelled_as_text() -> None:
    fields = build_mapping("jsonl").to_canonical({"email": "a@example.com", "company": 42, "custom.flag": False})
    assert fields["company"] == "42"
    assert fields["custom.flag"] == "false"


def test_jsonl_reads_custom_fields_flat_and_nested_and_flat_wins() -> None:
    raw = {"email": "a@example.com", "custom": {"score": 12, "tier": "gold", "": "x"}, "custom.tier": "silver"}
    fields = build_mapping("jsonl").to_canonical(raw)
    assert fields == {"email": "a@example.com", "custom.score": "12", "custom.tier": "silver"}


def test_jsonl_writes_custom_fields_as_flat_keys_and_tags_as_a_sorted_array() -> None:
    out = build_mapping("jsonl").to_provider({"email": "a@example.com", "tags": frozenset({"b", "a"}), "custom.x": "1"})
    assert out == {"email": "a@example.com", "tags": ["a", "b"], "custom.x": "1"}


def test_custom_object_that_is_not_an_object_is_ignored_and_nested_non_text_is_rejected() -> None:
    mapping = build_mapping("jsonl")
    assert mapping.to_canonical({"email": "a@example.com", "custom": "x"}) == {"email": "a@example.com"}
    with pytest.raises(InvalidRecord, match="custom.score is not text"):
        mapping.to_canonical({"email": "a@example.com", "custom": {"score": [1, 2]}})


def test_csv_tags_split_on_semicolons() -> None:
    fields = build_mapping("csv").to_canonical({"email": "a@example.com", "tags": " a;b ;; c "})
    assert fields["tags"] == frozenset({"a", "b", "c"})


def test_csv_explicit_override_of_a_custom_field_wins_over_passthrough() -> None:
    mapping = build_mapping("csv", field_overrides={"custom.score": "Score"})
    # the CSV adapter hands rows over with canonical-case keys folded ("Score" -> "score"); writes keep "Score"
    fields = mapping.to_canonical({"email": "a@example.com", "score": "5", "custom.score": "9", "custom.x": "1"})
    assert fields["custom.score"] == "5"
    assert fields["custom.x"] == "1"
    assert mapping.to_provider(fields) == {"email": "a@example.com", "Score": "5", "custom.x": "1"}


# --- to_provider -----------------------------------------------------------------------------------------


def test_to_provider_builds_the_nested_shape_from_present_keys_only() -> None:
    out = nested().to_provider(
        {
            "email": "ann@example.com",
            "first_name": "Ann",
            "company": "Acme",
            "lifecycle": "vip",
            "consent": Consent.CLEANED,
            "tags": frozenset({"vip", "other"}),
            "job_title": "CTO",  # read only: never written
            "city": "Berlin",  # not carried
        }
    )
    assert out == {
        "properties": {"email": "ann@example.com", "firstname": "Ann", "stage": "evangelist", "optout": "true"},
        "company": {"name": "Acme"},
        "lists": ["VIP List", "other"],
    }


def test_blanks_go_out_as_none_without_outbound() -> None:
    out = nested().to_provider({"first_name": None, "lifecycle": None, "company": None})
    assert out == {"properties": {"firstname": None, "stage": None}, "company": {"name": None}}


def test_carried_fields_leave_out_read_only_fields() -> None:
    mapping = nested()
    assert mapping.carried_fields == {"email", "first_name", "phone", "company", "lifecycle", "consent", "tags"}
    assert not mapping.passthrough_custom
    assert not mapping.carries("custom.x")


def test_file_tables_carry_every_custom_field() -> None:
    mapping = build_mapping("csv")
    assert mapping.passthrough_custom
    assert mapping.carries("custom.anything")
    assert not mapping.carries("custom.")
    hub = {"email": "a@example.com", "custom.x": "1", "_opt_in_at": None, "unrelated": 1}
    assert mapping.project(hub) == {"email": "a@example.com", "custom.x": "1", "_opt_in_at": None}
    assert set(SCALAR_FIELDS) | {"tags", "consent", OPT_IN_AT} == mapping.carried_fields


def test_repr_shows_no_data() -> None:
    assert repr(nested()).startswith("ProviderMapping('nested'")


# --- properties: canonical -> provider -> file -> provider -> canonical is the identity ------------------

texts = (
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=12)
    .map(str.strip)
    .filter(bool)
)
tag_names = texts.filter(lambda t: ";" not in t and t not in ("VIP", "Gold Members"))
emails = st.builds(
    lambda local, domain: normalize_email(f"{local}@{domain}"),
    st.from_regex(r"[a-z0-9]([a-z0-9_+-]{0,10}[a-z0-9])?", fullmatch=True),
    st.sampled_from(["example.com", "exämple.com", "sub.example.org"]),
)
phones = st.sampled_from(["DE", "US", "GB", "FR", "JP"]).map(
    lambda r: phonenumbers.format_number(phonenumbers.example_number(r), phonenumbers.PhoneNumberFormat.E164)
)
opt_ins = st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: normalize_timestamp(d.isoformat()))
custom_names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=8)


@st.composite
def canonical_contacts(draw: st.DrawFn) -> dict[str, Any]:
    optional: dict[str, Any] = {
        name: st.none() | texts for name in SCALAR_FIELDS if name not in ("email", "phone", "lifecycle")
    }
    optional["phone"] = st.none() | phones
    optional["lifecycle"] = st.none() | st.sampled_from([str(v) for v in Lifecycle])
    optional["tags"] = st.frozensets(tag_names | st.sampled_from(["vip", "gold"]), max_size=4)
    optional["consent"] = st.sampled_from(list(Consent))
    optional[OPT_IN_AT] = st.none() | opt_ins
    fields = draw(st.fixed_dictionaries({"email": emails}, optional=optional))
    for name, value in draw(st.dictionaries(custom_names, st.none() | texts, max_size=3)).items():
        fields[f"custom.{name}"] = value
    return fields


def through_csv(row: dict[str, Any]) -> dict[str, Any]:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)
    buffer.seek(0)
    return next(csv.DictReader(buffer))


def through_jsonl(row: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(row, ensure_ascii=False))
    return loaded


CSV_WITH_TAG_MAP = build_mapping("csv", tag_overrides={"vip": "VIP", "gold": "Gold Members"}, default_region="US")


@settings(max_examples=150)
@given(fields=canonical_contacts())
@pytest.mark.parametrize(
    ("mapping", "serialise"),
    [
        (build_mapping("csv"), through_csv),
        (CSV_WITH_TAG_MAP, through_csv),
        (build_mapping("jsonl", tag_overrides={"vip": "VIP"}), through_jsonl),
    ],
    ids=["csv", "csv-tag-map", "jsonl"],
)
def test_canonical_to_file_and_back_is_the_identity(
    mapping: ProviderMapping, serialise: Any, fields: dict[str, Any]
) -> None:
    assert mapping.project(fields) == fields  # files carry every field
    assert mapping.to_canonical(serialise(mapping.to_provider(fields))) == fields


@given(fields=canonical_contacts())
def test_a_contact_survives_fields_to_contact_and_back_through_jsonl(fields: dict[str, Any]) -> None:
    mapping = build_mapping("jsonl")
    contact = Contact.from_fields(mapping.to_canonical(through_jsonl(mapping.to_provider(fields))))
    assert contact == Contact.from_fields(fields)


def test_skipped_fields_are_neither_read_nor_required():
    mapping = build_mapping("mailchimp")
    member = {"email_address": "Ann@Example.com", "status": "pending", "tags": [],
              "merge_fields": {"FNAME": "Ann", "PHONE": "not a phone"}}
    assert mapping.to_canonical(member, skip={"email", "first_name", "phone"}) == {
        "consent": Consent.PENDING, "tags": frozenset()}
    with pytest.raises(InvalidRecord):
        mapping.to_canonical({"status": "pending"})
    assert mapping.to_canonical({"status": "pending"}, skip={"email"}) == {"consent": Consent.PENDING}
