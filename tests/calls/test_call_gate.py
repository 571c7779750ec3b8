"""The CallGate: pause holds calls that have not started, cancel stops every later call,
budgets stop calls before they are made (max_calls never overshot), accounting after."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from otpy.calls import (
    BudgetExhausted,
    CallBudget,
    CallGate,
    CallsCancelled,
    CallsStopped,
    CallTotals,
    cost_of,
)
from otpy.errors import ConfigurationError
from otpy.providers import Completion, Usage
from otpy.testing import FakeClock, wait_until


def answer(tokens_in: int = 10, tokens_out: int = 5, provider: str = "sim") -> Completion:
    usage = Usage(input_tokens=tokens_in, output_tokens=tokens_out)
    return Completion(text="ok", usage=usage, model="m", provider=provider)


class Caller:
    """A thread that enters the gate (or replays) and records how it ended."""

    def __init__(self, gate: CallGate, action: Callable[[], None] | None = None) -> None:
        self.outcome: str | None = None
        self.entered = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(action or gate.enter,))
        self._thread.start()

    def _run(self, action: Callable[[], None]) -> None:
        try:
            action()
            self.outcome = "entered"
        except CallsStopped as stop:
            self.outcome = type(stop).__name__
        self.entered.set()

    def join(self) -> str | None:
        self._thread.join(10)
        assert not self._thread.is_alive()
        return self.outcome


def test_pause_holds_calls_that_have_not_started_and_resume_lets_them_go() -> None:
    gate = CallGate()
    gate.enter()  # one call in flight before the pause
    gate.pause()
    held = [Caller(gate), Caller(gate, gate.replay)]
    wait_until(lambda: gate.waiting == 2, 10, "both calls held")
    assert gate.state == "paused" and not any(c.entered.is_set() for c in held)
    gate.leave(answer())  # the call in flight finishes and is counted
    assert gate.wait_quiet(0) and gate.totals().calls == 1 and gate.waiting == 2
    gate.resume()
    assert [c.join() for c in held] == ["entered", "entered"]
    gate.leave(answer())
    assert gate.totals() == CallTotals(calls=2, replayed=1, input_tokens=20, output_tokens=10)


def test_cancel_wakes_held_calls_and_stops_every_later_one() -> None:
    gate = CallGate()
    gate.enter()
    gate.pause()
    held = Caller(gate)
    wait_until(lambda: gate.waiting == 1, 10, "a held call")
    gate.cancel()
    assert held.join() == "CallsCancelled" and gate.state == "cancelled"
    with pytest.raises(CallsCancelled):
        gate.enter()
    with pytest.raises(CallsCancelled):
        gate.replay()
    gate.leave(answer())  # the call that was in flight still counts
    assert gate.totals().calls == 1 and gate.in_flight == 0
    gate.resume()  # nothing brings a cancelled gate back
    assert gate.state == "cancelled"


def test_a_stop_is_not_an_exception_the_program_can_swallow() -> None:
    gate = CallGate(CallBudget(max_calls=1))
    gate.enter()
    gate.leave(answer())
    swallowed = False
    with pytest.raises(BudgetExhausted) as stop:
        try:
            gate.enter()
        except Exception:  # what DSPy's Evaluate does per example
            swallowed = True
    assert not swallowed and not isinstance(stop.value, Exception)
    assert (stop.value.budget, stop.value.limit, stop.value.spent) == ("max_calls", 1, 1)


def test_max_calls_is_never_overshot_by_concurrent_calls() -> None:
    gate = CallGate(CallBudget(max_calls=5))
    start = threading.Barrier(12)
    outcomes: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        start.wait()
        try:
            gate.enter()
        except BudgetExhausted:
            with lock:
                outcomes.append("stopped")
            return
        gate.leave(answer())
        with lock:
            outcomes.append("called")

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(outcomes) == ["called"] * 5 + ["stopped"] * 7
    assert gate.totals().calls == 5 and gate.state == "exhausted"


def test_a_call_waits_while_max_calls_is_held_in_flight_and_goes_if_one_fails() -> None:
    gate = CallGate(CallBudget(max_calls=2))
    gate.enter()
    gate.enter()  # two in flight: a third must wait to see how they end
    waiting = Caller(gate)
    wait_until(lambda: gate.waiting == 1, 10, "the third call held")
    gate.leave(None)  # one failed: its slot is free again
    assert waiting.join() == "entered"
    gate.leave(answer())
    gate.leave(answer())
    assert gate.totals() == CallTotals(calls=2, failed=1, input_tokens=20, output_tokens=10)
    with pytest.raises(BudgetExhausted):
        gate.enter()


def test_token_and_cost_budgets_stop_the_call_after_they_are_spent() -> None:
    tokens = CallGate(CallBudget(max_tokens=40))
    for _ in range(3):  # 15 tokens a call: 15, 30, 45 -> the fourth is refused
        tokens.enter()
        tokens.leave(answer())
    with pytest.raises(BudgetExhausted, match="max_tokens"):
        tokens.enter()
    assert tokens.totals().tokens == 45  # overshot by the one call that crossed it
    prices = {"sim": (1_000.0, 2_000.0)}  # $ per million tokens: a call costs $0.02
    assert cost_of(answer(), prices) == pytest.approx(0.02)
    dollars = CallGate(CallBudget(max_cost=0.05), prices=prices)
    for _ in range(3):
        dollars.enter()
        dollars.leave(answer())
    with pytest.raises(BudgetExhausted, match="max_cost"):
        dollars.enter()
    assert dollars.totals().cost == pytest.approx(0.06)
    assert cost_of(answer(provider="unpriced"), prices) == 0.0


def test_max_seconds_counts_running_time_only(clock: FakeClock) -> None:
    gate = CallGate(CallBudget(max_seconds=10), clock=clock, elapsed=4.0)
    clock.advance(3)
    gate.pause()
    clock.advance(100)  # paused time does not count
    gate.resume()
    assert gate.elapsed() == pytest.approx(7.0)
    gate.enter()
    gate.leave(answer())
    clock.advance(3)
    with pytest.raises(BudgetExhausted, match="max_seconds"):
        gate.enter()


def test_spending_from_before_counts_against_the_budget() -> None:
    before = CallTotals(calls=4, input_tokens=40, output_tokens=20, cost=1.0)
    gate = CallGate(CallBudget(max_calls=5), spent=before)
    gate.replay()  # answers from the journal are free and go on
    gate.enter()
    gate.leave(answer())
    with pytest.raises(BudgetExhausted):
        gate.enter()
    with pytest.raises(BudgetExhausted):
        gate.replay()  # once stopped, the program makes no progress at all
    assert gate.totals() == before + CallTotals(
        calls=1, replayed=1, input_tokens=10, output_tokens=5
    )


@pytest.mark.parametrize(
    ("budget", "problem"),
    [
        ({"max_calls": 0}, "max_calls must be an integer > 0"),
        ({"max_tokens": 2.5}, "max_tokens must be an integer > 0"),
        ({"max_cost": -1}, "max_cost must be a number > 0"),
        ({"max_seconds": float("inf")}, "max_seconds must be finite"),
        ({"max_calls": True}, "max_calls must be an integer > 0"),
    ],
)
def test_bad_budgets_are_refused_by_name(budget: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        CallBudget(**budget)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="elapsed"):
        CallGate(elapsed=-1)
