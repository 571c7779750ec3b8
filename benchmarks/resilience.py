"""otpy.resilience vs bare limits / pybreaker: acquire overhead, utilisation of RPM + TPM
limits (simulated minutes), breaker concurrency, guard() overhead.

Run from the repo root: ``.venv/bin/python benchmarks/resilience.py [--quick]``. The Redis
rows start a throwaway redis-server on a free port (skipped, with the reason, without one).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import math
import os
import platform
import random
import threading
import time
from typing import Literal

import limits
import pybreaker
from _harness import Op, time_ops
from _harness import row as _row
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import SlidingWindowCounterRateLimiter

from otpy.resilience import CircuitBreaker, Limit, RateLimiter, RetryPolicy, guard
from otpy.testing import FakeClock, RedisUnavailable, redis_server

perf = time.perf_counter
HUGE = "1000000000/minute"  # every hit is admitted
Strategy = Literal["sliding-window-counter", "moving-window"]
EPOCH = 28_333_334 * 60.0  # a multiple of 60: the fake clock's minute windows start at t=0
LIMITS = {"requests": 60, "tokens": 20_000}  # per minute
WORKERS, QUANTUM = 8, 0.05


def row(name: str, *cells: str, title: str = "") -> None:
    _row(name, *cells, title=title, w=44, cell=10)


def table(title: str, kinds: dict[str, tuple[Op, str]], n: int, rounds: int) -> None:
    us = time_ops({k: fn for k, (fn, _) in kinds.items()}, n, rounds)
    row("", "us/op", "vs base", "+us", title=f"{title} ({n:,} ops x {rounds} rounds, median)")
    for name, (_, base) in kinds.items():
        row(name, f"{us[name]:.2f}", f"{us[name] / us[base]:.2f}x", f"{us[name] - us[base]:+.2f}")


def acquire_kinds(storage: Storage, uri: str) -> dict[str, tuple[Op, str]]:
    """Bare limits hits on ``storage`` and otpy limiters on ``uri``: {name: (op, baseline)}."""
    item, cost = limits.parse(HUGE), {"requests": 1, "tokens": 100}
    bare = SlidingWindowCounterRateLimiter(storage)
    one = RateLimiter([Limit("requests", HUGE)], uri, name="one")
    two = RateLimiter([Limit("requests", HUGE), Limit("tokens", HUGE)], uri, name="two")
    b1, b2 = "bare limits hit()", "bare limits 2 x hit()"
    return {
        b1: (lambda: bare.hit(item, "k"), b1),
        "otpy acquire()": (one.acquire, b1),
        "otpy try_acquire()": (one.try_acquire, b1),
        b2: (lambda: (bare.hit(item, "r"), bare.hit(item, "t", cost=100)), b2),
        "otpy acquire(requests+tokens)": (lambda: two.acquire(cost), b2),
        "otpy acquire(requests+tokens) + settle()": (
            lambda: two.acquire(cost).settle({"tokens": 60}), b2),
    }  # fmt: skip


class SimClock(FakeClock):
    """A FakeClock that lists its timed waits (deadline, event), so the driver never moves
    time past a waiter's deadline, nor while a woken waiter has not run yet."""

    def __init__(self) -> None:
        super().__init__(epoch=EPOCH)
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


