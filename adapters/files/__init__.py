"""Files as providers: ``csv`` and ``jsonl`` for imports, exports and migrations."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from adapters.files._common import DEFAULT_PAGE_SIZE, FileAdapter
from adapters.files.csv_provider import CsvAdapter
from adapters.files.jsonl_provider import JsonlAdapter

__all__ = ["CsvAdapter", "FileAdapter", "JsonlAdapter", "create_adapter"]

ADAPTERS: Final[Mapping[str, type[FileAdapter]]] = {"csv": CsvAdapter, "jsonl": JsonlAdapter}


def create_adapter(name: str, options: Mapping[str, Any]) -> FileAdapter:
    """Build the adapter for ``options["type"]`` from ``path`` (absolute) and optional ``page_size``."""
    kind = options.get("type")
    adapter = ADAPTERS.get(kind) if isinstance(kind, str) else None
    if adapter is None:
        raise ValueError(f"providers.{name}.type: {kind!r} is not a file type (csv, jsonl)")
    path = options.get("path")
    if not isinstance(path, str | Path) or not str(path):
        raise ValueError(f"providers.{name}.path: a file path is required")
    page_size = options.get("page_size", DEFAULT_PAGE_SIZE)
    if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
        raise ValueError(f"providers.{name}.page_size: a positive integer is required")
    return adapter(name=name, path=Path(path), page_size=page_size)
