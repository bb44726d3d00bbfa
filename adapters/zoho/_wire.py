"""Zoho CRM v8 wire facts shared by the adapter and the emulator: limits, time format, error bodies."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

# https://www.zoho.com/crm/developer/docs/api/v8/get-records.html — per_page max 200; `page` reaches only
# the first 2,000 rows, `page_token` goes on to 100,000 (K60 in providers/zoho.md).
PER_PAGE_MAX: Final = 200
PAGE_PARAM_ROW_CAP: Final = 2_000
PAGE_TOKEN_ROW_CAP: Final = 100_000
DELETED_PER_PAGE_MAX: Final = 200
# https://zoho.com/crm/developer/docs/api/v8/upsert-records.html — at most 100 records per call.
UPSERT_MAX: Final = 100
IDS_MAX: Final = 100  # ids per GET ?ids= and per DELETE ?ids=


def parse_zoho_time(text: str) -> dt.datetime:
    """ISO 8601 with an offset (``2024-05-01T15:26:49+05:30``) -> aware UTC; never compared as text."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("Zoho timestamps carry an offset")
    return value.astimezone(dt.UTC)


def format_zoho_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).replace(microsecond=0).isoformat()


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    """Zoho's error envelope (OAS ``API_Exception``): plain JSON, not RFC 7807."""
    return {"code": code, "details": details, "message": message, "status": "error"}


def record_error(code: str, message: str, **details: Any) -> dict[str, Any]:
    return error_body(code, message, **details)