def simulate(strategy: Strategy, minutes: int) -> tuple[list[tuple[float, int]], int, float]:
    """8 workers saturate the limiter for ``minutes`` of fake time. Returns each admission's
    (fake time, settled tokens), the driver's steps and the real seconds taken."""
    clock, horizon = SimClock(), minutes * 60.0
    rates = [Limit(d, f"{n}/minute", strategy) for d, n in LIMITS.items()]
    limiter = RateLimiter(rates, clock=clock)
    log: list[tuple[float, int]] = []
    stop, lock, left = threading.Event(), threading.Lock(), [WORKERS]

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while True:
                estimate = rng.randint(200, 1200)
                permit = limiter.acquire({"requests": 1, "tokens": estimate})
                now = clock.monotonic()  # the driver does not advance while we are not queued
                if stop.is_set():
                    permit.release()
                    return
                used = round(estimate * rng.uniform(0.5, 1.0))
                permit.settle({"tokens": used})
                log.append((now, used))
        finally:
            with lock:
                left[0] -= 1

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(WORKERS)]
    for t in threads:
        t.start()
    steps, t0 = 0, perf()
    while left[0]:
        if perf() - t0 > 600:
            raise TimeoutError(f"{strategy}: the simulation is stuck at t={clock.monotonic()}")
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
            time.sleep(1e-5)
        elif now >= horizon:
            stop.set()
            limiter.reset()  # the queued workers are admitted at once, see stop and leave
        else:
            clock.advance(min(QUANTUM, min(at for at, _ in timed) - now, horizon - now))
            steps += 1
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads), "a worker did not exit"
    return log, steps, perf() - t0


def running(events: list[tuple[float, int]], span: float) -> list[int]:
    """The usage in (t - span, t] at each admission t (events in time order)."""
    out, lo, total = [], 0, 0
    for t, used in events:
        total += used
        while events[lo][0] <= t - span:
            total -= events[lo][1]
            lo += 1
        out.append(total)
    return out


def violations(events: list[tuple[float, int]], limit: int) -> dict[str, float]:
    """Admissions (fake time t, settled usage) that break each rule; peaks of 60 s and 1 s."""
    windows: dict[int, int] = {}
    sliding = bucket = 0
    level, last = float(limit), 0.0
    for t, used in events:
        now = EPOCH + t  # limits' sliding-window-counter arithmetic, as ClockedMemoryStorage
        w = int(now / 60)
        windows[w] = windows.get(w, 0) + used
        weight = 1 - (((now - 60) / 60) % 1)
        sliding += math.floor(windows.get(w - 1, 0) * weight + windows[w]) > limit
        level = min(limit, level + (t - last) * limit / 60)  # bucket: capacity limit, full at 0
        last = t
        if used > level + 1e-9:
            bucket += 1  # a provider would refuse it (and it uses nothing)
        else:
            level -= used
    in_60s = running(events, 60)
    in_1s = [n for (t, _), n in zip(events, running(events, 1), strict=True) if t >= 60]
    return {"sliding": sliding, "interval": sum(n > limit for n in in_60s), "bucket": bucket,
            "max60": max(in_60s) / limit, "max1": max(in_1s, default=0) / limit}  # fmt: skip


def bench_utilisation(minutes: int) -> None:
    print(f"\n2. Utilisation, demand > RPM {LIMITS['requests']} and TPM {LIMITS['tokens']:,}: "
          f"{WORKERS} threads, {minutes} fake minutes, steady state = after minute 1")  # fmt: skip
    print("   cost requests 1 + tokens U(200,1200), settled to U(0.5,1.0) of it; violations of:")
    print("   win = sliding-counter rule, 60s = any 60 s interval, tb = token bucket (cap=limit)")
    print("   max 60s / max 1s: the most used in any 60 s / 1 s interval (1 s: after minute 1)")
    row("", "limit/min", "admit/min", "util %", "max 60s", "max 1s", "viol win", "viol 60s",
        "viol tb", w=34)  # fmt: skip
    strategies: tuple[Strategy, ...] = ("sliding-window-counter", "moving-window")
    for strategy in strategies:
        log, steps, real = simulate(strategy, minutes)
        span = (minutes - 1) * 60.0
        utils: dict[str, float] = {}
        bad = 0
        for dim, limit in LIMITS.items():
            events = [(t, 1 if dim == "requests" else used) for t, used in log]
            steady = sum(u for t, u in events if 60 <= t < span + 60) / (span / 60)
            utils[dim] = steady / limit
            v = violations(events, limit)
            bad += int(v["bucket"] + (v["sliding"] if strategy[0] == "s" else v["interval"]))
            cells = f"{steady:,.0f}", f"{utils[dim]:.1%}", f"{v['max60']:.1%}", f"{v['max1']:.1%}"
            counts = [str(int(v[k])) for k in ("sliding", "interval", "bucket")]
            if strategy == "moving-window":
                counts[0] = "-"  # the sliding-counter rule is not this strategy's
            row(f"{strategy} {dim}", f"{limit:,}", *cells, *counts, w=34)
        binding = max(utils, key=lambda d: utils[d])
        met = utils[binding] >= 0.95 and bad == 0
        print(f"  -> {len(log):,} admissions, {steps:,} clock steps, {real:.1f} s real; binding: "
              f"{binding} {utils[binding]:.1%}, violations of its rule + token bucket: {bad}: "
              f"{'met' if met else 'NOT MET'}")  # fmt: skip
    print("  goal: >= 95% of the binding limit, 0 violations")


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
    row("", "calls", "wall s", "x 100 ms", title=title)
    for name, call, calls in [
        ("no breaker (baseline)", work, n),
        ("otpy CircuitBreaker.call", lambda: ours.call(work), n),
        ("pybreaker.CircuitBreaker.call", lambda: theirs.call(work), n_py),
    ]:
        s = wall(call, calls)
        row(name, str(calls), f"{s:.3f}", f"{s / 0.1:.1f}x")
    print(f"  goal: otpy < 2x 100 ms; pybreaker holds its lock through a call: ~calls x 100 ms"
          f"{' (--quick: pybreaker with 8 calls)' if n_py < n else ''}")  # fmt: skip


