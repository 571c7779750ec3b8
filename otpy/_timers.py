"""``TimerQueue``: many timers over one timer of a :class:`~otpy.clock.Clock`.

``clock.call_later`` of the system clock starts a thread per timer; a runtime's jobs
(a deadline per running job, one lease heartbeat) share one queue instead, which keeps a
single clock timer armed for the earliest entry. Callbacks run in the clock's timer
thread (the system clock's: one at a time; a :class:`~otpy.testing.FakeClock`'s: the
thread that advances it), in deadline order: keep them short (send a message). An
exception in one is logged and the others still run.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from otpy.clock import Clock, TimerHandle

__all__ = ["TimerQueue"]

logger = logging.getLogger("otpy.timers")


@dataclass(order=True, slots=True)
class _Entry:
    """One timer: ordered by when it is due, then by when it was set."""

    due: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class TimerQueue:
    """Timers on ``clock`` (see the module docstring); thread-safe."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._armed: tuple[float, TimerHandle] | None = None
        self._closed = False

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` once, ``delay`` seconds from now (of the clock); ``cancel()``
        on the handle stops it if it has not run."""
        with self._lock:
            entry = _Entry(self.clock.monotonic() + max(0.0, delay), next(self._seq), callback)
            if not self._closed:
                heapq.heappush(self._heap, entry)
                self._arm()
        return entry

    def _arm(self) -> None:
        """Keep the clock timer set for the earliest live entry (lock held)."""
        heap = self._heap
        while heap and heap[0].cancelled:
            heapq.heappop(heap)
        if not heap:
            return
        due = heap[0].due
        if self._armed is not None:
            if self._armed[0] <= due:
                return
            self._armed[1].cancel()
        delay = due - self.clock.monotonic()
        self._armed = (due, self.clock.call_later(max(0.0, delay), self._fire))

    def _fire(self) -> None:
        now = self.clock.monotonic()
        due: list[_Entry] = []
        with self._lock:
            self._armed = None
            while self._heap and self._heap[0].due <= now:
                due.append(heapq.heappop(self._heap))
            if not self._closed:
                self._arm()
        for entry in due:
            if entry.cancelled:
                continue
            try:
                entry.callback()
            except Exception:
                logger.exception("timer callback %r failed", entry.callback)

    def pending(self) -> int:
        """Entries scheduled and not cancelled."""
        with self._lock:
            return sum(1 for entry in self._heap if not entry.cancelled)

    def close(self) -> None:
        """Cancel everything; later ``call_later`` calls schedule nothing."""
        with self._lock:
            self._closed = True
            self._heap.clear()
            if self._armed is not None:
                self._armed[1].cancel()
                self._armed = None
