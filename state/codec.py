"""JSON text for canonical fields and datetimes as the store keeps them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from mappings.contact import Consent


def _encode(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def json_text(value: Any, *, default: Callable[[Any], Any]) -> str:
    """JSON text with sorted keys, UTF-8 as is.

    This runs several times per contact and cycle (fields, merge bases, hashes), so orjson writes it, about
    five times faster than ``json.dumps``; the standard library takes what orjson refuses (integers past
    64 bits, lone surrogates), so no value that used to be stored is refused now.
    """
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=default)


def json_value(text: str) -> Any:
    """JSON text read back (orjson, with the standard library for what it refuses, like ``json_text``)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def dump_fields(fields: Mapping[str, Any]) -> str:
    """Canonical fields as JSON text: tags sorted, times ISO, consent as its word (a StrEnum is a str)."""
    return json_text(fields, default=_encode)


def load_fields(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    raw = json_value(text)
    if "tags" in raw and raw["tags"] is not None:
        raw["tags"] = frozenset(raw["tags"])
    if raw.get("consent"):
        raw["consent"] = Consent(raw["consent"])
    return dict(raw)


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes: every time the store keeps is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def dump_sources(sources: Mapping[str, tuple[str, dt.datetime | None]]) -> str:
    out: dict[str, list[str | None]] = {}
    last: tuple[str, dt.datetime | None] | None = None
    pair: list[str | None] = []
    for name, origin in sources.items():
        if origin != last:  # most fields of a contact share one origin: its time is written out once
            who, when = origin
            pair, last = [who, when.isoformat() if when else None], origin
        out[name] = pair
    return json_text(out, default=_encode)


def load_sources(text: str | None) -> dict[str, tuple[str, dt.datetime | None]]:
    if not text:
        return {}
    return {k: (who, dt.datetime.fromisoformat(when) if when else None) for k, (who, when) in json_value(text).items()}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
