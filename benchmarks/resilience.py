"""otpy.resilience against bare limits and pybreaker: acquire cost as the window fills
(memory and Redis), the most any rolling window held under saturation, guard() and the
breaker per call, and concurrent calls through one breaker. Every table has its goal.

Run from the repo root: ``.venv/bin/python benchmarks/resilience.py [--quick]``. The Redis
rows start a throwaway redis-server on a free port (skipped, with the reason, without one).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import limits
import pybreaker
from _harness import Op, row, threads_left, time_ops
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from otpy.resilience import (
    CircuitBreaker,
    ClockedMemoryStorage,
    Limit,
    RateLimiter,
    RetryPolicy,
    call_with_timeout,
    guard,
)
from otpy.testing import FakeClock, RedisUnavailable, TimedClock, redis_server, saturate

perf = time.perf_counter
EPOCH = 28_333_334 * 60.0  # a multiple of 60: the fake clock's minute windows start at t=0
FILLS = (100, 10_000, 1_000_000)
LIMITS = {"requests": 60, "tokens": 20_000}  # per minute, for the saturation runs
WORKERS = 16


class StepClock(FakeClock):
    """A fake clock the benchmark sets by hand (``now``), with no lock to read it."""

    def __init__(self) -> None:
        super().__init__(epoch=EPOCH)
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return EPOCH + self.now


def filled(strategy: Any, units: int, uri: str = "") -> Op:
    """An acquire of one token on a window that holds ``units`` and stays that full.

    In memory the fill is spread over the last hour of a fake clock, and each acquire moves
    the clock on by 1/units hour (moving-window is filled one unit per hit: limits stores
    one entry per unit). On Redis, whose clock is the server's, each op is an acquire and
    a release (the provider path: reserve, then settle), which leaves the fill as it was."""
    clock = StepClock()
    name = f"fill-{strategy}-{units}-{random.random()}"
    item = Limit("tokens", f"{2 * units}/hour", strategy)
    if uri:
        limiter = RateLimiter([item], uri, name=name)
    else:
        limiter = RateLimiter([item], ClockedMemoryStorage(clock), clock=clock, name=name)
    hits = units if strategy == "moving-window" else min(units, 1000)
    for _ in range(hits):
        clock.now += 3600 / hits
        limiter.acquire({"tokens": units // hits})
    step, one = 3600 / units, {"tokens": 1}

    def op() -> None:
        clock.now += step
        limiter.acquire(one)

    return (lambda: limiter.acquire(one).release()) if uri else op


def bench_fill(n: int, rounds: int, quick: bool) -> None:
    bare = SlidingWindowCounterRateLimiter(MemoryStorage())
    item, clock = limits.parse("1000000000/hour"), StepClock()

    def hit() -> None:
        clock.now += 1e-6  # the same clock step as the otpy rows
        bare.hit(item, "k")

    kinds: dict[str, Op] = {"bare limits hit() (baseline)": hit}
    for strategy in ("rolling-window", "token-bucket", "sliding-window-counter"):
        for units in FILLS:
            kinds[f"{strategy}, {units:,} in the window"] = filled(strategy, units)
    us = time_ops(kinds, n, rounds)
    base = us["bare limits hit() (baseline)"]
    title = f"1a. acquire() as the window fills, memory ({n:,} ops x {rounds} rounds, median)"
    row("", "us/op", "vs bare", "goal", title=title, w=46)
    for name, value in us.items():
        goal = "<=2.00x" if name.startswith(("rolling", "token")) else "-"
        row(name, f"{value:.2f}", f"{value / base:.2f}x", goal, w=46)
    moving = (100, 10_000) if not quick else (100, 1_000)
    slow = {f"moving-window, {u:,} in the window": filled("moving-window", u) for u in moving}
    for name, value in time_ops(slow, max(50, n // 20), rounds, warmup=20).items():
        row(name, f"{value:.2f}", f"{value / base:.2f}x", "(before)", w=46)
    print("  rolling-window is the default; sliding-window-counter (the old default) is flat but")
    print("  inexact (see 2.); moving-window (the old exact one) grows with the entries held")


def bench_redis(n: int, rounds: int) -> None:
    try:
        with redis_server() as url:
            bare = SlidingWindowCounterRateLimiter(RedisStorage(url))
            item = limits.parse("1000000000/hour")
            base = "2 bare limits hit() (baseline)"
            kinds: dict[str, Op] = {base: lambda: (bare.hit(item, "k"), bare.hit(item, "k"))}
            for strategy in ("rolling-window", "token-bucket"):
                for units in (100, 1_000_000):
                    kinds[f"{strategy}, {units:,} in the window"] = filled(strategy, units, url)
            two = RateLimiter([Limit("requests", "1000000000/hour"),
                               Limit("tokens", "1000000000/hour")], url, name="two")  # fmt: skip
            cost = {"requests": 1, "tokens": 100}
            kinds["requests + tokens"] = lambda: two.acquire(cost).settle({"tokens": 60})
            us = time_ops(kinds, n, rounds, warmup=100)
    except RedisUnavailable as exc:
        print(f"\n1b. acquire() on Redis: skipped ({exc})")
        return
    title = f"1b. acquire() + settle() on Redis: two scripts ({n:,} ops x {rounds}, median)"
    row("", "us/op", "vs base", "goal", title=title, w=46)
    for name, value in us.items():
        goal = "<=2.00x" if "window" in name else "-"
        row(name, f"{value:.1f}", f"{value / us[base]:.2f}x", goal, w=46)


def simulate(strategy: Any, minutes: int) -> tuple[list[tuple[float, int]], float]:
    """WORKERS threads saturate RPM + TPM limits for ``minutes`` of fake time, each call
    settled to a random share of its estimate (``otpy.testing.saturate``). Returns each
    admission's (fake time, tokens kept) and the real seconds taken."""
    clock = TimedClock(epoch=EPOCH)
    rates = [Limit(d, f"{n}/minute", strategy) for d, n in LIMITS.items()]
    limiter = RateLimiter(rates, clock=clock)
    t0 = perf()
    timeline = saturate(
        limiter, clock, workers=WORKERS, seconds=minutes * 60.0,
        cost=lambda rng: {"requests": 1, "tokens": rng.randint(200, 1200)},
        used=lambda rng, asked: {"tokens": round(asked["tokens"] * rng.uniform(0.5, 1))},
        real_timeout=600,
    )  # fmt: skip
    return sorted((t, kept["tokens"]) for t, kept in timeline), perf() - t0


