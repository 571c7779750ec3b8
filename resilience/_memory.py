"""limits' in-memory storage on an otpy Clock, with exact refunds and O(1) moving windows.

``limits.storage.MemoryStorage`` reads ``time.time()`` inside every method and starts a
``threading.Timer`` every 10 ms to expire keys, so neither a fake clock nor a quiet
process is possible with it. :class:`ClockedMemoryStorage` implements the same storage
contract (``limits.storage.Storage`` with moving-window and sliding-window-counter
support, the same keys and the same admission arithmetic) reading time from a
:class:`~otpy.clock.Clock` and expiring keys lazily. The rate-limit strategies that drive
it are limits' own classes.

It also holds the native buckets (``rolling-window``, ``token-bucket``) of the limiters
that share it (``buckets``). Two things it adds to limits' contract, which limits' memory
storage cannot do:

- a moving window stores one ``[timestamp, units]`` run per hit rather than one entry
  per unit of cost (limits stores 4,000 entries for a 4,000-token hit);
- ``release_entry`` and ``decr`` give a reservation back exactly, in the window it was
  taken from.
"""

from __future__ import annotations

import threading
from math import floor

from limits.storage import MovingWindowSupport, SlidingWindowCounterSupport, Storage
from limits.storage.base import TimestampedSlidingWindow

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.resilience._ledger import Buckets

__all__ = ["ClockedMemoryStorage"]

_SWEEP_EVERY = 1.0  # clock seconds between sweeps of expired keys


