"""A thread-safe sliding-window rate limiter: never more than ``calls`` in any ``per_s`` seconds."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final

_SPEC: Final = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?|\.\d+)?\s*([smh])\s*", re.IGNORECASE)
_UNIT_S: Final = {"s": 1.0, "m": 60.0, "h": 3600.0}
# The shortest sleep between re-checks: float rounding must never make a waiting loop spin on 0 s.
_MIN_WAIT_S: Final = 1e-6


class RateLimiter:
    """Blocks in ``acquire()`` until a call fits the window; shared by every thread of one provider.

    The window is sliding, not fixed: each call keeps its slot for ``per_s`` seconds after it was
    taken, so no interval of ``per_s`` seconds ever holds more than ``calls`` calls. ``clock`` and
    ``sleep`` are injectable so tests run on a fake clock.
    """

    def __init__(
        self,
        calls: int,
        per_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if calls < 1 or not per_s > 0:
            raise ValueError(f"rate limit needs calls >= 1 and a positive window, not {calls}/{per_s}s")
        self.calls = calls
        self.per_s = float(per_s)
        self._clock = clock
        self._sleep = sleep
        self._expiries: deque[float] = deque()  # when each taken slot frees, oldest first
        self._lock = threading.Lock()

    @classmethod
    def parse(
        cls,
        spec: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RateLimiter:
        """Read ``"100/10s"``, ``"5/s"`` (= ``"5/1s"``), ``"300/m"``, ``"1000/1h"``."""
        match = _SPEC.fullmatch(spec) if isinstance(spec, str) else None
        if match is None:
            raise ValueError(f"bad rate limit {spec!r}: expected calls/window such as '100/10s' or '5/s'")
        calls, amount, unit = int(match[1]), float(match[2] or 1), match[3].lower()
        if calls < 1 or amount <= 0:
            raise ValueError(f"bad rate limit {spec!r}: calls and window must be positive")
        return cls(calls, amount * _UNIT_S[unit], clock=clock, sleep=sleep)

    def acquire(self) -> float:
        """Take a slot, sleeping as long as needed; returns the seconds it slept."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._expiries and self._expiries[0] <= now:
                    self._expiries.popleft()
                if len(self._expiries) < self.calls:
                    self._expiries.append(now + self.per_s)
                    return waited
                wait = max(self._expiries[0] - now, _MIN_WAIT_S)
            self._sleep(wait)  # outside the lock: other threads may still check in
            waited += wait

    def __repr__(self) -> str:
        return f"RateLimiter({self.calls}/{self.per_s:g}s)"