def bench_guard(n: int, rounds: int) -> None:
    def fn() -> int:
        return 1

    limiter, retry = RateLimiter([Limit("requests", HUGE)]), RetryPolicy(max_attempts=3)
    full = guard(fn, name="g", limiter=limiter, breaker=CircuitBreaker("g"), retry=retry)
    timed = guard(fn, name="t", limiter=limiter, breaker=CircuitBreaker("t"), retry=retry,
                  timeout=5.0)  # fmt: skip
    ours, theirs = CircuitBreaker("b"), pybreaker.CircuitBreaker(name="b")
    base = "direct call fn()"
    table("4. guard() overhead per call", {
        base: (fn, base),
        "pybreaker.CircuitBreaker.call(fn)": (lambda: theirs.call(fn), base),
        "otpy CircuitBreaker.call(fn)": (lambda: ours.call(fn), base),
        "guard(fn), no limiter/breaker/retry": (guard(fn, name="none"), base),
        "guard(limiter, breaker, retry)": (full, base),
        "guard(limiter, breaker, retry, timeout)": (timed, base),
    }, n, rounds)  # fmt: skip
    print("  (with a timeout every call runs in a thread of its own)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run of a few seconds")
    quick = parser.parse_args().quick
    v = importlib.metadata.version
    print(
        f"otpy resilience benchmark{' (--quick)' if quick else ''}: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, limits {v('limits')}, "
        f"pybreaker {v('pybreaker')}, load average {os.getloadavg()[0]:.2f}"
    )
    t = perf()
    n, rounds = (2_000, 3) if quick else (20_000, 5)
    table("1a. Acquire overhead, memory", acquire_kinds(MemoryStorage(), "memory://"), n, rounds)
    try:
        with redis_server() as url:
            title = f"1b. Acquire overhead, Redis on loopback ({url})"
            table(title, acquire_kinds(RedisStorage(url), url), n // 10, rounds)
    except RedisUnavailable as exc:
        print(f"\n1b. Acquire overhead, Redis: skipped ({exc})")
    bench_utilisation(10 if quick else 30)
    bench_breaker(32, 8 if quick else 32)
    bench_guard(1_000 if quick else 5_000, 3 if quick else 5)
    extra = [th.name for th in threading.enumerate() if th is not threading.main_thread()]
    print(f"\ntotal {perf() - t:.1f} s, load average {os.getloadavg()[0]:.2f}, threads left: "
          f"{extra or 'none'}")  # fmt: skip


if __name__ == "__main__":
    main()
