"""Where a limiter's buckets on limits' strategies live: what each kind of storage can
do beyond limits' hit. (The native strategies live in a :class:`Ledger`, ``_native.py``.)

limits offers hit/test per limit. A limiter also needs to give a reservation back (to
roll back a partial multi-bucket reservation and to refund a permit), to charge usage
past the limit, and to know how long until a cost fits. Those depend on the storage:

- :class:`MemoryStore` (``memory://``, on :class:`ClockedMemoryStorage`): all exact.
- :class:`RedisStore` (``redis://``): the hit and the window it landed in are read in
  one MULTI; a refund is applied only to that same window (checked under WATCH), so a
  refund can never make room in a later window.
- :class:`LimitsStore` (any other limits storage): hits and charges; refunds are
  dropped (the reservation stands: conservative, never an overshoot).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any

from limits.storage import Storage
from limits.strategies import STRATEGIES as LIMITS_STRATEGIES
from limits.strategies import RateLimiter as LimitsStrategy

from otpy.resilience._bucket import Bucket
from otpy.resilience._memory import ClockedMemoryStorage
from otpy.resilience._native import Ledger, MemoryLedger
from otpy.resilience._windows import fixed_wait, moving_wait, sliding_level, sliding_wait

__all__ = ["LimitsStore", "MemoryStore", "RedisStore", "Store", "stores_for"]

REJECTED: Any = object()  # hit() result when the bucket refused (nothing consumed)
_UNLIMITED = 2**53  # a limit no charge reaches: "record this usage whatever the limit"


class Store(ABC):
    """The operations a :class:`RateLimiter` runs on its buckets' storage."""

    shared = False  # True when several processes see the same counts
    storage: Any  # a limits storage

    @abstractmethod
    def hit(self, bucket: Bucket, cost: int) -> Any:
        """Reserve ``cost`` if the window allows it. Returns where it landed (for a
        refund), or ``REJECTED`` with nothing consumed."""
        raise NotImplementedError

    def refund(self, bucket: Bucket, where: Any, amount: int) -> int:
        """Give back up to ``amount`` of the reservation at ``where``; returns how much."""
        return 0

    @abstractmethod
    def charge(self, bucket: Bucket, amount: int) -> None:
        """Record ``amount`` units used now, whatever the limit."""
        raise NotImplementedError

    def wait(self, bucket: Bucket, cost: int) -> float:
        """Seconds until ``cost`` may fit, if nobody else takes from the bucket."""
        s, key, limit, expiry = self.storage, bucket.key, bucket.amount, bucket.expiry
        if bucket.strategy == "sliding-window-counter":
            window: tuple[int, float, int, float] = s.get_sliding_window(key, expiry)
            return sliding_wait(*window, expiry, limit, cost)
        if bucket.strategy == "moving-window":
            return self._moving_wait(bucket, cost)
        return fixed_wait(s.get(key), s.get_expiry(key), self._now(), limit, cost)

    def level(self, bucket: Bucket) -> float:
        """Units the window counts now (weighted for a sliding window counter)."""
        s, key, expiry = self.storage, bucket.key, bucket.expiry
        if bucket.strategy == "sliding-window-counter":
            previous, previous_ttl, current, _ = s.get_sliding_window(key, expiry)
            return sliding_level(previous, previous_ttl, current, expiry)
        if bucket.strategy == "moving-window":
            return float(s.get_moving_window(key, bucket.amount, expiry)[1])
        return float(s.get(key))

    def _now(self) -> float:
        """The storage's time (windows' expiry times are on it)."""
        return time.time()

    @abstractmethod
    def _moving_wait(self, bucket: Bucket, cost: int) -> float:
        """``wait`` for a moving window."""

    @abstractmethod
    def clear(self, bucket: Bucket) -> None:
        """Forget the bucket's counts."""
        raise NotImplementedError


