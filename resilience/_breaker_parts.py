"""What a CircuitBreaker is made of besides its state machine: its statistics snapshot,
pybreaker's breaker on an otpy clock, and the checks of what it is given (exclusions,
counts, async functions)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import pybreaker

from otpy.clock import Clock
from otpy.errors import ConfigurationError

__all__ = ["BreakerStats", "ClockedBreaker", "Exclusion", "State", "count", "exclusion", "is_async"]

State = Literal["closed", "open", "half-open"]
Exclusion = type[BaseException] | Callable[[BaseException], bool]
_ASYNC_FLAGS = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


@dataclass(frozen=True)
class BreakerStats:
    """A snapshot of a :class:`CircuitBreaker` (see ``CircuitBreaker.statistics``)."""

    name: str
    state: State
    fail_counter: int  # consecutive faults counted toward fail_max
    success_counter: int  # successful probes in this half-open period
    fail_max: int
    reset_timeout: float
    opened_at: float | None  # clock time (epoch s) it last opened; None while closed
    retry_in: float  # seconds until a probe would be admitted
    in_flight: int  # calls admitted and not finished
    probe_in_flight: bool
    calls: int  # calls admitted (the function was called)
    successes: int
    failures: int  # faults: errors not excluded
    excluded: int  # errors excluded as non-faults
    rejected: int  # calls refused with CircuitOpenError
    trips: int  # times it opened
    stale: int  # outcomes ignored: the state changed while the call ran


class ClockedBreaker(pybreaker.CircuitBreaker):
    """pybreaker's breaker with ``opened_at`` read from an otpy :class:`Clock`."""

    def __init__(self, clock: Clock, **kwargs: Any) -> None:
        self.otpy_clock = clock
        super().__init__(**kwargs)

    def open(self) -> bool:
        with self._lock:
            self._state_storage.opened_at = datetime.fromtimestamp(self.otpy_clock.time(), UTC)
            self.state = self._state_storage.state = pybreaker.STATE_OPEN
            return self._throw_new_error_on_trip


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is an ``async def`` (or async generator) function, as ``inspect``
    says, reading the code flags directly where there is a code object (the common case)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    code = getattr(fn, "__code__", None)
    if code is None or not isinstance(getattr(code, "co_flags", None), int):
        return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
    return bool(code.co_flags & _ASYNC_FLAGS)


def _instance_of(cls: type[BaseException]) -> Callable[[BaseException], bool]:
    return lambda exc: isinstance(exc, cls)


def exclusion(name: str, item: object) -> Exclusion:
    if isinstance(item, type):
        if not issubclass(item, BaseException):
            raise ConfigurationError(f"breaker {name!r}: exclude: {item!r} is not an exception")
        # pybreaker tests `type(x) is type`: it would call a class with a metaclass as a
        # predicate, which builds a (truthy) exception and so excludes every error.
        return item if type(item) is type else _instance_of(item)
    if callable(item):
        return cast(Callable[[BaseException], bool], item)
    raise ConfigurationError(
        f"breaker {name!r}: exclude takes exception types or predicates, got {item!r}"
    )


def count(name: str, arg: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"breaker {name!r}: {arg} must be an int >= 1, got {value!r}")
    return value
