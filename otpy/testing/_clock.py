"""``FakeClock``: a :class:`~otpy.clock.Clock` that tests move by hand."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable

from otpy.clock import TimerHandle

__all__ = ["FakeClock"]

_POLL = 0.001  # seconds between checks of an event that the fake clock cannot signal


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "deadline", "seq")

    def __init__(self, deadline: float, seq: int, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.seq = seq
        self.callback = callback
        self.cancelled = False

    def __lt__(self, other: _FakeTimer) -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A :class:`~otpy.clock.Clock` whose time moves only when ``advance`` is called.

    ``sleep`` and ``wait`` block until enough fake time has passed (``wait`` also returns
    as soon as its event is set); ``call_later`` callbacks run inside ``advance``, in the
    advancing thread, in deadline order. ``wait_for_sleepers(n)`` lets a test wait until
    n threads are blocked on this clock before moving it.
    """

    def __init__(self, start: float = 0.0, *, epoch: float = 1_700_000_000.0) -> None:
        self._cond = threading.Condition()
        self._now = float(start)
        self._epoch = epoch
        self._timers: list[_FakeTimer] = []
        self._seq = itertools.count()
        self._sleepers = 0

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._epoch + self._now

    def advance(self, seconds: float) -> None:
        """Move time forward, wake sleepers whose time has come, run due timers."""
        if seconds < 0:
            raise ValueError(f"time cannot go backwards ({seconds})")
        with self._cond:
            self._now += seconds
            due = []
            while self._timers and self._timers[0].deadline <= self._now:
                due.append(heapq.heappop(self._timers))
            self._cond.notify_all()
        for timer in due:
            if not timer.cancelled:
                timer.callback()

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._cond:
            deadline = self._now + seconds
            self._sleepers += 1
            self._cond.notify_all()
            try:
                while self._now < deadline:
                    self._cond.wait()
            finally:
                self._sleepers -= 1

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        if event.is_set():
            return True
        if timeout is None:
            return event.wait()
        with self._cond:
            deadline = self._now + timeout
            self._sleepers += 1
            self._cond.notify_all()
        try:
            while not event.is_set():
                with self._cond:
                    if self._now >= deadline:
                        return event.is_set()
                    self._cond.wait(_POLL)
            return True
        finally:
            with self._cond:
                self._sleepers -= 1

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        with self._cond:
            timer = _FakeTimer(self._now + max(0.0, delay), next(self._seq), callback)
            heapq.heappush(self._timers, timer)
            self._cond.notify_all()
        return timer

    @property
    def sleepers(self) -> int:
        """Threads blocked in ``sleep`` or in ``wait`` with a timeout."""
        return self._sleepers

    def pending_timers(self) -> int:
        """Timers scheduled and not cancelled."""
        with self._cond:
            return sum(1 for t in self._timers if not t.cancelled)

    def wait_for_sleepers(self, n: int = 1, timeout: float = 5.0) -> None:
        """Block (real time, an upper bound) until at least ``n`` threads wait on this clock."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._sleepers >= n, timeout):
                raise TimeoutError(f"{self._sleepers} of {n} sleepers after {timeout} s")

    def wait_for_timers(self, n: int = 1, timeout: float = 5.0) -> None:
        """Block until at least ``n`` timers are pending."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.pending_timers() >= n, timeout):
                raise TimeoutError(f"fewer than {n} timers after {timeout} s")

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now})"
