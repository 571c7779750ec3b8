"""The arithmetic of the two native bucket kinds, O(1) (amortised) whatever the limit's size
and however full the bucket. Pure: no I/O, no clock; time is passed in as integer
microseconds, and the callers hold a lock. ``_redis_ledger.lua`` is the same on Redis.

- :class:`RollingLog` (``rolling-window``): the units admitted per time slot (a slot is a
  thousandth of the period), oldest first, with their running total. A slot's units count
  until its newest ones are a period old, so the total is never less than what the exact
  window ``(now - period, now]`` holds (and at most one slot's worth of time more):
  admitting only when ``total + cost <= limit`` never lets any rolling window of the
  period hold more.
- :class:`TokenBucket` (``token-bucket``, GCRA): a level of units in use that drains at
  ``limit / period``; admitted when ``level + cost <= limit``, as a provider that enforces
  a token bucket of that capacity and rate would admit.

Both refund exactly (as if the reservation had been smaller) and never more: a rolling log
gives back only into the slot the reservation went to (gone once it expired); a token
bucket gives back only the part of the reservation that has not drained yet, computed from
where the reservation sits in the bucket's running count of admitted units.
"""

from __future__ import annotations

import threading
from bisect import bisect_left

__all__ = ["SLOTS", "Buckets", "RollingLog", "TokenBucket"]

SLOTS = 1000  # slots per period: a rolling window errs (safe side) by at most period/1000
_SLACK = 1e-9  # float noise a token bucket forgives when a cost fits exactly
_COMPACT = 64  # a rolling log drops its expired head once it is this long and half the log


class RollingLog:
    """A rolling window of ``period_us``: ``[slot, units, last]`` runs, oldest first, where
    ``last`` is when the slot's newest units came (so its oldest may be held up to a slot
    longer than exact; units admitted at one instant leave at exactly ``last + period``)."""

    __slots__ = ("head", "period", "runs", "total", "width")

    def __init__(self, period_us: int) -> None:
        self.period = period_us
        self.width = max(1, period_us // SLOTS)  # µs per slot
        self.runs: list[list[int]] = []
        self.head = 0  # runs[:head] have expired
        self.total = 0

    def level(self, now: int) -> int:
        """Units counted at ``now``: those of the runs whose newest units are still in
        the window ``(now - period, now]``."""
        floor = now - self.period
        runs, head = self.runs, self.head
        while head < len(runs) and runs[head][2] <= floor:
            self.total -= runs[head][1]
            head += 1
        if head >= _COMPACT and 2 * head > len(runs):
            del runs[:head]
            head = 0
        self.head = head
        return self.total

    def wait(self, now: int, limit: int, cost: int) -> int:
        """µs until ``cost`` fits (0: it fits now), if nothing else is admitted."""
        excess = self.level(now) + cost - limit
        if excess <= 0:
            return 0
        for _, units, last in self.runs[self.head :]:
            excess -= units
            if excess <= 0:  # counted until its newest units leave the window
                return last + self.period - now
        return 0  # unreachable while cost <= limit

    def add(self, now: int, units: int) -> int:
        """Record ``units`` at ``now``; returns the slot they went to (for a refund)."""
        slot = now // self.width
        runs = self.runs
        if len(runs) > self.head and runs[-1][0] >= slot:  # same slot, or time went back
            run = runs[-1]
            run[1] += units
            run[2] = max(run[2], now)
            slot = run[0]
        else:
            runs.append([slot, units, now])
        self.total += units
        return slot

    def refund(self, now: int, slot: int, units: int) -> int:
        """Give back up to ``units`` of those recorded in ``slot`` (none once it expired)."""
        self.level(now)
        runs = self.runs
        i = bisect_left(runs, [slot], self.head)
        if i == len(runs) or runs[i][0] != slot:
            return 0
        given = min(units, runs[i][1])
        runs[i][1] -= given
        self.total -= given
        return given


class TokenBucket:
    """A token bucket as the level in use: ``level`` drains at ``limit / period_us``.

    ``admitted`` counts every unit ever admitted (less refunds) and ``refunded`` every
    unit refunded; a reservation remembers both as they were when it was made, which
    places it in the bucket's stream of units for a later refund.
    """

    __slots__ = ("admitted", "level", "refunded", "stamp")

    def __init__(self, now: int) -> None:
        self.level = 0.0
        self.stamp = now
        self.admitted = 0
        self.refunded = 0

    def drain(self, now: int, limit: int, period_us: int) -> float:
        """The level at ``now`` (never moving the stamp back)."""
        if now > self.stamp:
            self.level = max(0.0, self.level - (now - self.stamp) * limit / period_us)
            self.stamp = now
        return self.level

    def wait(self, now: int, limit: int, period_us: int, cost: int) -> int:
        """µs until ``cost`` fits (0: it fits now), if nothing else is admitted."""
        over = self.drain(now, limit, period_us) + cost - limit
        if over <= _SLACK:
            return 0
        return max(1, -int(-over * period_us // limit))

    def add(self, units: int) -> tuple[int, int, float]:
        """Take ``units`` (after ``drain``); returns where they sit, for a refund: the
        running counts, and how much of the stream had drained."""
        where = (self.admitted, self.refunded, self.admitted - self.level)
        self.level += units
        self.admitted += units
        return where

    def refund(
        self,
        now: int,
        limit: int,
        period_us: int,
        where: tuple[int, int, float],
        reserved: int,
        units: int,
    ) -> int:
        """Give back up to ``units`` of a reservation of ``reserved`` made at ``where``:
        only its part that has not drained yet, and never below an empty bucket.

        Its place in the stream moves back when a reservation before it is refunded: by
        at most every refund since, and never below what had drained when it was made
        (only the undrained part of a reservation is ever refunded)."""
        level = self.drain(now, limit, period_us)
        drained = self.admitted - level  # units of the stream that have left the bucket
        start = max(where[0] - (self.refunded - where[1]), where[2])  # lowest place now
        given = int(max(0, min(units, reserved, start + reserved - drained, level)))
        self.level -= given
        self.admitted -= given
        self.refunded += given
        return given


class Buckets:
    """The native buckets of one in-memory storage, by key, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.logs: dict[str, RollingLog] = {}
        self.tokens: dict[str, TokenBucket] = {}

    def log(self, key: str, period_us: int) -> RollingLog:
        found = self.logs.get(key)
        if found is None:
            found = self.logs[key] = RollingLog(period_us)
        return found

    def bucket(self, key: str, now: int) -> TokenBucket:
        found = self.tokens.get(key)
        if found is None:
            found = self.tokens[key] = TokenBucket(now)
        return found

    def clear(self, key: str) -> None:
        with self.lock:
            self.logs.pop(key, None)
            self.tokens.pop(key, None)

    def reset(self) -> int:
        """Forget every bucket; returns how many there were."""
        with self.lock:
            n = len(self.logs) + len(self.tokens)
            self.logs.clear()
            self.tokens.clear()
            return n
