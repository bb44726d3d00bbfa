"""JSON text for canonical fields and datetimes as the store keeps them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from mappings.contact import Consent


def _encode(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def dump_fields(fields: Mapping[str, Any]) -> str:
    """Canonical fields as JSON text: tags sorted, times ISO, consent as its word (a StrEnum is a str)."""
    return json.dumps(fields, sort_keys=True, ensure_ascii=False, default=_encode)


def load_fields(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    raw = json.loads(text)
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
    return json.dumps({k: [who, when.isoformat() if when else None] for k, (who, when) in sources.items()})


def load_sources(text: str | None) -> dict[str, tuple[str, dt.datetime | None]]:
    if not text:
        return {}
    return {k: (who, dt.datetime.fromisoformat(when) if when else None) for k, (who, when) in json.loads(text).items()}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
