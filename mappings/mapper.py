"""Applies a provider's mapping table: raw provider record <-> canonical fields, with overrides and tag maps.

Rules the machinery keeps, so that tables and their ``inbound``/``outbound`` functions stay small:

- A path that is missing from the record leaves the canonical key absent (the source says nothing).
- ``null``, ``""`` and blank text are blank: ``None`` for text fields, ``frozenset()`` for ``tags``,
  ``Consent.UNKNOWN`` for ``consent`` (SPEC promise 6). ``inbound``/``outbound`` never see a blank.
- ``email`` is normalised and, when required, a record without a valid one raises ``InvalidRecord``.
- A value that is present but cannot be understood (a phone that is not a valid number, a lifecycle
  outside ``Lifecycle``, an opt-in time that is not ISO 8601) leaves the key absent: it is neither a
  value nor a deliberate blank, so it must not clear a good value elsewhere.
- ``tags``: ``inbound`` yields provider tag names, the tag map turns them into canonical names
  (unmapped ones keep their name); writes go the other way before ``outbound``.
- Writes include blanks as ``None``: the adapter decides how its provider spells "clear".
- ``[mapping.<name>.fields]`` re-points a canonical field (keeping its conversions, dropping
  ``read_only``) or adds a plain text one; ``[mapping.<name>.tags]`` extends the table's tag map.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from mappings.contact import CUSTOM_PREFIX, META_KEYS, SCALAR_FIELDS, Consent, Lifecycle
from mappings.fieldmap import FieldMapping, ProviderTable
from mappings.normalize import (
    InvalidEmail,
    is_phone_region,
    normalize_email,
    normalize_phone,
    normalize_timestamp,
)

_MISSING: Final = object()  # the path is not in the record
_ABSENT: Final = object()  # present, but not understood: leave the canonical key out
_LIFECYCLES: Final = frozenset(str(v) for v in Lifecycle)
_CONSENTS: Final = {str(v): v for v in Consent}
_SET_FIELDS: Final = ("tags", "consent")
_SPECIAL: Final = frozenset(("email", "phone", "lifecycle", "tags", "consent", *META_KEYS))  # not plain text
_PROVIDER_TYPE_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


class MappingError(ValueError):
    """A mapping table or a ``[mapping.<name>]`` override that cannot work (a configuration error)."""


class UnknownProviderType(MappingError):
    """No ``mappings.providers.<type>`` module defines a TABLE."""


class InvalidRecord(ValueError):
    """One provider record cannot become a contact; the message names the field, never its value."""


class _NotUnderstood(Exception):
    """A table's ``inbound`` or the text reader could not make sense of a present value."""


@dataclass(frozen=True, slots=True)
class _Field:
    canonical: str
    path: tuple[str, ...]
    key: str | None  # the path when it is one key (the common case, read without a walk)
    plain: bool  # plain text, no inbound: the stripped string is the canonical value
    read: Callable[[Any], Any]  # non-blank provider value -> canonical value (or _ABSENT)
    blank: Any  # canonical value for null / "" / whitespace
    write: Callable[[Any], Any] | None  # non-None canonical value -> provider value; None: read only
    required: bool


@dataclass(frozen=True, slots=True)
class _Write:
    canonical: str
    path: tuple[str, ...]
    key: str | None  # the path when it is one key
    write: Callable[[Any], Any] | None  # None: the value goes out as it is


def build_mapping(
    provider_type: str,
    *,
    field_overrides: Mapping[str, str] | None = None,
    tag_overrides: Mapping[str, str] | None = None,
    default_region: str | None = None,
) -> ProviderMapping:
    """The mapping of one configured provider: its type's TABLE with the user's overrides applied."""
    table = load_table(provider_type)
    if default_region is not None and not is_phone_region(default_region.upper()):
        raise MappingError(f"default_region {default_region!r} is not a known region code")
    return ProviderMapping(
        table,
        field_overrides=field_overrides or {},
        tag_overrides=tag_overrides or {},
        default_region=default_region.upper() if default_region else None,
    )


def load_table(provider_type: str) -> ProviderTable:
    """``mappings.providers.<provider_type>.TABLE``."""
    if not provider_type or not set(provider_type) <= _PROVIDER_TYPE_CHARS or provider_type[0] == "_":
        raise UnknownProviderType(f"unknown provider type {provider_type!r}")
    name = f"mappings.providers.{provider_type}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # the module exists but one of its own imports is missing: a real bug
            raise
        raise UnknownProviderType(f"unknown provider type {provider_type!r}") from None
    table = getattr(module, "TABLE", None)
    if not isinstance(table, ProviderTable):
        raise UnknownProviderType(f"provider type {provider_type!r} defines no mapping TABLE")
    return table


