"""Rate limiters under load, for the tests: a driver that saturates a limiter on a fake
clock, and oracles that check a timeline of admissions against each bucket's rule.

A timeline is a list of ``(time, {dimension: units})``: each admission at the time it was
admitted, with the units it kept (reserved less what its settle gave back).
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

from otpy.resilience import Limit, RateLimiter
from otpy.testing import FakeClock

Timeline = list[tuple[float, dict[str, int]]]
TOLERANCE = 1e-6  # float noise allowed in a token bucket's replay


def _us(t: float) -> int:
    """A time in whole µs, the resolution limiters count in (a float of epoch seconds has
    no exact sub-µs digits to compare)."""
    return round(t * 1_000_000)


def window_peak(timeline: Timeline, limit: Limit) -> int:
    """The most units of ``limit``'s dimension held by any rolling window (t - period, t],
    in µs (the peak is at an admission: checking windows that end there covers every
    window of any length up to the period)."""
    per_time: dict[int, int] = defaultdict(int)
    for t, units in timeline:
        per_time[_us(t)] += units.get(limit.dimension, 0)
    times, period = sorted(per_time), limit.period * 1_000_000
    peak = held = lo = 0
    for t in times:
        held += per_time[t]
        while times[lo] <= t - period:
            held -= per_time[times[lo]]
            lo += 1
        peak = max(peak, held)
    return peak


def bucket_peak(timeline: Timeline, limit: Limit) -> float:
    """The highest level a token bucket of ``limit`` (capacity = its amount, refilled at
    amount per period) reaches when it replays the timeline (admissions at one instant
    counted together)."""
    per_time: dict[int, int] = defaultdict(int)
    for t, units in timeline:
        per_time[_us(t)] += units.get(limit.dimension, 0)
    level, last, peak = 0.0, None, 0.0
    for t in sorted(per_time):
        if last is not None:
            level = max(0.0, level - (t - last) * limit.amount / (limit.period * 1_000_000))
        level += per_time[t]
        last = t
        peak = max(peak, level)
    return peak


def violations(timeline: Timeline, limits: Sequence[Limit]) -> dict[str, float]:
    """Each bucket whose rule the timeline breaks, with its peak over the limit."""
    bad: dict[str, float] = {}
    for limit in limits:
        if limit.strategy == "token-bucket":
            peak = bucket_peak(timeline, limit)
            if peak > limit.amount + TOLERANCE:
                bad[str(limit)] = peak
        elif window_peak(timeline, limit) > limit.amount:
            bad[str(limit)] = window_peak(timeline, limit)
    return bad


class TimedClock(FakeClock):
    """A FakeClock that knows the deadlines of the timed waits, so a driver can move time
    straight to the next one once every worker is blocked."""

    def __init__(self, epoch: float = 1_700_000_040.0) -> None:
        super().__init__(epoch=epoch)
        self.lock = threading.Lock()
        self.timed: dict[int, tuple[float, threading.Event]] = {}

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        if timeout is None:
            return super().wait(event, timeout)
        with self.lock:
            self.timed[threading.get_ident()] = (self.monotonic() + timeout, event)
        try:
            return super().wait(event, timeout)
        finally:
            with self.lock:
                del self.timed[threading.get_ident()]


def saturate(
    limiter: RateLimiter,
    clock: TimedClock,
    *,
    workers: int,
    seconds: float,
    cost: Callable[[random.Random], dict[str, int]],
    used: Callable[[random.Random, dict[str, int]], dict[str, int]] | None = None,
    real_timeout: float = 50.0,
) -> Timeline:
    """``workers`` threads call ``limiter.acquire(cost(rng))`` back to back (each settles
    with ``used(rng, cost)`` when given) for ``seconds`` of fake time; the clock jumps to
    the head waiter's deadline whenever every worker is queued. Returns the timeline."""
    timeline: Timeline = []
    stop, lock, left = threading.Event(), threading.Lock(), [workers]

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while True:
                asked = cost(rng)
                permit = limiter.acquire(asked)
                if stop.is_set():
                    permit.release()
                    return
                kept = dict(asked)
                if used is not None:
                    for dimension, delta in permit.settle(used(rng, asked)).items():
                        kept[dimension] = kept.get(dimension, 0) + delta
                with lock:
                    timeline.append((permit.admitted_at, kept))
        finally:
            with lock:
                left[0] -= 1

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    give_up = time.monotonic() + real_timeout
    while left[0]:
        assert time.monotonic() < give_up, f"stuck at t={clock.monotonic()}"
        now = clock.monotonic()
        with clock.lock:
            timed = list(clock.timed.values())
        quiet = (
            not stop.is_set()
            and limiter.statistics().waiting == left[0]
            and clock.sleepers == len(timed) >= 1
            and all(at > now and not event.is_set() for at, event in timed)
        )
        if not quiet:
            time.sleep(1e-5)  # a woken worker has not run yet: nobody signals that
        elif now >= seconds:
            stop.set()
            limiter.reset()  # the queued workers are admitted at once, see stop and leave
        else:
            clock.advance(min(at for at, _ in timed) - now)
    for thread in threads:
        thread.join(5)
    return timeline


def utilisation(timeline: Timeline, limit: Limit, start: float, end: float) -> float:
    """Units of ``limit``'s dimension admitted in ``[start, end)`` over what the limit
    allows in that span."""
    admitted = sum(u.get(limit.dimension, 0) for t, u in timeline if start <= t < end)
    return admitted / (limit.amount * (end - start) / limit.period)


def settled(asked: Mapping[str, int], keep: float) -> dict[str, int]:
    """``asked`` scaled by ``keep`` (0..1), rounded down: what a call used of it."""
    return {d: int(n * keep) for d, n in asked.items()}
