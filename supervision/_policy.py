"""Restart policies as plain objects: restart intensity and backoff (no threads)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from otpy.clock import Clock
from otpy.errors import ChildSpecError

from ._exit import ExitReason, is_abnormal

__all__ = ["Backoff", "RestartIntensity", "should_restart"]


def should_restart(restart: str, reason: ExitReason) -> bool:
    """OTP's rule: permanent always, transient only on an abnormal exit, temporary never."""
    if restart == "permanent":
        return True
    if restart == "transient":
        return is_abnormal(reason)
    return False


class RestartIntensity:
    """At most ``max_restarts`` restarts in any ``max_seconds`` (a sliding window).

    ``add()`` records a restart now and returns False when that one is too many: the
    supervisor must then give up. Time is read from ``clock``.
    """

    def __init__(self, max_restarts: int, max_seconds: float, clock: Clock) -> None:
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
            raise ChildSpecError(f"must be an int >= 0, got {max_restarts!r}", field="max_restarts")
        if (
            isinstance(max_seconds, bool)
            or not isinstance(max_seconds, (int, float))
            or not max_seconds > 0
            or not math.isfinite(max_seconds)
        ):
            raise ChildSpecError(f"must be seconds > 0, got {max_seconds!r}", field="max_seconds")
        self.max_restarts = max_restarts
        self.max_seconds = float(max_seconds)
        self._clock = clock
        self._times: deque[float] = deque()

    def _expire(self, now: float) -> None:
        times = self._times
        while times and now - times[0] > self.max_seconds:
            times.popleft()

    def add(self) -> bool:
        """Record one restart; False if it makes more than max_restarts in the window."""
        now = self._clock.monotonic()
        self._expire(now)
        self._times.append(now)
        return len(self._times) <= self.max_restarts

    def restarts_in_window(self) -> int:
        """How many restarts the current window holds."""
        self._expire(self._clock.monotonic())
        return len(self._times)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential restart delay with jitter, as Akka's BackoffSupervisor.

    The n-th consecutive restart waits ``min(max, min * 2**n) * (1 + rand * random_factor)``
    seconds (rand in [0, 1)). Once the child has run for ``reset_after`` seconds (default:
    ``min``) the count starts again from 0. Restarts still count toward the supervisor's
    restart intensity: give a supervisor of backed-off children a high ``max_restarts``.
    """

    min: float = 0.1
    max: float = 30.0
    random_factor: float = 0.2
    reset_after: float | None = None

    def __post_init__(self) -> None:
        if not self.min > 0:
            raise ChildSpecError(f"must be > 0, got {self.min!r}", field="backoff.min")
        if not self.max >= self.min:
            raise ChildSpecError(
                f"must be >= min ({self.min}), got {self.max!r}", field="backoff.max"
            )
        if not self.random_factor >= 0:
            raise ChildSpecError(
                f"must be >= 0, got {self.random_factor!r}", field="backoff.random_factor"
            )
        if self.reset_after is not None and not self.reset_after > 0:
            raise ChildSpecError(
                f"must be > 0 or None, got {self.reset_after!r}", field="backoff.reset_after"
            )

    @property
    def healthy_after(self) -> float:
        """Seconds of uptime after which the restart count resets."""
        return self.min if self.reset_after is None else self.reset_after

    def delay(self, attempt: int, rand: float) -> float:
        """Delay before restart number ``attempt`` (0-based); ``rand`` in [0, 1)."""
        base = min(self.max, self.min * 2.0 ** min(attempt, 60))
        return base * (1.0 + rand * self.random_factor)
