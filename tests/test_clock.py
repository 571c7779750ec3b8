"""The system clock and the fake clock tests drive time with."""

from __future__ import annotations

import threading

import pytest

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.testing import FakeClock


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(SYSTEM_CLOCK, Clock)
    assert isinstance(FakeClock(), Clock)


def test_system_clock_timer_runs_and_can_be_cancelled() -> None:
    fired = threading.Event()
    SYSTEM_CLOCK.call_later(0.0, fired.set)
    assert fired.wait(5)
    never = threading.Event()
    SYSTEM_CLOCK.call_later(60.0, never.set).cancel()
    assert not never.is_set()
    assert SYSTEM_CLOCK.wait(fired, 0) is True


def test_fake_time_moves_only_when_advanced() -> None:
    clock = FakeClock(start=10.0, epoch=1000.0)
    assert clock.monotonic() == 10.0 and clock.time() == 1010.0
    clock.advance(2.5)
    assert clock.monotonic() == 12.5
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_fake_sleep_returns_when_time_has_passed() -> None:
    clock = FakeClock()
    woke = threading.Event()
    sleeper = threading.Thread(target=lambda: (clock.sleep(3.0), woke.set()))
    sleeper.start()
    clock.wait_for_sleepers(1)
    clock.advance(2.9)
    assert not woke.is_set() and clock.sleepers == 1
    clock.advance(0.1)
    sleeper.join(5)
    assert woke.is_set() and clock.sleepers == 0


def test_fake_wait_returns_on_the_event_or_the_fake_deadline() -> None:
    clock = FakeClock()
    event = threading.Event()
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(clock.wait(event, 5.0)))
    waiter.start()
    clock.wait_for_sleepers(1)
    event.set()
    waiter.join(5)
    assert results == [True]

    other = threading.Event()
    waiter = threading.Thread(target=lambda: results.append(clock.wait(other, 5.0)))
    waiter.start()
    clock.wait_for_sleepers(1)
    clock.advance(5.0)
    waiter.join(5)
    assert results == [True, False]


def test_fake_timers_fire_in_deadline_order_inside_advance() -> None:
    clock = FakeClock()
    fired: list[str] = []
    clock.call_later(2.0, lambda: fired.append("b"))
    clock.call_later(1.0, lambda: fired.append("a"))
    clock.call_later(3.0, lambda: fired.append("never")).cancel()
    assert clock.pending_timers() == 2
    clock.advance(1.5)
    assert fired == ["a"]
    clock.advance(10)
    assert fired == ["a", "b"] and clock.pending_timers() == 0


def test_wait_for_sleepers_times_out() -> None:
    with pytest.raises(TimeoutError):
        FakeClock().wait_for_sleepers(1, timeout=0.01)
