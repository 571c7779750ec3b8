"""RateLimiter: several buckets at once, all or none, waiting in FIFO order."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from limits.storage import Storage

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import ConfigurationError, CostExceedsLimitError, RateLimitTimeout
from otpy.resilience._bucket import NATIVE, Bucket, Limit
from otpy.resilience._native import Ledger
from otpy.resilience._permit import BucketStats, LimiterStats, Permit
from otpy.resilience._stores import REJECTED, stores_for

__all__ = ["BucketStats", "LimiterStats", "Permit", "RateLimiter"]

_MIN_WAIT = 1e-3  # a head that was refused looks again after at least this long
_ONE_REQUEST = {"requests": 1}

Taken = list[tuple[Bucket, Any, int]]


class _Waiter:
    __slots__ = ("asked", "blocking", "event", "hint", "legacy", "native")

    def __init__(
        self,
        asked: Mapping[str, int],
        native: list[tuple[Bucket, int]],
        legacy: list[tuple[Bucket, int]],
    ) -> None:
        self.asked = asked  # the cost as the caller gave it
        self.native = native  # what it takes from each native bucket (one atomic step)
        self.legacy = legacy  # ... and from each bucket on a limits strategy
        self.event: threading.Event | None = None  # made when it has to queue
        self.blocking: list[str] = []
        self.hint = 0.0  # seconds until the native buckets have room, from the refusal


class RateLimiter:
    """Several rate limits held at once, e.g. requests/minute and tokens/minute.

    ``acquire(cost)`` reserves ``cost`` in every bucket or in none, waiting (in the
    calling thread) until all buckets have room: callers are admitted in FIFO order,
    so a large request is not starved by a stream of small ones. ``storage`` is a limits
    storage URI or instance: ``memory://`` (this process; buckets move with ``clock``) or
    ``redis://host:port`` (shared by every process using the same name: a bucket is its
    dimension, period and strategy, so a limit changed in one process keeps what the
    others admitted; windows then follow the server's clock and ``clock`` only paces the
    waiting). The native strategies (``rolling-window``, the default, and
    ``token-bucket``) need memory or Redis; any other limits storage takes limits' own.

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
        seen: set[tuple[Any, ...]] = set()
        for lim in parsed:
            native = lim.strategy in NATIVE  # one bucket per dimension, period and strategy
            ident = (lim.dimension, lim.period, lim.strategy if native else lim.amount)
            if ident in seen:
                raise ConfigurationError(f"rate limiter {name!r}: {lim} is given twice")
            seen.add(ident)
        self.limits: tuple[Limit, ...] = tuple(parsed)
        self._buckets = tuple(Bucket(lim, ("otpy", name, lim.dimension)) for lim in parsed)
        try:
            self._store, ledger = stores_for(storage, self.clock)
        except Exception as exc:  # limits raises its own errors for URIs and drivers
            raise ConfigurationError(
                f"rate limiter {name!r}: storage {storage!r} cannot be used: {exc}"
                + (" (install otpy[redis])" if "redis" in str(storage) else "")
            ) from exc
        if ledger is None and any(b.native for b in self._buckets):
            raise ConfigurationError(
                f"rate limiter {name!r}: storage {storage!r} takes only limits' strategies "
                "(sliding-window-counter, moving-window, fixed-window); rolling-window and "
                "token-bucket need memory:// or redis://"
            )
        self._ledger: Ledger = ledger  # type: ignore[assignment]
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
        asked = _ONE_REQUEST if cost is None else cost
        for dimension, units in asked.items():
            if (type(units) is not int or units < 0) and (  # the fast check, then the full
                not isinstance(units, int) or isinstance(units, bool) or units < 0
            ):
                raise ConfigurationError(
                    f"rate limiter {self.name!r}: cost of {dimension!r} must be an "
                    f"int >= 0, not {units!r}"
                )
        native: list[tuple[Bucket, int]] = []
        legacy: list[tuple[Bucket, int]] = []
        for bucket in self._buckets:
            units = asked.get(bucket.dimension, 0)
            if units:
                if units > bucket.amount:
                    raise CostExceedsLimitError(
                        self.name, bucket.dimension, units, str(bucket.limit)
                    )
                (native if bucket.native else legacy).append((bucket, units))
        return _Waiter(asked, native, legacy)

    def _admit_now(self, waiter: _Waiter, now: float) -> Permit | None:
        """Under the lock: reserve at once if nobody is queued and no pause runs."""
        if self._queue or now < self._paused_until:
            return None
        return self._reserve(waiter, 0.0)

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
            waiter.event = event = threading.Event()
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
                            permit = self._reserve(waiter, now - start)
                            if permit is not None:
                                self._queue.popleft()
                                self._wake_head()
                                self._stats["waited"] += 1
                                self._stats["wait_seconds"] += permit.waited
                                return permit
                            delay = max(_MIN_WAIT, self._wait_time(waiter))
                    event.clear()
                if deadline is not None:
                    if now >= deadline:
                        raise RateLimitTimeout(self.name, timeout or 0.0, waiter.blocking)
                    delay = deadline - now if delay is None else min(delay, deadline - now)
                clock.wait(event, delay)
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

    def _reserve(self, waiter: _Waiter, waited: float) -> Permit | None:
        """Under the lock: take from every bucket, the native ones in one step, or from
        none (a refusing bucket gives back what the others took); the permit, or None."""
        taken: Taken = []
        at: float | None = None
        if waiter.native:
            took = self._ledger.take(waiter.native)
            if took.wheres is None:
                waiter.blocking = [str(waiter.native[took.blocking][0].limit)]
                waiter.hint = took.wait
                return None
            taken = [(b, w, u) for (b, u), w in zip(waiter.native, took.wheres, strict=True)]
            at = took.at
        waiter.hint = 0.0
        for bucket, units in waiter.legacy:
            where = self._store.hit(bucket, units)
            if where is REJECTED:
                for done, spot, amount in taken:
                    self._give_back(done, spot, amount, amount)
                waiter.blocking = [str(bucket.limit)]
                return None
            taken.append((bucket, where, units))
        self._stats["acquired"] += 1
        if at is None:
            at = self.clock.monotonic()
        return Permit(self, waiter.asked, taken, waited, at)

    def _wait_time(self, waiter: _Waiter) -> float:
        store = self._store
        legacy = max((store.wait(bucket, units) for bucket, units in waiter.legacy), default=0.0)
        return max(waiter.hint, legacy)

    def _wake_head(self) -> None:
        if self._queue:
            event = self._queue[0].event
            if event is not None:
                event.set()

    def wait_time(self, cost: Mapping[str, int] | None = None) -> float:
        """Seconds until ``cost`` might be admitted, ignoring callers already queued."""
        waiter = self._waiter(cost)
        if waiter.native:
            waiter.hint = self._ledger.wait(waiter.native)
        paused = max(0.0, self._paused_until - self.clock.monotonic())
        return max(paused, self._wait_time(waiter))

    # -- one bucket, on whichever storage holds it ------------------------------------

    def _give_back(self, bucket: Bucket, where: Any, reserved: int, units: int) -> int:
        if bucket.native:
            return self._ledger.refund(bucket, where, reserved, units)
        return self._store.refund(bucket, where, units)

    def _charge(self, bucket: Bucket, units: int) -> None:
        if bucket.native:
            self._ledger.charge(bucket, units)
        else:
            self._store.charge(bucket, units)

    def _level(self, bucket: Bucket) -> float:
        return self._ledger.level(bucket) if bucket.native else self._store.level(bucket)

    # -- settling, pausing ----------------------------------------------------------

    def _adjust(self, taken: Taken, actual: Mapping[str, int]) -> dict[str, int]:
        applied: dict[str, int] = {}
        reserved = {bucket.dimension: units for bucket, _, units in taken}
        for bucket in self._buckets:
            if bucket.dimension not in actual:
                continue
            where = next((at for b, at, _ in taken if b is bucket), None)
            held = reserved.get(bucket.dimension, 0)
            delta = actual[bucket.dimension] - held
            if delta > 0:
                self._charge(bucket, delta)
                self._count(self._charged, bucket.dimension, delta)
            elif delta < 0 and bucket.dimension in reserved:
                given = self._give_back(bucket, where, held, -delta)
                self._count(self._refunded, bucket.dimension, given)
                if not bucket.native:  # a native bucket keeps only what still counts
                    self._count(self._dropped, bucket.dimension, -delta - given)
                delta = -given
            if bucket.dimension in applied:  # several buckets: report the smallest refund
                delta = max(delta, applied[bucket.dimension])
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
                excess = math.ceil(bucket.amount - self._level(bucket)) - remaining
                if excess > 0:
                    self._charge(bucket, excess)
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
                if bucket.native:
                    self._ledger.clear(bucket)
                else:
                    self._store.clear(bucket)
            self._paused_until = float("-inf")
            self._wake_head()

    def statistics(self) -> LimiterStats:
        """A frozen snapshot: every bucket's level, the queue, the pause, the counters."""
        with self._lock:
            buckets = tuple(
                BucketStats(b.dimension, b.amount, b.expiry, b.strategy, self._level(b))
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
