"""benchmarks/run.py's rate-bound floor is the least time N calls take under a rolling window: the time at
which crmsync's own limiter, never waiting longer than it must, lets the last call go (on a fake clock)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.ratelimit import RateLimiter


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", Path(__file__).parents[1] / "benchmarks" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


window_floor = _bench().window_floor


def test_hubspots_burst_lets_the_first_hundred_calls_go_at_once() -> None:
    assert window_floor(100, 100, 10.0) == 0.0
    assert window_floor(101, 100, 10.0) == 10.0
    assert window_floor(200, 100, 10.0) == 10.0  # not 200 calls / 10 a second = 20 s
    assert window_floor(0, 100, 10.0) == 0.0


@given(calls=st.integers(0, 600), limit=st.integers(1, 120), window=st.sampled_from([1.0, 10.0]))
def test_the_floor_is_when_a_greedy_rolling_window_limiter_lets_the_last_call_go(
    calls: int, limit: int, window: float
) -> None:
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    limiter = RateLimiter(limit, window, clock=lambda: clock[0], sleep=sleep)
    for _ in range(calls):
        limiter.acquire()
    assert clock[0] == pytest.approx(window_floor(calls, limit, window))
