"""Time, injected: every time-dependent part of otpy reads and waits through a ``Clock``.

Production code uses :data:`SYSTEM_CLOCK`; tests pass :class:`otpy.testing.FakeClock`
and move time forward instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "TimerHandle"]


class TimerHandle(Protocol):
    """A scheduled callback; ``cancel()`` stops it if it has not run yet."""

    def cancel(self) -> None: ...


@runtime_checkable
class Clock(Protocol):
    """Where otpy reads the time and waits.

    ``monotonic`` measures intervals, ``time`` is wall-clock epoch seconds. ``wait`` blocks
    until the event is set or ``timeout`` seconds of this clock's time have passed and
    returns whether the event is set. ``call_later`` runs ``callback`` once, ``delay``
    seconds from now, on a thread of the clock's choosing: keep it short (send a message).
    """

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def wait(self, event: threading.Event, timeout: float | None) -> bool: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time``, ``threading.Timer``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return event.wait(timeout)

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        timer = threading.Timer(max(0.0, delay), callback)
        timer.daemon = True
        timer.name = f"otpy-timer-{timer.name}"
        timer.start()
        return timer

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()
"""The process-wide real clock, the default wherever a ``clock`` argument is omitted."""
