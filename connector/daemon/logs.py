"""Daemon logs: one line per event, plain or JSON; any address in a line becomes a short keyed hash."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import unquote

# Addresses as written, or percent-encoded in a logged URL path or query ("%40").
_EMAIL: Final = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", re.IGNORECASE)
_STANDARD: Final = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class _Redacting(logging.Formatter):
    def __init__(self, *, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json
        self.email_key: Callable[[str], str] | None = None

    def _clean(self, text: str) -> str:
        key = self.email_key
        return _EMAIL.sub(lambda m: f"email:{key(unquote(m.group(0)).lower())[:12]}" if key else "email:***", text)

    def format(self, record: logging.LogRecord) -> str:
        message = self._clean(record.getMessage())
        if record.exc_info and record.exc_info[0] is not None:
            message += f" ({record.exc_info[0].__name__})"  # the type only: messages may carry data
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        stamp = dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")
        if self.as_json:
            document: dict[str, Any] = {"ts": stamp, "level": record.levelname.lower(), "logger": record.name,
                                        "msg": message}
            document.update({k: v for k, v in extra.items() if k != "color_message"})
            return self._clean(json.dumps(document, default=str, ensure_ascii=False))
        fields = " ".join(f"{k}={v}" for k, v in extra.items() if k != "color_message")
        return self._clean(f"{stamp} {record.levelname.lower()} {record.name}: {message}" + (f" {fields}" if fields
                                                                                             else ""))


_FORMATTER: _Redacting | None = None


def configure(log_format: str, *, level: int = logging.INFO) -> None:
    """Root logging to stderr in ``plain`` or ``json``; uvicorn's access log stays off (URLs hold secrets)."""
    global _FORMATTER  # noqa: PLW0603 - one process-wide logging setup
    _FORMATTER = _Redacting(as_json=log_format == "json")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_FORMATTER)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # job runs and skipped overlaps are not events
    logging.getLogger("uvicorn.access").disabled = True


def use_email_key(email_key: Callable[[str], str]) -> None:
    """Once the store is open: addresses in log lines become its keyed hash (the one ``status`` uses)."""
    if _FORMATTER is not None:
        _FORMATTER.email_key = email_key
