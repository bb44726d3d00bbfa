"""RateLimiter: the sliding window holds on a fake clock, alone and under threads; specs parse."""

from __future__ import annotations

import threading
from bisect import bisect_left

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.ratelimit import RateLimiter


class FakeClock:
    """A clock that only moves when someone sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self._lock = threading.Lock()
        self._seen = threading.local()

    def __call__(self) -> float:
        with self._lock:
            self._seen.last = self.now
            return self.now

    def last_read(self) -> float:
        """What this thread last read: for acquire(), the time its slot was taken."""
        return float(self._seen.last)

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def max_in_any_window(times: list[float], per_s: float) -> int:
    """The most calls in any half-open window [t, t + per_s) starting at a call."""
    times = sorted(times)
    return max((bisect_left(times, t + per_s) - i for i, t in enumerate(times)), default=0)


limits = st.tuples(st.integers(1, 20), st.floats(0.01, 100.0, allow_nan=False))


@given(limit=limits, gaps=st.lists(st.floats(0.0, 50.0, allow_nan=False), max_size=80))
def test_never_more_than_calls_in_any_window(limit: tuple[int, float], gaps: list[float]) -> None:
    calls, per_s = limit
    clock = FakeClock()
    limiter = RateLimiter(calls, per_s, clock=clock, sleep=clock.sleep)
    taken = []
    for gap in gaps:
        clock.advance(gap)
        limiter.acquire()
        taken.append(clock())
    assert max_in_any_window(taken, per_s) <= calls


@given(limit=limits, n=st.integers(1, 60))
def test_a_burst_waits_only_as_long_as_needed(limit: tuple[int, float], n: int) -> None:
    calls, per_s = limit
    clock = FakeClock()
    limiter = RateLimiter(calls, per_s, clock=clock, sleep=clock.sleep)
    start = clock()
    for _ in range(n):
        limiter.acquire()
    # n back-to-back calls need exactly ceil(n / calls) - 1 full windows: no more, no less.
    windows = (n - 1) // calls
    assert clock() - start == pytest.approx(windows * per_s, rel=1e-6, abs=1e-4)


def test_calls_within_the_limit_never_sleep() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, 10.0, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire() for _ in range(5)] == [0.0] * 5
    assert clock.slept == []
    assert limiter.acquire() == pytest.approx(10.0)


def test_slots_free_one_by_one_as_the_window_slides() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, 10.0, clock=clock, sleep=clock.sleep)
    limiter.acquire()  # t=0
    clock.advance(4)
    limiter.acquire()  # t=4
    clock.advance(1)
    assert limiter.acquire() == pytest.approx(5.0)  # t=10: the first slot freed
    assert limiter.acquire() == pytest.approx(4.0)  # t=14: the second


@settings(max_examples=20, deadline=None)
@given(calls=st.integers(1, 6), threads=st.integers(2, 8), each=st.integers(1, 12))
def test_threads_share_the_window(calls: int, threads: int, each: int) -> None:
    clock = FakeClock()
    limiter = RateLimiter(calls, 1.0, clock=clock, sleep=clock.sleep)
    taken: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(each):
            limiter.acquire()
            stamp = clock.last_read()
            with lock:
                taken.append(stamp)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30)
    assert len(taken) == threads * each
    assert max_in_any_window(taken, 1.0) <= calls
    assert max_in_any_window(taken, 1.0) == min(calls, threads * each)  # and it does not starve


@pytest.mark.parametrize(
    ("spec", "calls", "per_s"),
    [
        ("100/10s", 100, 10.0),
        ("5/s", 5, 1.0),
        ("5/1s", 5, 1.0),
        ("300/m", 300, 60.0),
        ("1000/1h", 1000, 3600.0),
        (" 190 / 10S ", 190, 10.0),
        ("3/0.5s", 3, 0.5),
    ],
)
def test_parse(spec: str, calls: int, per_s: float) -> None:
    limiter = RateLimiter.parse(spec)
    assert (limiter.calls, limiter.per_s) == (calls, per_s)


@pytest.mark.parametrize("spec", ["", "100", "100/", "/10s", "0/10s", "10/0s", "ten/s", "10/10d", "10/-1s", "1.5/s"])
def test_a_bad_spec_names_the_text(spec: str) -> None:
    with pytest.raises(ValueError) as raised:
        RateLimiter.parse(spec)
    assert repr(spec) in str(raised.value)


def test_a_bad_constructor_is_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0, 1.0)
    with pytest.raises(ValueError):
        RateLimiter(1, 0.0)
