"""When will a window admit a cost? Pure arithmetic over a window's state, no I/O.

The limiter's head-of-line waiter sleeps for this long instead of polling. Each
function answers for one bucket assuming nobody else takes from it meanwhile; a wrong
guess only costs one more look (the admission itself is always limits' own check).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["fixed_wait", "moving_wait", "sliding_level", "sliding_wait"]

_EPSILON = 1e-6  # admission needs a strict inequality: wake just past the boundary


def sliding_level(previous: int, previous_ttl: float, current: int, expiry: float) -> float:
    """The sliding-window-counter's weighted count: previous·(ttl/expiry) + current."""
    return previous * previous_ttl / expiry + current


def sliding_wait(
    previous: int,
    previous_ttl: float,
    current: int,
    current_ttl: float,
    expiry: float,
    limit: int,
    cost: int,
) -> float:
    """Seconds until ``floor(weighted) + cost <= limit`` in a sliding window counter.

    ``previous_ttl`` is how long the previous window still weighs (it falls linearly to 0
    when the current window ends), ``current_ttl`` the current window's remaining life
    plus one period (as limits reports them).
    """
    room = limit - cost  # admitted iff weighted < room + 1
    if cost > limit:
        raise ValueError(f"cost {cost} exceeds limit {limit}")
    if current > room:
        # Not in this window: wait for it to end, then for its count to decay.
        until_roll = max(0.0, current_ttl - expiry)
        decay = expiry * (1 - (room + 1) / current)
        return until_roll + max(0.0, decay) + _EPSILON
    if previous == 0 or sliding_level(previous, previous_ttl, current, expiry) < room + 1:
        return 0.0
    wait = previous_ttl - (room + 1 - current) * expiry / previous
    return max(0.0, wait) + _EPSILON


def fixed_wait(count: int, expires_at: float, now: float, limit: int, cost: int) -> float:
    """Seconds until a fixed window admits ``cost``: now, or when the window ends."""
    if count + cost <= limit:
        return 0.0
    return max(0.0, expires_at - now)  # the window is gone at expires_at itself


def moving_wait(
    runs: Sequence[tuple[float, int]], now: float, expiry: float, limit: int, cost: int
) -> float:
    """Seconds until a moving window admits ``cost``, from its runs (oldest first)."""
    excess = sum(units for _, units in runs) + cost - limit
    if excess <= 0:
        return 0.0
    for atime, units in runs:
        excess -= units
        if excess <= 0:
            return max(0.0, atime + expiry - now)  # out of the window at that instant
    return 0.0  # unreachable when cost <= limit
