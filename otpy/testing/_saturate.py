"""Drive a rate limiter to saturation on a fake clock: ``saturate`` runs worker threads
that acquire back to back and jumps a :class:`TimedClock` to the next waiter's deadline
whenever every worker is queued, so minutes of load take a fraction of a second.

A timeline is a list of ``(time, {dimension: units})``: each admission at the time it was
admitted, with the units it kept (reserved less what its settle gave back).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from otpy.testing._clock import FakeClock

if TYPE_CHECKING:
    from otpy.resilience import RateLimiter

__all__ = ["TimedClock", "Timeline", "saturate"]

Timeline: TypeAlias = list[tuple[float, dict[str, int]]]


class TimedClock(FakeClock):
    """A FakeClock that knows the deadlines of the timed waits, so a driver can move time
    straight to the next one once every worker is blocked."""

    def __init__(self, epoch: float = 1_700_000_040.0) -> None:
        super().__init__(epoch=epoch)
        self.lock = threading.Lock()
        self.timed: dict[int, tuple[float, threading.Event]] = {}

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """:meth:`FakeClock.wait`, with a timed wait's deadline and event listed in
        ``timed`` (under ``lock``) while it waits."""
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
        if time.monotonic() >= give_up:
            raise TimeoutError(f"the limiter's load is stuck at t={clock.monotonic()}")
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
