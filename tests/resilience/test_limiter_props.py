"""Property tests of the RateLimiter under many threads (hypothesis).

Time is a FakeClock that moves only between phases; within a phase 8-16 threads hit one
limiter at once, so every admission of a phase happens at one known instant. From what
the callers were granted and gave back, an independent oracle recomputes each window
and checks it never holds more than its limit, and that the storage counts exactly
what the callers hold (a leaked partial reservation would show there).
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from dataclasses import dataclass
from math import floor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otpy.resilience import ClockedMemoryStorage, Limit, Permit, RateLimiter
from otpy.resilience._ledger import Buckets, RollingLog
from otpy.testing import FakeClock, wait_until

EPOCH = 1_700_000_040.0  # a multiple of 60 (and of 1, 10): windows start at t=0
PERIODS = {"second": 1, "10 seconds": 10, "minute": 60}

PROPS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Grant:
    at: float  # fake time of the admission
    cost: dict[str, int]
    returned: dict[str, int]  # refunded later, per dimension


bucket_specs = st.tuples(
    st.sampled_from(["requests", "tokens"]),
    st.integers(1, 40),
    st.sampled_from(sorted(PERIODS)),
    st.sampled_from(["sliding-window-counter", "moving-window"]),
)


def _limits(specs: list[tuple[str, int, str, str]]) -> list[Limit]:
    seen, out = set(), []
    for dimension, amount, per, strategy in specs:
        if (dimension, amount, per) not in seen:
            seen.add((dimension, amount, per))
            out.append(Limit(dimension, f"{amount} per {per}", strategy))  # type: ignore[arg-type]
    return out


def _window_holds(limit: Limit, grants: list[Grant], now: float) -> float:
    """What the oracle says the bucket counts at ``now`` (weighted for a sliding counter)."""
    period, dim = limit.period, limit.dimension
    if limit.strategy == "moving-window":
        return sum(
            g.cost.get(dim, 0) - g.returned.get(dim, 0) for g in grants if g.at > now - period
        )
    per_window: dict[int, int] = defaultdict(int)
    for g in grants:
        per_window[int((EPOCH + g.at) / period)] += g.cost.get(dim, 0) - g.returned.get(dim, 0)
    current = int((EPOCH + now) / period)
    previous_weight = 1 - (((EPOCH + now) / period) % 1)
    return per_window[current - 1] * previous_weight + per_window[current]


def _check(limiter: RateLimiter, grants: list[Grant], now: float) -> None:
    stats = {(b.dimension, b.limit, b.period): b.level for b in limiter.statistics().buckets}
    for limit in limiter.limits:
        held = _window_holds(limit, grants, now)
        assert floor(held + 1e-9) <= limit.amount, f"{limit} holds {held} at t={now}"
        seen = stats[(limit.dimension, limit.amount, limit.period)]
        assert seen == pytest.approx(held, abs=1e-6), f"{limit}: storage {seen}, callers {held}"


@PROPS
@given(
    specs=st.lists(bucket_specs, min_size=1, max_size=4),
    threads=st.integers(8, 16),
    phases=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0, 10.0, 30.0, 61.0]),  # time step
            st.lists(
                st.tuples(st.integers(0, 3), st.integers(0, 40), st.floats(0, 1)),
                min_size=1,
                max_size=6,
            ),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_no_window_ever_holds_more_than_its_limit(
    specs: list[tuple[str, int, str, str]], threads: int, phases: list[tuple[float, Any]]
) -> None:
    clock = FakeClock(epoch=EPOCH)
    limiter = RateLimiter(_limits(specs), ClockedMemoryStorage(clock), clock=clock)
    grants: list[Grant] = []
    record = threading.Lock()
    for step, work in phases:
        clock.advance(step)
        now = clock.monotonic()
        start = threading.Barrier(threads)

        def worker(index: int, start: threading.Barrier, work: Any, now: float) -> None:
            start.wait(10)
            for requests, tokens, keep in work[index % len(work) :] + work[: index % len(work)]:
                cost = {"requests": requests, "tokens": tokens}
                try:
                    permit: Permit | None = limiter.try_acquire(cost)
                except Exception as exc:  # a cost over a bucket's limit: refused at once
                    assert "can never be admitted" in str(exc)
                    continue
                if permit is None:
                    continue
                grant = Grant(now, cost, {})
                with record:
                    grants.append(grant)
                if keep < 0.5:  # used less than reserved: settle gives the rest back
                    used = {d: floor(c * keep * 2) for d, c in cost.items()}
                    applied = permit.settle(used)
                    with record:
                        grant.returned = {d: -delta for d, delta in applied.items()}

        pool = [threading.Thread(target=worker, args=(i, start, work, now)) for i in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(30)
        assert not any(t.is_alive() for t in pool)
        _check(limiter, grants, now)
    assert limiter.statistics().refunds_dropped == {}


class LoggedLog(RollingLog):
    """A rolling window that records the token reservations it admits, in order."""

    def __init__(self, period_us: int, admitted: list[int]) -> None:
        super().__init__(period_us)
        self.admitted = admitted

    def add(self, now: int, units: int) -> int:
        self.admitted.append(units)
        return super().add(now, units)


class LoggedBuckets(Buckets):
    def __init__(self, admitted: list[int]) -> None:
        super().__init__()
        self.admitted = admitted

    def log(self, key: str, period_us: int) -> RollingLog:
        if "tokens" in key and key not in self.logs:
            self.logs[key] = LoggedLog(period_us, self.admitted)
        return super().log(key, period_us)


class LoggedStorage(ClockedMemoryStorage):
    """Records the order in which token reservations were admitted."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.admitted: list[int] = []
        self.buckets = LoggedBuckets(self.admitted)

    def acquire_sliding_window_at(self, key: str, limit: int, expiry: int, amount: int = 1) -> Any:
        where = super().acquire_sliding_window_at(key, limit, expiry, amount)
        if where is not None and "tokens" in key:
            self.admitted.append(amount)
        return where

    def decr(self, key: str, amount: int = 1) -> int:
        if "tokens" in key:  # a reservation rolled back: another bucket refused
            assert self.admitted.pop() == amount
        return super().decr(key, amount)


