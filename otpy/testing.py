"""Test helpers: a clock you move by hand, and ways to wait for actors without sleeping.

clock = FakeClock()
sup = Supervisor.start([...], clock=clock)
clock.advance(6.0)          # the restart-intensity window slides; timers fire
wait_idle()                 # every actor has handled everything sent so far
stop_all()                  # in a fixture: leave nothing running for the next test
with redis_server() as url: # a throwaway redis-server for shared rate limits
    RateLimiter([...], url)
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from pykka import ActorRegistry

from otpy._redis_server import RedisUnavailable, redis_server
from otpy.clock import TimerHandle
from otpy.supervision import ServerRef
from otpy.supervision._base import SupervisorBase
from otpy.supervision._ref import _Ping

__all__ = [
    "FakeClock",
    "RedisUnavailable",
    "redis_server",
    "stop_all",
    "wait_exit",
    "wait_idle",
    "wait_until",
]

_POLL = 0.001  # seconds between checks of a condition nobody can signal


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


def wait_until(
    predicate: Callable[[], Any], timeout: float = 5.0, message: str = "condition"
) -> Any:
    """Return ``predicate()``'s first truthy value; TimeoutError after ``timeout`` seconds.

    For states nobody signals (e.g. a count reached); prefer an event where there is one.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} not reached within {timeout} s")
        time.sleep(_POLL)


def _live_servers() -> list[ServerRef[Any]]:
    return [r for r in ActorRegistry.get_all() if isinstance(r, ServerRef) and r.is_alive()]


def wait_idle(timeout: float = 5.0) -> None:
    """Wait until every GenServer has handled all it was sent, including what that sent on.

    Pings each live GenServer until two rounds in a row see no new message handled and no
    actor started or stopped. Timers of a :class:`FakeClock` do not fire by themselves, so
    they never keep this waiting.
    """
    deadline = time.monotonic() + timeout
    previous: dict[str, int] | None = None
    while True:
        current: dict[str, int] = {}
        for ref in _live_servers():
            remaining = max(0.001, deadline - time.monotonic())
            try:
                current[ref.actor_urn] = ref.ask(_Ping(), block=True, timeout=remaining)
            except Exception:  # it died meanwhile: the set changed, go round again
                current[ref.actor_urn] = -1
        if current == previous:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"actors still busy after {timeout} s")
        previous = current


def wait_exit(ref: ServerRef[Any], timeout: float = 5.0) -> Any:
    """Wait for ``ref`` to exit and return its exit reason; TimeoutError otherwise."""
    if not ref.wait_exit(timeout):
        raise TimeoutError(f"{ref} still alive after {timeout} s")
    return ref.exit_reason


def stop_all(timeout: float = 5.0) -> None:
    """Stop every actor: supervisors first, oldest first (so none restarts a child), then
    the rest; anything that does not stop within ``timeout`` is killed."""
    for ref in ActorRegistry.get_all():
        if isinstance(ref, ServerRef) and issubclass(ref.actor_class, SupervisorBase):
            ref.shutdown(timeout)
    for ref in ActorRegistry.get_all():
        if isinstance(ref, ServerRef):
            ref.shutdown(timeout)
        else:
            ref.stop(block=True, timeout=timeout)