class MemoryStore(Store):
    """Buckets in this process, on a :class:`ClockedMemoryStorage`; everything exact."""

    storage: ClockedMemoryStorage

    def __init__(self, storage: ClockedMemoryStorage) -> None:
        self.storage = storage

    def hit(self, bucket: Bucket, cost: int) -> Any:
        s, key, limit, expiry = self.storage, bucket.key, bucket.amount, bucket.expiry
        if bucket.strategy == "sliding-window-counter":
            where: Any = s.acquire_sliding_window_at(key, limit, expiry, cost)
        elif bucket.strategy == "moving-window":
            where = s.acquire_entry_at(key, limit, expiry, cost)
        else:
            where = s.acquire_counter(key, limit, expiry, cost)
        return REJECTED if where is None else where

    def refund(self, bucket: Bucket, where: Any, amount: int) -> int:
        s = self.storage
        if bucket.strategy == "sliding-window-counter":
            before = s.get(where)
            return before - s.decr(where, amount)
        if bucket.strategy == "moving-window":
            return s.release_entry(bucket.key, where, amount)
        return s.refund_counter(bucket.key, where, amount)

    def charge(self, bucket: Bucket, amount: int) -> None:
        s = self.storage
        if bucket.strategy == "sliding-window-counter":
            s.charge_sliding_window(bucket.key, bucket.expiry, amount)
        elif bucket.strategy == "moving-window":
            s.add_entry(bucket.key, bucket.expiry, amount)
        else:
            s.incr(bucket.key, bucket.expiry, amount)

    def _now(self) -> float:
        return self.storage.clock.time()

    def _moving_wait(self, bucket: Bucket, cost: int) -> float:
        runs = self.storage.moving_window_runs(bucket.key, bucket.expiry)
        return moving_wait(runs, self._now(), bucket.expiry, bucket.amount, cost)

    def clear(self, bucket: Bucket) -> None:
        if bucket.strategy == "sliding-window-counter":
            self.storage.clear_sliding_window(bucket.key, bucket.expiry)
        else:
            self.storage.clear(bucket.key)


class LimitsStore(Store):
    """Buckets in any limits storage, through limits' own strategies."""

    shared = True

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._strategies: dict[str, LimitsStrategy] = {}

    def strategy(self, bucket: Bucket) -> LimitsStrategy:
        found = self._strategies.get(bucket.strategy)
        if found is None:
            found = LIMITS_STRATEGIES[bucket.strategy](self.storage)
            self._strategies[bucket.strategy] = found
        return found

    def hit(self, bucket: Bucket, cost: int) -> Any:
        strategy = self.strategy(bucket)
        if bucket.strategy == "fixed-window" and not strategy.test(
            bucket.item, *bucket.ids, cost=cost
        ):
            return REJECTED  # a fixed-window hit would consume even when refused
        return None if strategy.hit(bucket.item, *bucket.ids, cost=cost) else REJECTED

    def charge(self, bucket: Bucket, amount: int) -> None:
        s: Any = self.storage
        if bucket.strategy == "sliding-window-counter":
            s.acquire_sliding_window_entry(bucket.key, _UNLIMITED, bucket.expiry, amount)
        elif bucket.strategy == "moving-window":
            s.acquire_entry(bucket.key, _UNLIMITED, bucket.expiry, amount)
        else:
            s.incr(bucket.key, bucket.expiry, amount)

    def _moving_wait(self, bucket: Bucket, cost: int) -> float:
        # limits reports only the oldest entry: wait for it to leave, then look again
        window: tuple[float, int] = self.storage.get_moving_window(
            bucket.key, bucket.amount, bucket.expiry
        )
        start, count = window
        if count + cost <= bucket.amount:
            return 0.0
        return max(0.0, start + bucket.expiry - self._now()) + 1e-3

    def clear(self, bucket: Bucket) -> None:
        self.strategy(bucket).clear(bucket.item, *bucket.ids)


