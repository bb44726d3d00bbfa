"""HubSpot's rate limits as the emulator enforces them: a rolling 10-second burst, a daily cap, search 5/s.

Bodies and headers from https://developers.hubspot.com/docs/api/usage-details (see providers/hubspot.md):
``policyName`` TEN_SECONDLY_ROLLING or DAILY; search is exempt from the burst bucket and has no headers.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class LimitState:
    burst: deque[float] = field(default_factory=deque)
    search: deque[float] = field(default_factory=deque)
    daily_used: int = 0


class Limits:
    """Per-token counters; ``check`` answers None (go on) or a 429 (status, body, headers)."""

    def __init__(
        self, *, burst: int = 100, interval_s: float = 10.0, daily: int = 250_000, search_per_s: int = 5
    ) -> None:
        self.burst = burst
        self.interval_s = interval_s
        self.daily = daily
        self.search_per_s = search_per_s
        self._state: dict[str, LimitState] = {}
        self._lock = threading.Lock()

    def check(self, token: str, *, search: bool) -> tuple[dict[str, Any] | None, dict[str, str]]:
        with self._lock:
            state = self._state.setdefault(token, LimitState())
            now = time.monotonic()
            if state.daily_used >= self.daily:
                return _body("You have reached your daily limit.", "DAILY"), self._headers(state, now)
            window, limit, span = (
                (state.search, self.search_per_s, 1.0) if search else (state.burst, self.burst, self.interval_s)
            )
            while window and window[0] <= now - span:
                window.popleft()
            if len(window) >= limit:
                if search:
                    return _body("You have reached your secondly limit.", "SECONDLY"), {}
                return _body("You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING"), {
                    **self._headers(state, now),
                    "X-HubSpot-RateLimit-Remaining": "0",
                }
            window.append(now)
            state.daily_used += 1
            return None, {} if search else self._headers(state, now)

    def _headers(self, state: LimitState, now: float) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Daily": str(self.daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(self.daily - state.daily_used, 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.interval_s * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.burst),
            "X-HubSpot-RateLimit-Remaining": str(max(self.burst - len(state.burst), 0)),
        }

    def reset(self) -> None:
        with self._lock:
            self._state.clear()


def _body(message: str, policy: str) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
    }
