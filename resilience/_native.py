"""Where a limiter's native buckets (``rolling-window``, ``token-bucket``) live.

A :class:`Ledger` reserves a cost in several buckets at once, all or none, in one atomic
step: under one lock in memory (:class:`MemoryLedger`), in one Lua script on Redis
(:class:`~otpy.resilience._redis_ledger.RedisLedger`). A refusal says which bucket refused
first and how long until every bucket would have room, so a waiter needs no second look.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, NamedTuple

from otpy.clock import Clock
from otpy.resilience._bucket import Bucket
from otpy.resilience._ledger import Buckets

__all__ = ["Ledger", "MemoryLedger", "Took"]

Costs = Sequence[tuple[Bucket, int]]


class Took(NamedTuple):
    """What :meth:`Ledger.take` did: ``wheres`` (one per bucket, for refunds) when it
    reserved, else None with the first refusing bucket's index and the seconds until every
    bucket has room. ``at`` is when it was decided, on the ledger's time base."""

    wheres: list[Any] | None
    blocking: int
    wait: float
    at: float


class Ledger(ABC):
    """The operations a :class:`RateLimiter` runs on its native buckets."""

    shared = False  # True when other processes see the same buckets

    @abstractmethod
    def take(self, costs: Costs) -> Took:
        """Reserve every ``(bucket, units)`` or none."""

    @abstractmethod
    def wait(self, costs: Costs) -> float:
        """Seconds until every bucket has room for its units (0: now)."""

    @abstractmethod
    def refund(self, bucket: Bucket, where: Any, reserved: int, units: int) -> int:
        """Give back up to ``units`` of a reservation of ``reserved`` made at ``where``;
        returns how much was given back (never more than the reservation still holds)."""

    @abstractmethod
    def charge(self, bucket: Bucket, units: int) -> None:
        """Record ``units`` used now, whatever the limit."""

    @abstractmethod
    def level(self, bucket: Bucket) -> float:
        """Units the bucket counts now."""

    @abstractmethod
    def clear(self, bucket: Bucket) -> None:
        """Forget the bucket."""


class MemoryLedger(Ledger):
    """Native buckets in this process, on ``buckets`` (shared by every limiter of one
    :class:`ClockedMemoryStorage`), timed by ``clock.monotonic`` in microseconds."""

    def __init__(self, buckets: Buckets, clock: Clock) -> None:
        self.buckets = buckets
        self.clock = clock

    def _now(self) -> int:
        """The clock in whole µs, rounded down: what has left a window has left it."""
        return math.floor(self.clock.monotonic() * 1_000_000)

    def _stamp(self) -> tuple[int, int]:
        """The clock rounded down and up (units are recorded at the later: time never
        rounds in favour of admitting)."""
        t = self.clock.monotonic() * 1_000_000
        return math.floor(t), math.ceil(t)

    def _wait(self, costs: Costs, now: int, start: int) -> int:
        """The longest wait (µs) of the buckets from ``start`` on; under the lock."""
        b, most = self.buckets, 0
        for bucket, units in costs[start:]:
            if bucket.rolling:
                wait = b.log(bucket.native_key, bucket.period_us).wait(now, bucket.amount, units)
            else:
                state = b.bucket(bucket.native_key, now)
                wait = state.wait(now, bucket.amount, bucket.period_us, units)
            most = max(most, wait)
        return most

    def take(self, costs: Costs) -> Took:
        now, stamp = self._stamp()
        b = self.buckets
        with b.lock:
            states: list[Any] = []
            for i, (bucket, units) in enumerate(costs):
                if bucket.rolling:
                    state: Any = b.log(bucket.native_key, bucket.period_us)
                    refused = state.wait(now, bucket.amount, units)
                else:
                    state = b.bucket(bucket.native_key, now)
                    refused = state.wait(now, bucket.amount, bucket.period_us, units)
                if refused:
                    wait = max(refused, self._wait(costs, now, i + 1))
                    return Took(None, i, wait / 1e6, now / 1e6)
                states.append(state)
            wheres = [
                state.add(stamp, units) if bucket.rolling else state.add(units)
                for state, (bucket, units) in zip(states, costs, strict=True)
            ]
        return Took(wheres, -1, 0.0, now / 1e6)

    def wait(self, costs: Costs) -> float:
        now = self._now()
        with self.buckets.lock:
            return self._wait(costs, now, 0) / 1e6

    def refund(self, bucket: Bucket, where: Any, reserved: int, units: int) -> int:
        now, b = self._now(), self.buckets
        with b.lock:
            if bucket.rolling:
                return b.log(bucket.native_key, bucket.period_us).refund(now, where, units)
            state = b.bucket(bucket.native_key, now)
            return state.refund(now, bucket.amount, bucket.period_us, where, reserved, units)

    def charge(self, bucket: Bucket, units: int) -> None:
        (now, stamp), b = self._stamp(), self.buckets
        with b.lock:
            if bucket.rolling:
                b.log(bucket.native_key, bucket.period_us).add(stamp, units)
            else:
                state = b.bucket(bucket.native_key, now)
                state.drain(now, bucket.amount, bucket.period_us)
                state.add(units)

    def level(self, bucket: Bucket) -> float:
        now, b = self._now(), self.buckets
        with b.lock:
            if bucket.rolling:
                return float(b.log(bucket.native_key, bucket.period_us).level(now))
            return b.bucket(bucket.native_key, now).drain(now, bucket.amount, bucket.period_us)

    def clear(self, bucket: Bucket) -> None:
        self.buckets.clear(bucket.native_key)
