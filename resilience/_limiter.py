"""RateLimiter: several buckets at once, all or none, waiting in FIFO order."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from limits.storage import Storage

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import (
    ConfigurationError,
    CostExceedsLimitError,
    PermitError,
    RateLimitTimeout,
)
from otpy.resilience._bucket import Bucket, Limit
from otpy.resilience._stores import REJECTED, Store, store_for

__all__ = ["BucketStats", "LimiterStats", "Permit", "RateLimiter"]

_MIN_WAIT = 1e-3  # a head that was refused looks again after at least this long


@dataclass(frozen=True)
class BucketStats:
    """One bucket as it is now."""

    dimension: str
    limit: int
    period: int
    strategy: str
    level: float  # units the window counts now (weighted for a sliding counter)

    @property
    def remaining(self) -> int:
        return max(0, self.limit - int(self.level))


@dataclass(frozen=True)
class LimiterStats:
    """A snapshot of a :class:`RateLimiter` (see ``RateLimiter.statistics``)."""

    name: str
    buckets: tuple[BucketStats, ...]
    waiting: int  # callers queued in acquire
    paused_for: float  # seconds left of a pause_for
    acquired: int  # permits granted
    waited: int  # permits that had to wait
    wait_seconds: float  # total time permits waited
    refused: int  # try_acquire refusals
    timeouts: int  # acquire calls that timed out
    refunded: Mapping[str, int] = field(default_factory=dict)  # per dimension
    charged: Mapping[str, int] = field(default_factory=dict)  # per dimension
    refunds_dropped: Mapping[str, int] = field(default_factory=dict)  # storage could not
    aligned: Mapping[str, int] = field(default_factory=dict)  # charged by align()


class Permit:
    """A reservation in every bucket of a limiter. ``settle(actual)`` corrects it to the
    usage the provider reported; ``release()`` gives it all back (the call never ran).

    Usable as a context manager; leaving the block changes nothing (a reservation that
    is neither settled nor released stands as made).
    """

    def __init__(
        self,
        limiter: RateLimiter,
        cost: Mapping[str, int],
        taken: list[tuple[Bucket, Any, int]],
        waited: float,
    ) -> None:
        self.limiter = limiter
        self.cost: Mapping[str, int] = dict(cost)
        self.waited = waited
        self._taken = taken
        self._settled = False
        self._lock = threading.Lock()

    @property
    def settled(self) -> bool:
        return self._settled

    def settle(self, actual: Mapping[str, int]) -> dict[str, int]:
        """Correct the reservation to ``actual`` usage per dimension: the difference is
        refunded (less used) or charged (more used, even past the limit). Dimensions not
        named keep their reservation. Returns the change applied per dimension."""
        for dimension, used in actual.items():
            if not isinstance(used, int) or isinstance(used, bool) or used < 0:
                raise ConfigurationError(
                    f"settle: usage of {dimension!r} must be an int >= 0, not {used!r}"
                )
        with self._lock:
            if self._settled:
                raise PermitError(f"permit of {self.limiter.name!r} is already settled")
            self._settled = True
        return self.limiter._adjust(self._taken, actual)

    def release(self) -> None:
        """Give the whole reservation back: the call it was for was never made."""
        self.settle({dimension: 0 for dimension in self.cost})

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __repr__(self) -> str:
        return f"<Permit {self.limiter.name} {dict(self.cost)} waited={self.waited:.3f}s>"


class _Waiter:
    __slots__ = ("asked", "blocking", "costs", "event")

    def __init__(self, asked: dict[str, int], costs: list[tuple[Bucket, int]]) -> None:
        self.asked = asked  # the cost as the caller gave it
        self.costs = costs  # what it takes from each bucket
        self.event = threading.Event()
        self.blocking: list[str] = []


class RateLimiter:
    """Several rate limits held at once, e.g. requests/minute and tokens/minute.

    ``acquire(cost)`` reserves ``cost`` in every bucket or in none, waiting (in the
    calling thread) until all buckets have room: callers are admitted in FIFO order,
    so a large request is not starved by a stream of small ones. ``storage`` is a limits
    storage URI: ``memory://`` (this process; windows move with ``clock``) or
    ``redis://host:port`` (shared by every process using the same name and limits;
    windows then follow the server's clock and ``clock`` only paces the waiting).

    Dimensions a cost names that no bucket limits are not limited; a cost of a
    dimension omitted from ``cost`` is 0. The default cost is one request.
    """

    def __init__(
        self,
        limits: Iterable[Limit | tuple[str, str]],
        storage: str | Storage = "memory://",
        *,
        clock: Clock | None = None,
        name: str = "default",
    ) -> None:
        self.name = name
        self.clock = clock or SYSTEM_CLOCK
        parsed = [lim if isinstance(lim, Limit) else Limit(*lim) for lim in limits]
        if not parsed:
            raise ConfigurationError(f"rate limiter {name!r}: give at least one Limit")
        seen: set[tuple[str, int, int]] = set()
        for lim in parsed:
            ident = (lim.dimension, lim.amount, lim.period)
            if ident in seen:
                raise ConfigurationError(f"rate limiter {name!r}: {lim} is given twice")
            seen.add(ident)
        self.limits: tuple[Limit, ...] = tuple(parsed)
        self._buckets = tuple(Bucket(lim, ("otpy", name, lim.dimension)) for lim in parsed)
        try:
            self._store: Store = store_for(storage, self.clock)
        except Exception as exc:  # limits raises its own errors for URIs and drivers
            raise ConfigurationError(
                f"rate limiter {name!r}: storage {storage!r} cannot be used: {exc}"
                + (" (install otpy[redis])" if "redis" in str(storage) else "")
            ) from exc
        self._lock = threading.Lock()
        self._queue: deque[_Waiter] = deque()
        self._paused_until = float("-inf")
        self._stats: dict[str, Any] = {
            "acquired": 0, "waited": 0, "wait_seconds": 0.0, "refused": 0, "timeouts": 0
        }  # fmt: skip
        self._refunded: dict[str, int] = {}
        self._charged: dict[str, int] = {}
        self._dropped: dict[str, int] = {}
        self._aligned: dict[str, int] = {}

    @property
    def shared(self) -> bool:
        """Whether other processes see these buckets (a shared storage)."""
        return self._store.shared

    @property
    def dimensions(self) -> frozenset[str]:
        return frozenset(lim.dimension for lim in self.limits)

    # -- acquiring ------------------------------------------------------------------

    def _waiter(self, cost: Mapping[str, int] | None) -> _Waiter:
        """A checked request for ``cost``: what it takes from each bucket."""
        asked = {"requests": 1} if cost is None else dict(cost)
        for dimension, units in asked.items():
            if not isinstance(units, int) or isinstance(units, bool) or units < 0:
                raise ConfigurationError(
                    f"rate limiter {self.name!r}: cost of {dimension!r} must be an int >= 0, "
                    f"not {units!r}"
                )
        costs = []
        for bucket in self._buckets:
            units = asked.get(bucket.dimension, 0)
            if units > bucket.amount:
                raise CostExceedsLimitError(self.name, bucket.dimension, units, str(bucket.limit))
            if units:
                costs.append((bucket, units))
        return _Waiter(asked, costs)

    def _admit_now(self, waiter: _Waiter, now: float) -> Permit | None:
        """Under the lock: reserve at once if nobody is queued and no pause runs."""
        if self._queue or now < self._paused_until:
            return None
        taken = self._reserve(waiter)
        if taken is None:
            return None
        self._stats["acquired"] += 1
        return Permit(self, waiter.asked, taken, 0.0)

    def acquire(
        self, cost: Mapping[str, int] | None = None, timeout: float | None = None
    ) -> Permit:
        """Reserve ``cost`` (e.g. ``{"requests": 1, "tokens": 1200}``) in every bucket,
        waiting until all have room; queued callers go first.

        Raises :class:`CostExceedsLimitError` at once for a cost larger than a bucket's
        limit, and :class:`RateLimitTimeout` (nothing reserved) if not admitted within
        ``timeout`` seconds (None: wait as long as it takes).
        """
        waiter = self._waiter(cost)
        clock = self.clock
        start = clock.monotonic()
        with self._lock:
            permit = self._admit_now(waiter, start)
            if permit is not None:
                return permit
            self._queue.append(waiter)
        deadline = None if timeout is None else start + timeout
        try:
            while True:
                with self._lock:
                    now = clock.monotonic()
                    delay: float | None = None
                    if self._queue[0] is waiter:
                        if now < self._paused_until:
                            delay = self._paused_until - now
                            waiter.blocking = ["pause"]
                        else:
                            taken = self._reserve(waiter)
                            if taken is not None:
                                self._queue.popleft()
                                self._wake_head()
                                waited = now - start
                                self._stats["acquired"] += 1
                                self._stats["waited"] += 1
                                self._stats["wait_seconds"] += waited
                                return Permit(self, waiter.asked, taken, waited)
                            delay = max(_MIN_WAIT, self._wait_time(waiter.costs))
                    waiter.event.clear()
                if deadline is not None:
                    if now >= deadline:
                        raise RateLimitTimeout(self.name, timeout or 0.0, waiter.blocking)
                    delay = deadline - now if delay is None else min(delay, deadline - now)
                clock.wait(waiter.event, delay)
        except BaseException as exc:
            with self._lock:
                was_head = self._queue and self._queue[0] is waiter
                self._queue.remove(waiter)
                if was_head:
                    self._wake_head()
                if isinstance(exc, RateLimitTimeout):
                    self._stats["timeouts"] += 1
            raise

    def try_acquire(self, cost: Mapping[str, int] | None = None) -> Permit | None:
        """Reserve ``cost`` now if every bucket has room and nobody is queued; else None."""
        waiter = self._waiter(cost)
        with self._lock:
            permit = self._admit_now(waiter, self.clock.monotonic())
            if permit is None:
                self._stats["refused"] += 1
            return permit

    def _reserve(self, waiter: _Waiter) -> list[tuple[Bucket, Any, int]] | None:
        """Hit every bucket in order; on a refusal give back what was taken (all or none)."""
        taken: list[tuple[Bucket, Any, int]] = []
        for bucket, units in waiter.costs:
            where = self._store.hit(bucket, units)
            if where is REJECTED:
                for done, at, amount in taken:
                    self._store.refund(done, at, amount)
                waiter.blocking = [str(bucket.limit)]
                return None
            taken.append((bucket, where, units))
        return taken

    def _wait_time(self, costs: Sequence[tuple[Bucket, int]]) -> float:
        return max((self._store.wait(bucket, units) for bucket, units in costs), default=0.0)

    def _wake_head(self) -> None:
        if self._queue:
            self._queue[0].event.set()

    def wait_time(self, cost: Mapping[str, int] | None = None) -> float:
        """Seconds until ``cost`` might be admitted, ignoring callers already queued."""
        costs = self._waiter(cost).costs
        paused = max(0.0, self._paused_until - self.clock.monotonic())
        return max(paused, self._wait_time(costs))

    # -- settling, pausing ----------------------------------------------------------

    def _adjust(
        self, taken: list[tuple[Bucket, Any, int]], actual: Mapping[str, int]
    ) -> dict[str, int]:
        applied: dict[str, int] = {}
        reserved = {bucket.dimension: units for bucket, _, units in taken}
        for bucket in self._buckets:
            if bucket.dimension not in actual:
                continue
            where = next((at for b, at, _ in taken if b is bucket), None)
            delta = actual[bucket.dimension] - reserved.get(bucket.dimension, 0)
            if delta > 0:
                self._store.charge(bucket, delta)
                self._count(self._charged, bucket.dimension, delta)
            elif delta < 0 and bucket.dimension in reserved:
                given = self._store.refund(bucket, where, -delta)
                self._count(self._refunded, bucket.dimension, given)
                self._count(self._dropped, bucket.dimension, -delta - given)
                delta = -given
            applied[bucket.dimension] = delta
        if any(delta < 0 for delta in applied.values()):
            with self._lock:
                self._wake_head()
        return applied

    def _count(self, table: dict[str, int], dimension: str, amount: int) -> None:
        if amount:
            with self._lock:
                table[dimension] = table.get(dimension, 0) + amount

    def align(self, dimension: str, remaining: int) -> int:
        """Make this limiter's view no more generous than the provider's: the provider says
        ``remaining`` units of ``dimension`` are left in its current window (Anthropic's
        ``anthropic-ratelimit-*-remaining``). Every bucket of that dimension with more room
        than that is charged the difference (kept: never refunded), so callers wait as the
        server would make them. A view already more cautious is left alone. Returns the
        most charged to one bucket (0: already aligned, or no such dimension)."""
        if not isinstance(remaining, int) or isinstance(remaining, bool) or remaining < 0:
            raise ConfigurationError(
                f"rate limiter {self.name!r}: align needs remaining >= 0, not {remaining!r}"
            )
        most = 0
        with self._lock:
            for bucket in self._buckets:
                if bucket.dimension != dimension:
                    continue
                excess = math.ceil(bucket.amount - self._store.level(bucket)) - remaining
                if excess > 0:
                    self._store.charge(bucket, excess)
                    self._aligned[dimension] = self._aligned.get(dimension, 0) + excess
                    most = max(most, excess)
        return most

    def pause_for(self, seconds: float) -> None:
        """Admit nothing for ``seconds`` (a provider's Retry-After); a longer pause
        already running is kept."""
        if seconds < 0:
            raise ConfigurationError(f"pause_for: seconds must be >= 0, not {seconds}")
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock.monotonic() + seconds)
            self._wake_head()

    def reset(self) -> None:
        """Forget every bucket's counts (and any pause)."""
        with self._lock:
            for bucket in self._buckets:
                self._store.clear(bucket)
            self._paused_until = float("-inf")
            self._wake_head()

    def statistics(self) -> LimiterStats:
        """A frozen snapshot: every bucket's level, the queue, the pause, the counters."""
        with self._lock:
            buckets = tuple(
                BucketStats(b.dimension, b.amount, b.expiry, b.strategy, self._store.level(b))
                for b in self._buckets
            )
            return LimiterStats(
                name=self.name,
                buckets=buckets,
                waiting=len(self._queue),
                paused_for=max(0.0, self._paused_until - self.clock.monotonic()),
                refunded=dict(self._refunded),
                charged=dict(self._charged),
                refunds_dropped=dict(self._dropped),
                aligned=dict(self._aligned),
                **self._stats,
            )

    def __repr__(self) -> str:
        return f"<RateLimiter {self.name!r} {', '.join(str(lim) for lim in self.limits)}>"
