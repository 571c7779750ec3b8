"""The gate a job's LLM calls pass: pause, cancel and budgets before a call, accounting after.

A program (a DSPy compile, an evaluation) makes its calls from any number of threads; each
live call is bracketed by :meth:`CallGate.enter` and :meth:`CallGate.leave`, and each answer
taken from a journal instead by :meth:`CallGate.replay`. The job runner holds the gate and
steers it from its own thread:

- ``pause()``: no call starts (``enter`` and ``replay`` wait); calls in flight finish.
  ``resume()`` lets them go on.
- ``cancel()``: every waiting and every later ``enter``/``replay`` raises
  :class:`CallsCancelled`; a call in flight finishes and is counted.
- budgets (:class:`CallBudget`), checked in ``enter`` before the call is made: once
  ``max_tokens`` or ``max_cost`` are spent, or ``max_seconds`` of running time (paused
  time excluded) have passed, ``enter`` raises :class:`BudgetExhausted`, so those are
  overshot by at most what the calls in flight then spend. ``max_calls`` is never
  overshot: a call waits while the calls done and in flight would reach it, and goes when
  one in flight fails. Spending restored from before (``spent``, ``elapsed``) counts.

The stop signals are ``BaseException`` subclasses, not :class:`~otpy.errors.OtpyError`:
DSPy's Evaluate and optimizers catch ``Exception`` per example and go on, which must not
swallow a stop. Once cancelled or exhausted the gate stays so, and every later call
raises, so a thread pool that keeps running its queued work makes no call.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import ConfigurationError
from otpy.providers import Completion

__all__ = [
    "BudgetExhausted",
    "CallBudget",
    "CallGate",
    "CallTotals",
    "CallsCancelled",
    "CallsStopped",
    "GateState",
    "Prices",
    "cost_of",
]

GateState: TypeAlias = Literal["running", "paused", "cancelled", "exhausted"]
Prices: TypeAlias = Mapping[str, tuple[float, float]]
"""Dollars per million (input, output) tokens, by provider name."""


class CallsStopped(BaseException):
    """Raised inside an LLM call to stop the program making it: the gate was cancelled
    (:class:`CallsCancelled`) or a budget is spent (:class:`BudgetExhausted`). A
    BaseException so that no ``except Exception`` in the program swallows it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CallsCancelled(CallsStopped):
    """The gate was cancelled: no further LLM call is made."""


class BudgetExhausted(CallsStopped):
    """A budget is spent: ``budget`` names it (``max_calls``, ``max_tokens``,
    ``max_cost``, ``max_seconds``), ``limit`` is its value and ``spent`` what was spent."""

    def __init__(self, budget: str, limit: float, spent: float) -> None:
        super().__init__(f"budget {budget}={limit:g} spent ({spent:g}): no further LLM call")
        self.budget = budget
        self.limit = limit
        self.spent = spent


@dataclass(frozen=True)
class CallBudget:
    """Limits on a job's LLM calls; None means no limit. ConfigurationError for a value
    that is not a positive number (``max_calls``/``max_tokens`` integers)."""

    max_calls: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens", "max_cost", "max_seconds"):
            value = getattr(self, name)
            if value is None:
                continue
            whole = name in ("max_calls", "max_tokens")
            kind = int if whole else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
                expected = "an integer > 0" if whole else "a number > 0"
                raise ConfigurationError(f"{name} must be {expected} or None, got {value!r}")
            if not whole and not math.isfinite(value):
                raise ConfigurationError(f"{name} must be finite, got {value!r}")


@dataclass(frozen=True)
class CallTotals:
    """LLM calls counted: ``calls`` answered live, ``replayed`` (answered from a journal,
    spending nothing), ``failed`` (raised after the provider layer's retries), the tokens
    and the ``cost`` in dollars of the live ones."""

    calls: int = 0
    replayed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: CallTotals) -> CallTotals:
        return CallTotals(
            calls=self.calls + other.calls,
            replayed=self.replayed + other.replayed,
            failed=self.failed + other.failed,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost=self.cost + other.cost,
        )