@PROPS
@given(
    costs=st.lists(st.integers(1, 100), min_size=8, max_size=16, unique=True),
    steps=st.lists(st.sampled_from([0.1, 0.5, 1.0, 2.5, 7.0]), min_size=1, max_size=10),
    strategy=st.sampled_from(["rolling-window", "token-bucket", "sliding-window-counter"]),
)
def test_waiters_are_admitted_in_arrival_order(
    costs: list[int], steps: list[float], strategy: Any
) -> None:
    clock = FakeClock(epoch=EPOCH)
    storage = LoggedStorage(clock)
    tokens = Limit("tokens", "100/10 seconds", strategy)
    if strategy == "token-bucket":  # logged through the rolling window of the same tokens
        tokens = Limit("tokens", "100/10 seconds", "rolling-window")
        extra = [Limit("tokens", "100/10 seconds", "token-bucket")]
    else:
        extra = []
    limiter = RateLimiter(
        [tokens, *extra, Limit("requests", "4/second", strategy)], storage, clock=clock
    )
    limiter.acquire({"tokens": 100, "requests": 1})  # full: everyone has to queue
    storage.admitted.clear()
    done = threading.Event()
    finished: list[int] = []

    def worker(cost: int) -> None:
        limiter.acquire({"tokens": cost, "requests": 1})
        finished.append(cost)
        if len(finished) == len(costs):
            done.set()

    pool = []
    for i, cost in enumerate(costs):
        thread = threading.Thread(target=worker, args=(cost,))
        thread.start()
        pool.append(thread)
        wait_until(lambda n=i + 1: limiter.statistics().waiting >= n)  # queued in this order
    for step in itertools.cycle(steps):
        wait_until(lambda: done.is_set() or clock.sleepers >= 1)
        if done.is_set():
            break
        clock.advance(step)
    for thread in pool:
        thread.join(10)
    assert storage.admitted == costs  # FIFO: small ones never overtook a big one
