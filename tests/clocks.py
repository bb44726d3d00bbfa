"""A provider's clock in tests: starts at a fixed moment and moves only when told (emulators and adapters)."""

from __future__ import annotations

import datetime as dt
import threading


class ManualClock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 3, 1, 9, 0, 0, tzinfo=dt.UTC)
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float = 1.0) -> dt.datetime:
        with self._lock:
            self.now += dt.timedelta(seconds=seconds)
            return self.now