class RedisStore(LimitsStore):
    """Buckets in Redis (limits' RedisStorage), with refunds to the window charged.

    A hit runs limits' own Lua script in one MULTI with reading the window key's expiry
    (server time), which names the window the hit landed in. A refund is one small Lua
    script that gives back only to the key that still expires then (the current window,
    or the previous one after limits renamed it), so it never makes room in a window it
    was not taken from. A moving-window hit records its entries under a timestamp of
    ours, so a refund removes exactly those entries (LREM).
    """

    _SAME_WINDOW_MS = 250  # window keys of one bucket expire >= 1 s apart
    _REFUND = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        for _, key in ipairs(KEYS) do
            local ttl = redis.call('PTTL', key)
            if ttl > 0 and math.abs(now + ttl - tonumber(ARGV[1])) <= tonumber(ARGV[3]) then
                local give = math.min(tonumber(redis.call('GET', key) or '0'), tonumber(ARGV[2]))
                if give > 0 then redis.call('DECRBY', key, give) end
                return math.max(give, 0)
            end
        end
        return 0
    """

    def __init__(self, storage: Storage) -> None:
        super().__init__(storage)
        self._refund_script = self._connection().register_script(self._REFUND)

    def _connection(self) -> Any:
        return self.storage.get_connection()

    def _keys(self, bucket: Bucket) -> list[str]:
        s: Any = self.storage
        if bucket.strategy == "sliding-window-counter":
            current = s.prefixed_key(s._current_window_key(bucket.key))
            return [current, s.prefixed_key(s._previous_window_key(bucket.key))]
        return [s.prefixed_key(bucket.key)]

    def hit(self, bucket: Bucket, cost: int) -> Any:
        s: Any = self.storage
        keys = self._keys(bucket)
        if bucket.strategy == "moving-window":
            stamp = time.time()
            args = [stamp, bucket.amount, bucket.expiry, cost]
            acquired = s.lua_acquire_moving_window(keys, args)
            return format(stamp, ".17g") if acquired else REJECTED  # as Redis' Lua prints it
        if bucket.strategy == "sliding-window-counter":
            script, script_keys = s.lua_acquire_sliding_window, list(reversed(keys))
            args = [bucket.amount, bucket.expiry, cost]
        else:
            script, script_keys, args = s.lua_incr_expire, keys, [bucket.expiry, cost]
        result, pttl, (seconds, micros) = self._in_multi(script, script_keys, args, keys[0])
        where = seconds * 1000 + micros // 1000 + pttl  # the window's expiry, ms
        if bucket.strategy == "sliding-window-counter":
            return where if result else REJECTED
        if int(result) > bucket.amount:  # limits' fixed window consumed a refused hit
            self.refund(bucket, where, cost)
            return REJECTED
        return where

    def _in_multi(self, script: Any, keys: list[str], args: list[Any], key: str) -> Any:
        """limits' ``script`` with PTTL(key) and TIME in one MULTI: one round trip.

        (Passing the script object to a pipeline would make redis-py ask SCRIPT EXISTS
        first, on every call: a second round trip.)"""
        import redis

        for _ in range(2):
            pipe = self._connection().pipeline(transaction=True)
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.pttl(key)
            pipe.time()
            try:
                return pipe.execute()
            except redis.exceptions.NoScriptError:  # a restarted or flushed server
                self._connection().script_load(script.script)
        raise RuntimeError("redis keeps forgetting limits' script")  # pragma: no cover

    def refund(self, bucket: Bucket, where: Any, amount: int) -> int:
        if where is None:
            return 0
        keys = self._keys(bucket)
        if bucket.strategy == "moving-window":
            return int(self._connection().lrem(keys[0], amount, where))
        return int(self._refund_script(keys, [where, amount, self._SAME_WINDOW_MS]))


def stores_for(storage: str | Storage, clock: Any) -> tuple[Store, Ledger | None]:
    """The :class:`Store` for a storage URI or a limits storage instance, and the
    :class:`Ledger` of native buckets on it (None: that storage has none)."""
    from limits.storage import RedisStorage, storage_from_string

    if isinstance(storage, str) and storage.split(":", 1)[0] == "memory":
        storage = ClockedMemoryStorage(clock)
    if isinstance(storage, ClockedMemoryStorage):
        return MemoryStore(storage), MemoryLedger(storage.buckets, storage.clock)
    if isinstance(storage, str):
        storage = storage_from_string(storage)  # type: ignore[assignment]
    if isinstance(storage, RedisStorage):
        from otpy.resilience._redis_ledger import RedisLedger

        return RedisStore(storage), RedisLedger(storage.get_connection())
    return LimitsStore(storage), None  # type: ignore[arg-type]
