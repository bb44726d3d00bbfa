"""The emulator's error body: HubSpot's ``{"status": "error", "message", "correlationId", "category"}``."""

from __future__ import annotations

import uuid
from typing import Any

from adapters._emulator import Response


def error(status: int, message: str, category: str, **extra: Any) -> Response:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    return Response.json({**body, **extra}, status)
