"""A bounded-memory quantile sketch with a relative-error guarantee (DDSketch-style).

Values fall into logarithmic buckets: with ``gamma = (1 + a) / (1 - a)`` a positive value
``x`` goes to bucket ``i = ceil(log_gamma(x))``, which covers ``(gamma**(i-1), gamma**i]``,
and the bucket's estimate ``2 * gamma**i / (gamma + 1)`` is within ``a * x`` of every value
in it. Negative values use a second store keyed by magnitude; zeros are counted apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from otpy.errors import ConfigurationError

__all__ = ["QuantileSketch", "nearest_rank"]

_NO_FLOOR = -(1 << 62)
_NO_MIN = 1 << 62


def nearest_rank(percent: float, count: int) -> int:
    """The 1-based rank the ``percent``-th percentile of ``count`` values reads:
    ``max(1, ceil(percent * count / 100))`` (nearest-rank definition)."""
    return max(1, math.ceil(percent * count / 100))


class _Store:
    """One sign's buckets: a sparse dict index -> count, plus the collapse floor."""

    __slots__ = ("buckets", "floor", "min_key")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.floor = _NO_FLOOR  # after a collapse, lower indices are counted here
        self.min_key = _NO_MIN


class QuantileSketch:
    """Percentiles of a stream of numbers in bounded memory, within a relative error.

    **Percentile** means nearest rank: for ``n`` values sorted ascending ``x(1) <= ... <=
    x(n)``, the ``p``-th percentile (``0 <= p <= 100``) is ``x(r)`` with ``r = max(1,
    ceil(p * n / 100))`` (:func:`nearest_rank`). The sketch returns an estimate ``y`` with
    ``|y - x(r)| <= relative_accuracy * |x(r)|``; zeros are exact, and so are ``p`` whose
    rank is 1 or ``n`` (the exact ``min`` and ``max`` are kept; every estimate is clamped
    into ``[min, max]``).

    **Memory** is at most ``max_buckets`` buckets (zeros take none). At the default 0.5%
    accuracy 2048 buckets span about 9 decades of magnitude. When a new bucket would pass
    the cap, the bucket of the smallest magnitude is merged into the next larger one of the
    same sign (``collapses`` counts them), and smaller magnitudes are counted there from
    then on: the values closest to zero - for all-positive data such as latencies, the
    lowest percentiles - lose their accuracy; the largest magnitudes (the tail p99 reads)
    keep it.

    Not thread-safe (``Histogram`` holds a lock around it). ``add`` costs about 0.5 µs.
    """

    __slots__ = (
        "_count",
        "_gamma",
        "_inv_ln_gamma",
        "_ln_gamma",
        "_max",
        "_max_buckets",
        "_min",
        "_neg",
        "_pos",
        "_zero",
        "collapses",
        "relative_accuracy",
    )

    def __init__(self, relative_accuracy: float = 0.005, max_buckets: int = 2048) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ConfigurationError(
                f"relative_accuracy must be in (0, 1), got {relative_accuracy!r}"
            )
        if isinstance(max_buckets, bool) or not isinstance(max_buckets, int) or max_buckets < 2:
            raise ConfigurationError(f"max_buckets must be an int >= 2, got {max_buckets!r}")
        self.relative_accuracy = relative_accuracy
        self._gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy)
        self._ln_gamma = math.log(self._gamma)
        self._inv_ln_gamma = 1.0 / self._ln_gamma
        self._max_buckets = max_buckets
        self.clear()

    def clear(self) -> None:
        """Forget every value."""
        self._pos = _Store()
        self._neg = _Store()
        self._zero = 0
        self._count = 0
        self._min = math.inf
        self._max = -math.inf
        self.collapses = 0

    @property
    def count(self) -> int:
        """How many values were added."""
        return self._count

    @property
    def min(self) -> float | None:
        """The exact smallest value (``None`` when empty)."""
        return self._min if self._count else None

    @property
    def max(self) -> float | None:
        """The exact largest value (``None`` when empty)."""
        return self._max if self._count else None

    @property
    def max_buckets(self) -> int:
        """The cap on the number of buckets."""
        return self._max_buckets

    @property
    def bucket_count(self) -> int:
        """How many buckets are in use (never more than ``max_buckets``)."""
        return len(self._pos.buckets) + len(self._neg.buckets)

    def add(self, value: float) -> None:
        """Count one finite number; NaN or an infinity raises ConfigurationError."""
        if value - value != 0.0:
            raise ConfigurationError(f"a quantile sketch takes finite numbers, got {value!r}")
        self._count += 1
        if value < self._min:
            self._min = value
        if value > self._max:
            self._max = value
        if value > 0.0:
            store = self._pos
        elif value < 0.0:
            store = self._neg
            value = -value
        else:
            self._zero += 1
            return
        index = math.ceil(math.log(value) * self._inv_ln_gamma)
        if index < store.floor:
            index = store.floor
        buckets = store.buckets
        held = buckets.get(index)
        if held is not None:
            buckets[index] = held + 1
            return
        buckets[index] = 1
        if index < store.min_key:
            store.min_key = index
        if len(self._pos.buckets) + len(self._neg.buckets) > self._max_buckets:
            self._collapse()

    def add_many(self, values: Iterable[float]) -> None:
        """``add`` each value in turn."""
        add = self.add
        for value in values:
            add(value)

    def _collapse(self) -> None:
        pos, neg = self._pos, self._neg
        if len(neg.buckets) < 2 or (len(pos.buckets) >= 2 and pos.min_key <= neg.min_key):
            store = pos
        else:
            store = neg
        lowest = store.buckets.pop(store.min_key)
        new_min = min(store.buckets)
        store.buckets[new_min] += lowest
        store.floor = store.min_key = new_min
        self.collapses += 1

    def _estimate(self, index: int) -> float:
        try:
            return 2.0 * math.exp(index * self._ln_gamma) / (self._gamma + 1.0)
        except OverflowError:
            return math.inf

    def percentile(self, percent: float) -> float | None:
        """The estimated ``percent``-th percentile (0-100, nearest rank); ``None`` if empty."""
        return self.percentiles([percent])[0]

    def percentiles(self, percents: Sequence[float]) -> list[float | None]:
        """Several percentiles in one pass over the buckets (``None`` each if empty)."""
        for p in percents:
            if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 100:
                raise ConfigurationError(f"a percentile must be a number in [0, 100], got {p!r}")
        n = self._count
        if n == 0:
            return [None] * len(percents)
        results: list[float | None] = [None] * len(percents)
        pending = sorted((nearest_rank(p, n), i) for i, p in enumerate(percents))
        at = 0
        seen = 0

        def settle(upto: int, value: float) -> None:
            nonlocal at
            while at < len(pending) and pending[at][0] <= upto:
                rank, slot = pending[at]
                if rank == 1:
                    results[slot] = self._min
                elif rank == n:
                    results[slot] = self._max
                else:
                    results[slot] = min(self._max, max(self._min, value))
                at += 1

        for index in sorted(self._neg.buckets, reverse=True):
            seen += self._neg.buckets[index]
            settle(seen, -self._estimate(index))
        seen += self._zero
        settle(seen, 0.0)
        for index in sorted(self._pos.buckets):
            seen += self._pos.buckets[index]
            settle(seen, self._estimate(index))
        return results

    def __repr__(self) -> str:
        return (
            f"QuantileSketch(count={self._count}, buckets={self.bucket_count}/"
            f"{self._max_buckets}, relative_accuracy={self.relative_accuracy})"
        )