def cost_of(completion: Completion, prices: Prices) -> float:
    """Dollars ``completion`` cost by ``prices`` (0 for a provider without a price)."""
    price = prices.get(completion.provider)
    if price is None:
        return 0.0
    usage = completion.usage
    return (usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1e6


class CallGate:
    """Pause, cancel and budgets for a program's LLM calls (see the module docstring).

    ``budget`` limits them; ``prices`` price the answers; ``spent`` and ``elapsed`` are
    what the job spent before (a resumed job), counted against the budget; ``clock``
    measures running time; ``on_quiet`` is called (in the thread of the call that left,
    outside the gate's lock; it must not block) when the last call in flight leaves a
    paused gate. Every method is safe from any thread; ``enter``, ``replay`` and
    ``wait_quiet`` block (on pause, on ``max_calls``), nothing else does.
    """

    def __init__(
        self,
        budget: CallBudget | None = None,
        *,
        prices: Prices | None = None,
        clock: Clock = SYSTEM_CLOCK,
        spent: CallTotals | None = None,
        elapsed: float = 0.0,
        on_quiet: Callable[[], None] | None = None,
    ) -> None:
        if budget is not None and not isinstance(budget, CallBudget):
            raise ConfigurationError(f"budget must be a CallBudget, got {budget!r}")
        if isinstance(elapsed, bool) or not isinstance(elapsed, int | float) or elapsed < 0:
            raise ConfigurationError(f"elapsed must be seconds >= 0, got {elapsed!r}")
        self.budget = budget or CallBudget()
        self.prices: Prices = dict(prices or {})
        self.clock = clock
        self.before = spent or CallTotals()
        self.on_quiet = on_quiet
        self._lock = threading.Condition()
        self._totals = CallTotals()
        self._state: GateState = "running"
        self._why: BudgetExhausted | None = None
        self._in_flight = 0
        self._waiting = 0
        self._elapsed_before = float(elapsed)
        self._started = clock.monotonic()
        self._paused_at: float | None = None
        self._paused_for = 0.0

    # -- control (the runner's thread) ----------------------------------------------------

    def pause(self) -> None:
        """Hold every call that has not started; no-op unless running."""
        with self._lock:
            if self._state == "running":
                self._state = "paused"
                self._paused_at = self.clock.monotonic()

    def resume(self) -> None:
        """Let held calls go on; no-op unless paused."""
        with self._lock:
            if self._state == "paused":
                self._unpause()
                self._state = "running"
                self._lock.notify_all()

    def cancel(self) -> None:
        """Stop for good: waiting and later calls raise CallsCancelled."""
        with self._lock:
            if self._state == "paused":
                self._unpause()
            if self._state != "cancelled":
                self._state = "cancelled"
                self._lock.notify_all()

    def restore(self, spent: CallTotals) -> None:
        """Count ``spent`` as what was spent before this gate (in place of ``spent`` given
        to the constructor): a resumed job's journal, read once the gate exists."""
        with self._lock:
            self.before = spent

    @property
    def state(self) -> GateState:
        return self._state

    @property
    def in_flight(self) -> int:
        """Live calls between ``enter`` and ``leave``."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Calls held in ``enter`` or ``replay`` (by a pause, or by ``max_calls``)."""
        return self._waiting

    @property
    def exhausted_by(self) -> BudgetExhausted | None:
        """The budget that stopped the calls, if one did."""
        return self._why

    def totals(self) -> CallTotals:
        """What was spent: before (``spent``) plus the calls through this gate."""
        with self._lock:
            return self.before + self._totals

    def elapsed(self) -> float:
        """Running seconds: before, plus since the gate was made, paused time excluded."""
        with self._lock:
            return self._elapsed()

    def wait_quiet(self, timeout: float | None = None) -> bool:
        """Wait until no live call is in flight (say, after ``pause``); whether none is."""
        with self._lock:
            return self._lock.wait_for(lambda: self._in_flight == 0, timeout)

    # -- calls (the program's threads) ----------------------------------------------------

    def enter(self) -> None:
        """Before a live call: wait while paused (or while ``max_calls`` is held by calls in
        flight), then take a slot. Raises CallsCancelled or BudgetExhausted instead."""
        with self._lock:
            while True:
                self._check_stopped()
                if self._state == "paused" or self._calls_held():
                    self._hold()
                    continue
                why = self._spent_budget()
                if why is not None:
                    self._state, self._why = "exhausted", why
                    self._lock.notify_all()
                    raise _again(why)
                self._in_flight += 1
                return

    def leave(self, completion: Completion | None) -> None:
        """After a live call that ``enter`` admitted: free its slot and count it (None: it
        failed). Never raises, never blocks (but for ``on_quiet``)."""
        with self._lock:
            self._in_flight -= 1
            quiet = self._in_flight == 0 and self._state == "paused"
            totals = self._totals
            if completion is None:
                self._totals = totals + CallTotals(failed=1)
            else:
                usage = completion.usage
                self._totals = totals + CallTotals(
                    calls=1,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cost=cost_of(completion, self.prices),
                )
            self._lock.notify_all()
        if quiet and self.on_quiet is not None:
            self.on_quiet()

    def replay(self) -> None:
        """Before an answer from the journal: wait while paused, then count it. Raises
        CallsCancelled (or BudgetExhausted once a budget stopped the calls)."""
        with self._lock:
            while True:
                self._check_stopped()
                if self._state != "paused":
                    break
                self._hold()
            self._totals = self._totals + CallTotals(replayed=1)

    # -- under the lock -------------------------------------------------------------------

    def _hold(self) -> None:
        self._waiting += 1
        try:
            self._lock.wait()
        finally:
            self._waiting -= 1

    def _check_stopped(self) -> None:
        if self._state == "cancelled":
            raise CallsCancelled("the job was cancelled: no further LLM call")
        if self._state == "exhausted" and self._why is not None:
            raise _again(self._why)

    def _calls_held(self) -> bool:
        """Whether ``max_calls`` would be reached by the calls in flight, none of which
        has failed yet (one call must wait for them)."""
        limit = self.budget.max_calls
        if limit is None or self._in_flight == 0:
            return False
        done = self.before.calls + self._totals.calls
        return done < limit <= done + self._in_flight

    def _spent_budget(self) -> BudgetExhausted | None:
        budget, spent = self.budget, self.before + self._totals
        checks = (
            ("max_calls", budget.max_calls, spent.calls),
            ("max_tokens", budget.max_tokens, spent.tokens),
            ("max_cost", budget.max_cost, spent.cost),
            ("max_seconds", budget.max_seconds, self._elapsed()),
        )
        for name, limit, used in checks:
            if limit is not None and used >= limit:
                return BudgetExhausted(name, limit, used)
        return None

    def _elapsed(self) -> float:
        now = self.clock.monotonic()
        paused = self._paused_for + (now - self._paused_at if self._paused_at is not None else 0)
        return self._elapsed_before + max(0.0, now - self._started - paused)

    def _unpause(self) -> None:
        if self._paused_at is not None:
            self._paused_for += self.clock.monotonic() - self._paused_at
            self._paused_at = None

    def __repr__(self) -> str:
        totals = self.totals()
        return (
            f"<CallGate {self._state} calls={totals.calls} replayed={totals.replayed} "
            f"in_flight={self._in_flight}>"
        )


def _again(why: BudgetExhausted) -> BudgetExhausted:
    """A fresh exception for each thread (one instance raised twice shares a traceback)."""
    return BudgetExhausted(why.budget, why.limit, why.spent)
