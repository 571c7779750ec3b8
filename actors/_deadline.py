"""``Deadline``: a timer that tells an actor its time is up, for budgets kept by time.

An actor arms it with the seconds left and the message to receive; re-arming or
``cancel`` makes an earlier arming's message stale, and the actor drops it (``fresh``)
— a timer cannot always be stopped before it fires. The optimization runner keeps
``max_seconds`` with it; any runner with a time budget can do the same.
"""

from __future__ import annotations

from typing import Any

from otpy._timers import TimerQueue
from otpy.clock import TimerHandle
from otpy.supervision import ServerRef

__all__ = ["Deadline"]


class Deadline:
    """A deadline of the actor ``ref`` on ``timers`` (see the module docstring)."""

    def __init__(self, timers: TimerQueue, ref: ServerRef[Any], message: str) -> None:
        self._timers = timers
        self._ref = ref
        self._message = message
        self._token = 0
        self._timer: TimerHandle | None = None

    def arm(self, seconds: float) -> None:
        """Cast ``(message, token)`` to the actor in ``seconds`` (of the clock)."""
        self.cancel()
        token, ref, message = self._token, self._ref, self._message
        self._timer = self._timers.call_later(seconds, lambda: ref.cast((message, token)))

    def cancel(self) -> None:
        self._token += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def fresh(self, received: Any) -> bool:
        """Whether ``received`` is this deadline's message from the current arming."""
        return (
            isinstance(received, tuple)
            and len(received) == 2
            and received[0] == self._message
            and received[1] == self._token
            and self._timer is not None
        )
