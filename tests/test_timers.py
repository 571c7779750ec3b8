"""``TimerQueue``: many timers on one clock timer, in deadline order, cancellable."""

from __future__ import annotations

import threading

from otpy._timers import TimerQueue
from otpy.clock import SYSTEM_CLOCK
from otpy.testing import FakeClock


def test_timers_run_in_deadline_order_on_one_clock_timer() -> None:
    clock = FakeClock()
    timers = TimerQueue(clock)
    ran: list[str] = []
    timers.call_later(5, lambda: ran.append("5"))
    timers.call_later(1, lambda: ran.append("1"))
    late = timers.call_later(3, lambda: ran.append("3"))
    timers.call_later(3, lambda: ran.append("3b"))
    assert clock.pending_timers() == 1 and timers.pending() == 4  # one armed for all
    late.cancel()
    clock.advance(1)
    assert ran == ["1"]
    clock.advance(10)
    assert ran == ["1", "3b", "5"] and timers.pending() == 0


def test_a_failing_callback_is_logged_and_the_others_run() -> None:
    clock = FakeClock()
    timers = TimerQueue(clock)
    ran: list[int] = []

    def boom() -> None:
        raise RuntimeError("boom")

    timers.call_later(1, boom)
    timers.call_later(1, lambda: ran.append(1))
    clock.advance(1)
    assert ran == [1]


def test_a_timer_scheduled_from_a_callback_runs_and_close_cancels_all() -> None:
    clock = FakeClock()
    timers = TimerQueue(clock)
    ran: list[float] = []

    def again() -> None:
        ran.append(clock.monotonic())
        if len(ran) < 3:
            timers.call_later(2, again)

    timers.call_later(2, again)
    for _ in range(3):
        clock.advance(2)
    assert ran == [2.0, 4.0, 6.0]
    timers.call_later(1, lambda: ran.append(-1))
    timers.close()
    timers.call_later(1, lambda: ran.append(-2))
    clock.advance(5)
    assert ran == [2.0, 4.0, 6.0] and timers.pending() == 0


def test_on_the_system_clock_an_earlier_timer_re_arms_the_one_thread() -> None:
    timers = TimerQueue(SYSTEM_CLOCK)
    fired = threading.Event()
    timers.call_later(3600, lambda: None)
    timers.call_later(0.01, fired.set)
    assert fired.wait(5)
    timers.close()
