"""What a RateLimiter hands out and reports: the Permit, and its statistics snapshots."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from otpy.errors import ConfigurationError, PermitError
from otpy.resilience._bucket import Bucket

__all__ = ["BucketStats", "LimiterStats", "Permit"]


class Issuer(Protocol):
    """What a permit needs of the limiter that issued it (a :class:`RateLimiter`)."""

    name: str

    def _adjust(
        self, taken: list[tuple[Bucket, Any, int]], actual: Mapping[str, int]
    ) -> dict[str, int]: ...


@dataclass(frozen=True)
class BucketStats:
    """One bucket as it is now."""

    dimension: str
    limit: int
    period: int
    strategy: str
    level: float  # units the bucket counts now (weighted for a sliding counter)

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

    ``admitted_at`` is when the buckets admitted it: the Redis server's clock (epoch
    seconds) for native buckets on Redis, else the limiter clock's ``monotonic()``.
    Usable as a context manager; leaving the block changes nothing (a reservation that
    is neither settled nor released stands as made).
    """

    __slots__ = ("_lock", "_settled", "_taken", "admitted_at", "cost", "limiter", "waited")

    def __init__(
        self,
        limiter: Issuer,
        cost: Mapping[str, int],
        taken: list[tuple[Bucket, Any, int]],
        waited: float,
        admitted_at: float,
    ) -> None:
        self.limiter = limiter
        self.cost: Mapping[str, int] = dict(cost)
        self.waited = waited
        self.admitted_at = admitted_at
        self._taken = taken
        self._settled = False
        self._lock = threading.Lock()

    @property
    def settled(self) -> bool:
        return self._settled

    def settle(self, actual: Mapping[str, int]) -> dict[str, int]:
        """Correct the reservation to ``actual`` usage per dimension: the difference is
        refunded (less used) or charged (more used, even past the limit). Dimensions not
        named keep their reservation. Returns the change applied per dimension: a refund
        is never more than the reservation still holds (a window's expired part, or a
        token bucket's drained part, is not given back), and where several buckets count a
        dimension, the smallest of their refunds."""
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

    def __exit__(self, *exc_info: object) -> None:
        """Leaving the block changes nothing: the reservation stands as made."""

    def __repr__(self) -> str:
        return f"<Permit {self.limiter.name} {dict(self.cost)} waited={self.waited:.3f}s>"
