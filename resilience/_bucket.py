"""A bucket of a rate limiter: one rate of one cost dimension, on a limits strategy."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import limits
from limits import RateLimitItem

from otpy.errors import ConfigurationError

__all__ = ["STRATEGIES", "Bucket", "Limit", "Strategy"]

Strategy = Literal["sliding-window-counter", "moving-window", "fixed-window"]
STRATEGIES: tuple[Strategy, ...] = ("sliding-window-counter", "moving-window", "fixed-window")
_DIMENSION = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Limit:
    """One bucket of a :class:`RateLimiter`: at most ``rate`` units of ``dimension``.

    ``rate`` is a limits string ("60/minute", "100000 per minute", "10/second") or a
    ``limits.RateLimitItem``. ``strategy`` is the limits window strategy:

    - ``"sliding-window-counter"`` (default): O(1) per hit in any storage; the count of
      the previous window weighs linearly less as the current one goes on. It keeps
      within a token bucket of the same rate (how providers count), but a strict rolling
      window of one period can see a few percent more than the limit.
    - ``"moving-window"``: exact over any interval of one period; limits stores one entry
      per unit of cost in shared storage, so keep it for request counts there.
    - ``"fixed-window"``: calendar windows; cheap, but allows up to twice the rate across
      a window boundary.
    """

    dimension: str
    rate: str | RateLimitItem
    strategy: Strategy = "sliding-window-counter"
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

    @property
    def item(self) -> RateLimitItem:
        return self.limit.item

    @property
    def key(self) -> str:
        return self.item.key_for(*self.ids)

    @property
    def amount(self) -> int:
        return self.limit.amount

    @property
    def expiry(self) -> int:
        return self.limit.period

    @property
    def dimension(self) -> str:
        return self.limit.dimension

    @property
    def strategy(self) -> Strategy:
        return self.limit.strategy