def worst_window(events: list[tuple[float, int]], span: float) -> int:
    """The most used in any window (t - span, t] (events in time order)."""
    worst, lo, total = 0, 0, 0
    for t, used in events:
        total += used
        while events[lo][0] <= t - span:
            total -= events[lo][1]
            lo += 1
        worst = max(worst, total)
    return worst


def over_bucket(events: list[tuple[float, int]], limit: int) -> int:
    """Admissions a provider's token bucket (capacity = limit, refilled at limit a minute,
    starting full) would have refused."""
    level, last, bad = 0.0, 0.0, 0
    for t, used in events:
        level = max(0.0, level - (t - last) * limit / 60)
        last = t
        level += used
        bad += level > limit + 1e-6
    return bad


def bench_saturation(minutes: int) -> None:
    print(f"\n2. Saturation: {WORKERS} threads, demand > RPM {LIMITS['requests']} and TPM "
          f"{LIMITS['tokens']:,}, {minutes} fake minutes; cost 1 request + U(200,1200) tokens, "
          "settled to U(0.5,1) of it")  # fmt: skip
    print(
        "   worst 60 s = the most admitted in any rolling 60 s / the limit; over bucket = "
        "admissions a provider's token bucket of the same rate would refuse"
    )
    row("", "admit/min", "util %", "worst 60s", "over bucket", "goal", w=34, cell=12)
    for strategy in ("rolling-window", "token-bucket", "sliding-window-counter", "moving-window"):
        log, real = simulate(strategy, minutes)
        horizon = minutes * 60.0  # what the stop let through at the end is not counted
        utils = []
        for dim, limit in LIMITS.items():
            events = [(t, 1 if dim == "requests" else kept) for t, kept in log if t < horizon]
            steady = sum(u for t, u in events if t >= 60) / (minutes - 1)  # after minute 1
            utils.append(steady / limit)
            ratio = worst_window(events, 60) / limit
            goal = {"rolling-window": "<=1.00x", "token-bucket": "0 over"}.get(strategy, "-")
            row(f"{strategy} {dim}", f"{steady:,.0f}", f"{steady / limit:.1%}", f"{ratio:.2f}x",
                str(over_bucket(events, limit)), goal, w=34, cell=12)  # fmt: skip
        print(f"  -> {len(log):,} admissions in {real:.1f} s; binding limit used "
              f"{max(utils):.1%} (goal >= 95%)")  # fmt: skip


