"""Rate limiters under load, for the tests: oracles that check a timeline of admissions
(``otpy.testing.saturate``'s, re-exported here with its clock) against each bucket's rule.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from otpy.resilience import Limit
from otpy.testing import TimedClock, Timeline, saturate

__all__ = ["TimedClock", "Timeline", "saturate", "settled", "utilisation", "violations",
           "window_peak"]  # fmt: skip
TOLERANCE = 1e-6  # float noise allowed in a token bucket's replay


def _us(t: float) -> int:
    """A time in whole µs, the resolution limiters count in (a float of epoch seconds has
    no exact sub-µs digits to compare)."""
    return round(t * 1_000_000)


def window_peak(timeline: Timeline, limit: Limit) -> int:
    """The most units of ``limit``'s dimension held by any rolling window (t - period, t],
    in µs (the peak is at an admission: checking windows that end there covers every
    window of any length up to the period)."""
    per_time: dict[int, int] = defaultdict(int)
    for t, units in timeline:
        per_time[_us(t)] += units.get(limit.dimension, 0)
    times, period = sorted(per_time), limit.period * 1_000_000
    peak = held = lo = 0
    for t in times:
        held += per_time[t]
        while times[lo] <= t - period:
            held -= per_time[times[lo]]
            lo += 1
        peak = max(peak, held)
    return peak


def bucket_peak(timeline: Timeline, limit: Limit) -> float:
    """The highest level a token bucket of ``limit`` (capacity = its amount, refilled at
    amount per period) reaches when it replays the timeline (admissions at one instant
    counted together)."""
    per_time: dict[int, int] = defaultdict(int)
    for t, units in timeline:
        per_time[_us(t)] += units.get(limit.dimension, 0)
    level, last, peak = 0.0, None, 0.0
    for t in sorted(per_time):
        if last is not None:
            level = max(0.0, level - (t - last) * limit.amount / (limit.period * 1_000_000))
        level += per_time[t]
        last = t
        peak = max(peak, level)
    return peak


def violations(timeline: Timeline, limits: Sequence[Limit]) -> dict[str, float]:
    """Each bucket whose rule the timeline breaks, with its peak over the limit."""
    bad: dict[str, float] = {}
    for limit in limits:
        if limit.strategy == "token-bucket":
            peak = bucket_peak(timeline, limit)
            if peak > limit.amount + TOLERANCE:
                bad[str(limit)] = peak
        elif window_peak(timeline, limit) > limit.amount:
            bad[str(limit)] = window_peak(timeline, limit)
    return bad


def utilisation(timeline: Timeline, limit: Limit, start: float, end: float) -> float:
    """Units of ``limit``'s dimension admitted in ``[start, end)`` over what the limit
    allows in that span."""
    admitted = sum(u.get(limit.dimension, 0) for t, u in timeline if start <= t < end)
    return admitted / (limit.amount * (end - start) / limit.period)


def settled(asked: Mapping[str, int], keep: float) -> dict[str, int]:
    """``asked`` scaled by ``keep`` (0..1), rounded down: what a call used of it."""
    return {d: int(n * keep) for d, n in asked.items()}