class ClockedMemoryStorage(
    Storage, MovingWindowSupport, SlidingWindowCounterSupport, TimestampedSlidingWindow
):
    """A limits storage held in this process, whose windows move with ``clock``.

    Thread-safe: every method runs under one lock, so each is atomic.
    """

    # No STORAGE_SCHEME: limits' "memory://" keeps meaning its own MemoryStorage.

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(None)
        self.clock = clock
        self._lock = threading.RLock()
        self._counters: dict[str, int] = {}
        self._expires: dict[str, float] = {}
        # moving windows: key -> runs [atime, units], newest first
        self._runs: dict[str, list[list[float]]] = {}
        self._run_expiry: dict[str, float] = {}
        self._next_sweep = clock.time() + _SWEEP_EVERY
        self.buckets = Buckets()  # the native buckets of limiters on this storage

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    # -- counters (fixed window, and the two counters of a sliding window) -------------

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_EVERY
        for key in [k for k, at in self._expires.items() if at <= now]:
            del self._expires[key]
            self._counters.pop(key, None)
        for key, expiry in list(self._run_expiry.items()):
            self._trim(key, now, expiry)

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add ``amount`` to ``key``; a new key expires ``expiry`` seconds from now."""
        with self._lock:
            now = self.clock.time()
            self._sweep(now)
            if self._live(key, now) is None:
                self._expires[key] = now + expiry
                self._counters[key] = 0
            self._counters[key] += amount
            return self._counters[key]

    def decr(self, key: str, amount: int = 1) -> int:
        """Take ``amount`` from ``key`` (never below 0; an expired key stays gone)."""
        with self._lock:
            value = self._live(key, self.clock.time())
            if value is None:
                return 0
            self._counters[key] = max(0, value - amount)
            return self._counters[key]

    def _live(self, key: str, now: float) -> int | None:
        if key not in self._counters:
            return None
        if self._expires[key] <= now:
            del self._counters[key], self._expires[key]
            return None
        return self._counters[key]

    def get(self, key: str) -> int:
        with self._lock:
            return self._live(key, self.clock.time()) or 0

    def get_expiry(self, key: str) -> float:
        with self._lock:
            now = self.clock.time()
            return self._expires[key] if self._live(key, now) is not None else now

    def clear(self, key: str) -> None:
        with self._lock:
            self._counters.pop(key, None)
            self._expires.pop(key, None)
            self._runs.pop(key, None)
            self._run_expiry.pop(key, None)

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            n = len(self._counters) + len(self._runs) + self.buckets.reset()
            self._counters.clear()
            self._expires.clear()
            self._runs.clear()
            self._run_expiry.clear()
            return n

    def acquire_counter(self, key: str, limit: int, expiry: int, amount: int) -> float | None:
        """Fixed window: add ``amount`` only if it keeps ``key`` within ``limit`` (nothing is
        consumed on a refusal); returns the window's expiry time, or None."""
        with self._lock:
            if self.get(key) + amount > limit:
                return None
            self.incr(key, expiry, amount)
            return self._expires[key]

    def refund_counter(self, key: str, expires_at: float, amount: int) -> int:
        """Give back up to ``amount`` to ``key`` if it is still the window that expires at
        ``expires_at``; returns how much was given back."""
        with self._lock:
            value = self._live(key, self.clock.time())
            if value is None or self._expires[key] != expires_at:
                return 0
            given = min(value, amount)
            self._counters[key] = value - given
            return given

    # -- moving window ------------------------------------------------------------------

    def _trim(self, key: str, now: float, expiry: float) -> list[list[float]]:
        runs = self._runs.get(key, [])
        while runs and runs[-1][0] <= now - expiry:
            runs.pop()
        if not runs:
            self._runs.pop(key, None)
            self._run_expiry.pop(key, None)
        return runs

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Admit ``amount`` units if the last ``expiry`` seconds hold at most
        ``limit - amount`` (limits' moving-window rule)."""
        return self.acquire_entry_at(key, limit, expiry, amount) is not None

    def acquire_entry_at(self, key: str, limit: int, expiry: int, amount: int = 1) -> float | None:
        """As ``acquire_entry``; returns the timestamp the units were recorded at, or None."""
        if amount > limit:
            return None
        with self._lock:
            now = self.clock.time()
            self._sweep(now)
            runs = self._trim(key, now, expiry)
            if sum(int(run[1]) for run in runs) + amount > limit:
                return None
            self._add_run(key, now, expiry, amount)
            return now

    def _add_run(self, key: str, now: float, expiry: float, amount: int) -> None:
        runs = self._runs.setdefault(key, [])
        self._run_expiry[key] = expiry
        if runs and runs[0][0] == now:
            runs[0][1] += amount
        else:
            runs.insert(0, [now, amount])

    def add_entry(self, key: str, expiry: int, amount: int) -> float:
        """Record ``amount`` units now whatever the limit (a charge for usage already
        made); returns the timestamp they were recorded at."""
        with self._lock:
            now = self.clock.time()
            self._trim(key, now, expiry)
            self._add_run(key, now, expiry, amount)
            return now

    def release_entry(self, key: str, atime: float, amount: int) -> int:
        """Give back up to ``amount`` units recorded at ``atime``; returns how many."""
        with self._lock:
            for run in self._runs.get(key, []):
                if run[0] == atime:
                    given = min(amount, int(run[1]))
                    run[1] -= given
                    return given
            return 0

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest unit still in the window, units in the window)."""
        with self._lock:
            now = self.clock.time()
            runs = [run for run in self._trim(key, now, expiry) if run[1] > 0]
            if not runs:
                return now, 0
            return runs[-1][0], sum(int(run[1]) for run in runs)

    def moving_window_runs(self, key: str, expiry: int) -> list[tuple[float, int]]:
        """The window's runs, oldest first: ``[(timestamp, units), ...]``."""
        with self._lock:
            runs = self._trim(key, self.clock.time(), expiry)
            return [(run[0], int(run[1])) for run in reversed(runs) if run[1] > 0]

    # -- sliding window counter -------------------------------------------------------

    def _sliding(self, key: str, expiry: int, now: float) -> tuple[str, int, float, int, float]:
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous = self._live(previous_key, now) or 0
        current = self._live(current_key, now) or 0
        previous_ttl = 0.0 if previous == 0 else (1 - (((now - expiry) / expiry) % 1)) * expiry
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return current_key, previous, previous_ttl, current, current_ttl

    def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        """Admit ``amount`` if floor(previous·weight + current) + amount <= limit
        (limits' sliding-window-counter rule)."""
        return self.acquire_sliding_window_at(key, limit, expiry, amount) is not None

    def acquire_sliding_window_at(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> str | None:
        """As ``acquire_sliding_window_entry``; returns the window key charged, or None."""
        if amount > limit:
            return None
        with self._lock:
            now = self.clock.time()
            self._sweep(now)
            current_key, previous, previous_ttl, current, _ = self._sliding(key, expiry, now)
            if floor(previous * previous_ttl / expiry + current) + amount > limit:
                return None
            self.incr(current_key, 2 * expiry, amount)
            return current_key

    def charge_sliding_window(self, key: str, expiry: int, amount: int) -> str:
        """Add ``amount`` to the current window whatever the limit (usage already made);
        returns the window key charged."""
        with self._lock:
            current_key = self.sliding_window_keys(key, expiry, self.clock.time())[1]
            self.incr(current_key, 2 * expiry, amount)
            return current_key

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        with self._lock:
            _, previous, previous_ttl, current, current_ttl = self._sliding(
                key, expiry, self.clock.time()
            )
            return previous, previous_ttl, current, current_ttl

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        with self._lock:
            for window_key in self.sliding_window_keys(key, expiry, self.clock.time()):
                self.clear(window_key)