def bench_breaker(n: int, n_py: int) -> None:
    def work() -> None:
        time.sleep(0.1)

    def wall(call: Op, n: int) -> float:
        barrier = threading.Barrier(n + 1)
        threads = [threading.Thread(target=lambda: (barrier.wait(), call())) for _ in range(n)]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = perf()
        for t in threads:
            t.join()
        return perf() - t0

    ours, theirs = CircuitBreaker("bench"), pybreaker.CircuitBreaker(name="bench")
    title = "3. Concurrent calls of a 100 ms function through one breaker"
    row("", "calls", "wall s", "x 100 ms", "goal", title=title)
    for name, call, calls, goal in [
        ("no breaker (baseline)", work, n, "-"),
        ("otpy CircuitBreaker.call", lambda: ours.call(work), n, "<2x"),
        ("pybreaker.CircuitBreaker.call", lambda: theirs.call(work), n_py, "-"),
    ]:
        s = wall(call, calls)
        row(name, str(calls), f"{s:.3f}", f"{s / 0.1:.1f}x", goal)
    print("  pybreaker holds its lock through a call: ~calls x 100 ms")


def bench_guard(n: int, rounds: int) -> None:
    def fn() -> int:
        return 1

    def thread_per_call() -> None:  # what the timeout cost before: a thread of its own
        t = threading.Thread(target=fn, daemon=True)
        t.start()
        t.join()

    limiter, retry = RateLimiter([Limit("requests", "1000000000/minute")]), RetryPolicy()
    full = guard(fn, name="g", limiter=limiter, breaker=CircuitBreaker("g"), retry=retry)
    timed = guard(fn, name="t", limiter=limiter, breaker=CircuitBreaker("t"), retry=retry,
                  timeout=5.0)  # fmt: skip
    ours, theirs = CircuitBreaker("b"), pybreaker.CircuitBreaker(name="b")
    kinds: dict[str, tuple[Op, str, Callable[[float, dict[str, float]], bool] | None]] = {
        "direct call fn()": (fn, "-", None),
        "pybreaker.CircuitBreaker.call(fn)": (lambda: theirs.call(fn), "-", None),
        "otpy CircuitBreaker.call(fn)": (lambda: ours.call(fn), "<=2x pybreaker",
            lambda v, us: v <= 2 * us["pybreaker.CircuitBreaker.call(fn)"]),
        "call_with_timeout(fn, 5 s)": (lambda: call_with_timeout(fn, timeout=5.0), "-", None),
        "a thread per call (the old timeout)": (thread_per_call, "-", None),
        "guard(fn), nothing else": (guard(fn, name="none"), "-", None),
        "guard(limiter, breaker, retry)": (full, "-", None),
        "guard(limiter, breaker, retry, timeout)": (timed, "<30 us", lambda v, us: v < 30),
    }  # fmt: skip
    us = time_ops({k: fn for k, (fn, _, _) in kinds.items()}, n, rounds)
    title = f"4. Per call, a function that returns at once ({n:,} ops x {rounds} rounds, median)"
    row("", "us/op", "goal", "met", title=title, cell=16)
    for name, (_, goal, met) in kinds.items():
        verdict = "-" if met is None else "yes" if met(us[name], us) else "NO"
        row(name, f"{us[name]:.2f}", goal, verdict, cell=16)
    print("  a timed call runs on a pooled runner thread; the caller waits for it on a lock")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every section in a few seconds")
    quick = parser.parse_args().quick
    v = importlib.metadata.version
    print(
        f"otpy resilience benchmark{' (--quick)' if quick else ''}: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, limits {v('limits')}, "
        f"pybreaker {v('pybreaker')}, load average {os.getloadavg()[0]:.2f}"
    )
    t = perf()
    n, rounds = (300, 1) if quick else (20_000, 5)
    bench_fill(n, rounds, quick)
    bench_redis(n // 5 if quick else 2_000, rounds)
    bench_saturation(2 if quick else 30)
    bench_breaker(32, 8 if quick else 32)
    bench_guard(1_000 if quick else 10_000, rounds)
    print(f"\ntotal {perf() - t:.1f} s, load average {os.getloadavg()[0]:.2f}, threads left: "
          f"{threads_left()}")  # fmt: skip


if __name__ == "__main__":
    main()