class ProviderMapping:
    """One provider's compiled mapping: paths split once, readers and writers chosen once."""

    __slots__ = (
        "_custom",
        "_explicit",
        "_fields",
        "_fold_case",
        "_read_keys",
        "_tag_in",
        "_tag_out",
        "_writes",
        "carried_fields",
        "default_region",
        "provider_type",
        "resubscribes",
    )

    def __init__(
        self,
        table: ProviderTable,
        *,
        field_overrides: Mapping[str, str] | None = None,
        tag_overrides: Mapping[str, str] | None = None,
        default_region: str | None = None,
    ) -> None:
        self.provider_type = table.provider_type
        self.resubscribes = table.resubscribes
        self.default_region = default_region
        mappings = _apply_overrides(table, field_overrides or {})
        self._tag_out, self._tag_in = _tag_maps(table, tag_overrides or {})
        self._fold_case = table.fold_case
        self._fields = tuple(self._compile(m) for m in mappings)
        self._writes = tuple(  # written under the name as configured: a new file's header keeps its case
            _Write(f.canonical, f.path, m.provider if f.key is not None else None,
                   None if f.write is _identity else f.write)
            for m, f in zip(mappings, self._fields, strict=True)
            if f.write is not None
        )
        _check_paths(self._writes)
        self._explicit = frozenset(f.canonical for f in self._fields)
        self._custom = table.passthrough_custom
        self._read_keys = table.own_keys | {f.key if f.key is not None else f.path[0] for f in self._fields}
        # The canonical names written to this provider (read-only ones excluded; open-ended custom.* fields
        # of a passthrough table are not listed: ``carries``/``project`` include them).
        self.carried_fields: frozenset[str] = frozenset(w.canonical for w in self._writes)

    def __repr__(self) -> str:
        return f"ProviderMapping({self.provider_type!r}, fields={sorted(self._explicit)})"

    @property
    def passthrough_custom(self) -> bool:
        """Whether every ``custom.*`` field is carried (file providers), beyond ``carried_fields``."""
        return self._custom

    def carries(self, canonical: str) -> bool:
        return canonical in self.carried_fields or (self._custom and _is_custom(canonical))

    def unread_keys(self, raw: Mapping[str, Any]) -> list[str]:
        """Top-level keys of a record that nothing reads: for a file, columns whose data goes nowhere."""
        return sorted(
            str(k) for k in raw
            if k not in self._read_keys and not (self._custom and (k == "custom" or str(k).startswith(CUSTOM_PREFIX)))
        )

    def project(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The part of a (hub) contact this provider holds: what to hash and compare with its last ack."""
        return {k: v for k, v in fields.items() if self.carries(k)}

    def to_canonical(self, raw: Mapping[str, Any], *, skip: Container[str] | None = None) -> dict[str, Any]:
        """``raw`` as canonical fields; ``skip`` names canonical fields not to read (nor require)."""
        out: dict[str, Any] = {}
        for f in self._fields:  # per contact per cycle: kept free of avoidable calls
            if skip is not None and f.canonical in skip:
                continue
            key = f.key
            value = raw.get(key, _MISSING) if key is not None else _get(raw, f.path)
            if value is _MISSING:
                if f.required:
                    raise InvalidRecord(f"{self.provider_type}: record has no {f.canonical}")
                continue
            if value.__class__ is str:
                value = value.strip()
                if value and f.plain:
                    out[f.canonical] = value
                    continue
            if value is None or value == "":
                if f.required:
                    raise InvalidRecord(f"{self.provider_type}: record has a blank {f.canonical}")
                out[f.canonical] = f.blank
                continue
            value = f.read(value)
            if value is not _ABSENT:
                out[f.canonical] = value
        if self._custom:
            self._read_custom(raw, out)
        return out

    def to_provider(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in self._writes:
            value = fields.get(f.canonical, _MISSING)
            if value is _MISSING:
                continue
            if value is not None and f.write is not None:
                value = f.write(value)
            if f.key is not None:
                out[f.key] = value
            else:
                _put(out, f.path, value)
        if self._custom:
            for name, value in fields.items():
                if name not in self._explicit and _is_custom(name):
                    out[name] = value
        return out

    def _read_custom(self, raw: Mapping[str, Any], out: dict[str, Any]) -> None:
        explicit = self._explicit
        for key, value in raw.items():
            if key.__class__ is str and key.startswith(CUSTOM_PREFIX) and key not in explicit and _is_custom(key):
                out[key] = value.strip() or None if value.__class__ is str else self._custom_text(key, value)
        nested = raw.get("custom")
        if isinstance(nested, Mapping):  # JSONL may group them: {"custom": {"score": "12"}}
            for name, value in nested.items():
                key = f"{CUSTOM_PREFIX}{name}"
                if name and key not in out and key not in explicit:
                    out[key] = self._custom_text(key, value)

    def _custom_text(self, key: str, value: Any) -> str | None:
        try:
            return _text(value)
        except _NotUnderstood:
            raise InvalidRecord(f"{self.provider_type}: {key} is not text") from None

    def _compile(self, m: FieldMapping) -> _Field:
        path = tuple(m.provider.split("."))
        return _Field(
            canonical=m.canonical,
            path=path,
            key=(path[0].lower() if self._fold_case else path[0]) if len(path) == 1 else None,
            plain=m.inbound is None and m.canonical not in _SPECIAL,
            read=self._reader(m),
            blank=_blank(m.canonical),
            write=None if m.read_only else self._writer(m),
            required=m.required,
        )

    def _reader(self, m: FieldMapping) -> Callable[[Any], Any]:
        where = f"{self.provider_type}: {m.canonical}"
        inbound = _guarded(m.inbound, where) if m.inbound is not None else None
        convert = self._converter(m.canonical, where, required=m.required)
        if inbound is None:
            return convert
        blank, required = _blank(m.canonical), m.required

        def read(value: Any) -> Any:
            value = inbound(value)
            if value is None:
                if required:
                    raise InvalidRecord(f"{where}: blank")
                return blank
            return value if value is _ABSENT else convert(value)

        return read

    def _converter(self, canonical: str, where: str, *, required: bool) -> Callable[[Any], Any]:
        """The machinery's own step after ``inbound``: shape and normalise the canonical value."""
        if canonical == "email":
            return _email_reader(where, required=required)
        if canonical == "phone":
            region = self.default_region
            return lambda value: _phone(_text_or_absent(value), region)
        if canonical == "tags":
            tag_in = self._tag_in
            return lambda value: _tags(value, tag_in, where)
        if canonical == "consent":
            return _consent
        if canonical == "lifecycle":
            return _lifecycle
        if canonical in META_KEYS:
            return lambda value: _timestamp(_text_or_absent(value))
        return lambda value: _text_field(value, where)

    def _writer(self, m: FieldMapping) -> Callable[[Any], Any]:
        outbound = m.outbound
        if m.canonical == "tags":
            tag_out = self._tag_out
            finish = outbound if outbound is not None else _sorted_list

            def write_tags(value: Any) -> Any:
                return finish(frozenset(tag_out.get(t, t) for t in value))

            return write_tags
        if outbound is not None:
            return outbound
        if m.canonical in ("consent", "lifecycle"):
            return str
        return _identity


def _apply_overrides(table: ProviderTable, overrides: Mapping[str, str]) -> list[FieldMapping]:
    where = f"{table.provider_type} table"
    mappings = list(table.fields)
    seen: set[str] = set()
    for m in mappings:
        if not _is_canonical(m.canonical, allow_meta=True):
            raise MappingError(f"{where}: unknown canonical field {m.canonical!r}")
        if m.canonical in seen:
            raise MappingError(f"{where}: maps {m.canonical!r} twice")
        seen.add(m.canonical)
        if not _is_path(m.provider):
            raise MappingError(f"{where}: {m.canonical}: provider field must be a dotted name")
    if "email" not in seen:
        raise MappingError(f"{where}: does not map email, the identity")
    for canonical, path in overrides.items():
        if not _is_canonical(canonical, allow_meta=False):
            expected = ", ".join(SCALAR_FIELDS)
            msg = f"fields.{canonical}: unknown canonical field (expected {expected}, tags, consent or custom.<name>)"
            raise MappingError(msg)
        if not _is_path(path):
            raise MappingError(f"fields.{canonical}: provider field must be a dotted name")
        index = next((i for i, m in enumerate(mappings) if m.canonical == canonical), None)
        if index is None:
            mappings.append(FieldMapping(canonical=canonical, provider=path))
        else:
            # the value conversions stay; read_only goes, since it describes the table's own path (a
            # Mailchimp ADDRESS part), not a field the user names
            mappings[index] = replace(mappings[index], provider=path, read_only=False)
    return mappings


def _is_canonical(canonical: Any, *, allow_meta: bool) -> bool:
    if not isinstance(canonical, str):
        return False
    if canonical in SCALAR_FIELDS or canonical in _SET_FIELDS or (allow_meta and canonical in META_KEYS):
        return True
    return _is_custom(canonical)


def _is_path(path: Any) -> bool:
    return isinstance(path, str) and bool(path) and "" not in path.split(".")


def _check_paths(writes: Iterable[_Write]) -> None:
    """Two written fields cannot share a provider path, nor can one path sit inside another."""
    by_path: dict[tuple[str, ...], str] = {}
    for f in writes:
        for other_path, other in by_path.items():
            short = min(len(f.path), len(other_path))
            if f.path[:short] == other_path[:short]:
                raise MappingError(f"fields: {other!r} and {f.canonical!r} write the same provider field")
        by_path[f.path] = f.canonical


def _tag_maps(table: ProviderTable, overrides: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    out = dict(table.tags)
    out.update(overrides)
    back: dict[str, str] = {}
    for canonical, provider in out.items():
        if not isinstance(canonical, str) or not isinstance(provider, str) or not canonical or not provider:
            raise MappingError("tags: tag names must be non-empty text")
        if provider in back:
            raise MappingError(f"tags: {back[provider]!r} and {canonical!r} both map to provider tag {provider!r}")
        back[provider] = canonical
    return out, back


def _is_custom(name: str) -> bool:
    return name.startswith(CUSTOM_PREFIX) and len(name) > len(CUSTOM_PREFIX)


def _get(raw: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    if len(path) == 1:
        return raw.get(path[0], _MISSING)
    node: Any = raw
    for key in path:
        if node.__class__ is not dict and not isinstance(node, Mapping):  # JSON objects are dicts: skip the ABC check
            return _MISSING
        node = node.get(key, _MISSING)
        if node is _MISSING:
            return _MISSING
    return node


def _put(out: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = out
    for key in path[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        node = child
    node[path[-1]] = value


def _blank(canonical: str) -> Any:
    if canonical == "tags":
        return frozenset()
    if canonical == "consent":
        return Consent.UNKNOWN
    return None


def _guarded(inbound: Callable[[Any], Any], where: str) -> Callable[[Any], Any]:
    """A table's ``inbound`` failing on one value rejects that record, never the run (and never shows the value)."""

    def run(value: Any) -> Any:
        try:
            return inbound(value)
        except InvalidEmail as exc:
            raise InvalidRecord(f"{where}: {exc}") from None
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            raise InvalidRecord(f"{where}: value not understood ({type(exc).__name__})") from None

    return run


def _text(value: Any) -> str | None:
    """Provider scalars as canonical text: stripped, blank -> None; numbers and booleans spelled out."""
    if value.__class__ is str:
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):  # a str subclass (StrEnum)
        return str.strip(value) or None
    if isinstance(value, int | float):
        return str(value)
    raise _NotUnderstood


def _text_field(value: Any, where: str) -> str | None:
    try:
        return _text(value)
    except _NotUnderstood:
        raise InvalidRecord(f"{where} is not text") from None


def _text_or_absent(value: Any) -> Any:
    try:
        return _text(value)
    except _NotUnderstood:
        return _ABSENT


def _email_reader(where: str, *, required: bool) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        text = _text_field(value, where)
        if text is None:
            if required:
                raise InvalidRecord(f"{where}: blank")
            return None
        try:
            return normalize_email(text)
        except InvalidEmail as exc:
            raise InvalidRecord(f"{where}: {exc}") from None

    return read


def _phone(text: Any, region: str | None) -> Any:
    if text is None or text is _ABSENT:
        return text
    return normalize_phone(text, region) or _ABSENT


def _timestamp(text: Any) -> Any:
    if text is None or text is _ABSENT:
        return text
    return normalize_timestamp(text) or _ABSENT


def _lifecycle(value: Any) -> Any:
    text = _text_or_absent(value)
    if text is None or text is _ABSENT:
        return text
    text = text.lower()
    return text if text in _LIFECYCLES else _ABSENT


def _consent(value: Any) -> Consent:
    if isinstance(value, Consent):
        return value
    text = _text_or_absent(value)
    if text is None or text is _ABSENT:
        return Consent.UNKNOWN
    return _CONSENTS.get(text.lower(), Consent.UNKNOWN)


def _tags(value: Any, tag_in: Mapping[str, str], where: str) -> frozenset[str]:
    if isinstance(value, str):
        value = value.split(";")  # the file and multi-select spelling: "a;b;c"
    elif not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise InvalidRecord(f"{where}: expected a list of tag names")
    names: set[str] = set()
    for item in value:
        if not isinstance(item, str):
            raise InvalidRecord(f"{where}: expected a list of tag names")
        name = item.strip()
        if name:
            names.add(tag_in.get(name, name))
    return frozenset(names)


def _sorted_list(tags: frozenset[str]) -> list[str]:
    return sorted(tags)


def _identity(value: Any) -> Any:
    return value
