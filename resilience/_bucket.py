"""A bucket of a rate limiter: one rate of one cost dimension, and the rule that counts it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import limits
from limits import RateLimitItem

from otpy.errors import ConfigurationError

__all__ = ["NATIVE", "STRATEGIES", "Bucket", "Limit", "Strategy"]

Strategy = Literal[
    "rolling-window", "token-bucket", "sliding-window-counter", "moving-window", "fixed-window"
]
STRATEGIES: tuple[Strategy, ...] = (
    "rolling-window", "token-bucket", "sliding-window-counter", "moving-window", "fixed-window"
)  # fmt: skip
NATIVE: frozenset[str] = frozenset({"rolling-window", "token-bucket"})
"""The strategies otpy counts itself (memory and Redis); the others are limits' own."""
_DIMENSION = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Limit:
    """One bucket of a :class:`RateLimiter`: at most ``rate`` units of ``dimension``.

    ``rate`` is a limits string ("60/minute", "100000 per minute", "10/second") or a
    ``limits.RateLimitItem``. ``strategy`` is the rule that counts it:

    - ``"rolling-window"`` (default): no rolling window of one period ever holds more than
      ``rate`` (plus what was admitted before a limit was lowered): a log of time slots
      (a thousandth of the period each, so it errs on the safe side by at most that much)
      with a running total; O(1) per acquire whatever the limit and the window's fill.
      Under saturation it admits each period's budget as soon as the window allows.
    - ``"token-bucket"``: a bucket of ``rate`` units that refills continuously at
      ``rate`` per period (GCRA), as Anthropic enforces its limits; O(1). It admits a
      full bucket at once, then the refill, so a rolling period can see up to twice the
      rate: choose it only for a provider that counts this way.

    Memory and Redis storages run both (Redis: one Lua script per acquire, all buckets at
    once). The ``limits`` library's own strategies remain for those who select them:
    ``"sliding-window-counter"`` (approximate: a rolling period can see up to twice the
    rate), ``"moving-window"`` (exact, but its cost grows with the entries in the window;
    on Redis one entry per unit of cost) and ``"fixed-window"`` (calendar windows: up to
    twice the rate across a boundary).
    """

    dimension: str
    rate: str | RateLimitItem
    strategy: Strategy = "rolling-window"
    item: RateLimitItem = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.dimension, str) or not _DIMENSION.match(self.dimension):
            raise ConfigurationError(
                f"Limit dimension {self.dimension!r}: use a name such as 'requests' or 'tokens'"
            )
        if self.strategy not in STRATEGIES:
            raise ConfigurationError(
                f"Limit({self.dimension!r}): unknown strategy {self.strategy!r}; "
                f"choose one of {', '.join(STRATEGIES)}"
            )
        if isinstance(self.rate, RateLimitItem):
            item = self.rate
        elif isinstance(self.rate, str):
            try:
                item = limits.parse(self.rate)
            except ValueError as exc:
                raise ConfigurationError(
                    f"Limit({self.dimension!r}): rate {self.rate!r} is not a rate such as "
                    f"'60/minute' or '100000 per minute' ({exc})"
                ) from None
        else:
            raise ConfigurationError(
                f"Limit({self.dimension!r}): rate must be a string like '60/minute', "
                f"not {type(self.rate).__name__}"
            )
        if item.amount < 1:
            raise ConfigurationError(f"Limit({self.dimension!r}): a rate must allow at least 1")
        object.__setattr__(self, "item", item)

    @property
    def amount(self) -> int:
        """Units allowed per period."""
        return self.item.amount

    @property
    def period(self) -> int:
        """The period in seconds."""
        return self.item.get_expiry()

    def __str__(self) -> str:
        return f"{self.dimension} {self.item.amount}/{self.period}s ({self.strategy})"


@dataclass(frozen=True)
class Bucket:
    """A :class:`Limit` placed in storage under a key of its own.

    The key holds the limiter's name and the dimension, so an RPM and a TPM of the same
    amount never share a storage key (limits' keys are namespace/amount/granularity).
    """

    limit: Limit
    ids: tuple[str, ...]
    native: bool = field(init=False, repr=False, compare=False)
    rolling: bool = field(init=False, repr=False, compare=False)
    native_key: str = field(init=False, repr=False, compare=False)
    period_us: int = field(init=False, repr=False, compare=False)
    amount: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Read on every acquire: computed once. A native key leaves the amount out, so a
        # limit changed in place (another process, a new config) keeps its history.
        limit, set_ = self.limit, object.__setattr__
        set_(self, "native", limit.strategy in NATIVE)
        set_(self, "rolling", limit.strategy == "rolling-window")
        set_(self, "period_us", limit.period * 1_000_000)
        set_(self, "amount", limit.amount)
        name = self.ids[1] if len(self.ids) > 1 else ":".join(self.ids)  # ("otpy", name, dim)
        key = f"otpy:{{{name}}}:{limit.dimension}:{limit.period}s:{limit.strategy}"
        set_(self, "native_key", key)  # {name}: one Redis Cluster slot per limiter

    @property
    def item(self) -> RateLimitItem:
        return self.limit.item

    @property
    def key(self) -> str:
        return self.item.key_for(*self.ids)

    @property
    def expiry(self) -> int:
        return self.limit.period

    @property
    def dimension(self) -> str:
        return self.limit.dimension

    @property
    def strategy(self) -> Strategy:
        return self.limit.strategy
