"""Value conversions several provider tables share (tag lists, consent words)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mappings.contact import Consent


def tag_names(tags: Any, *, key: str = "name") -> frozenset[str]:
    """Tag names from a list of names or of ``{key: name}`` rows; anything else reads as no tags."""
    if not isinstance(tags, Iterable) or isinstance(tags, str | bytes):
        return frozenset()
    names = (t.get(key) if isinstance(t, dict) else t for t in tags)
    return frozenset(str(n).strip() for n in names if n is not None and str(n).strip())


def sorted_tags(tags: Iterable[str]) -> list[str]:
    return sorted(tags)


def consent_word(consent: Any, words: Mapping[Consent, str]) -> str | None:
    """The provider's word for a canonical consent, or None where it has none (unknown, pending)."""
    try:
        return words.get(Consent(str(consent)))
    except ValueError:
        return None
