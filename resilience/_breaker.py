"""CircuitBreaker: pybreaker's storage, counters, listeners and transitions, with calls that
run concurrently, one half-open probe at a time, an injected clock and stale outcomes ignored.

pybreaker holds its lock for a whole call and lets every half-open call through; here the
lock (pybreaker's own RLock, so listeners see what they would under pybreaker) is held only
to admit a call and to record its outcome. Every state change starts a new generation; an
outcome from a call admitted in an older generation is counted in the statistics only.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, ParamSpec, TypeVar, cast

import pybreaker

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import CircuitOpenError, ConfigurationError
from otpy.resilience._events import EventSink, emit

__all__ = ["BreakerStats", "CircuitBreaker"]

P = ParamSpec("P")
T = TypeVar("T")
State = Literal["closed", "open", "half-open"]
Exclusion = type[BaseException] | Callable[[BaseException], bool]
_Events = list[tuple[str, Mapping[str, float], Mapping[str, Any]]]
PROBE_IN_FLIGHT = "half-open, probe in flight"


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


class _ClockedBreaker(pybreaker.CircuitBreaker):
    """pybreaker's breaker with ``opened_at`` read from an otpy :class:`Clock`."""

    def __init__(self, clock: Clock, **kwargs: Any) -> None:
        self.otpy_clock = clock
        super().__init__(**kwargs)

    def open(self) -> bool:
        with self._lock:
            self._state_storage.opened_at = datetime.fromtimestamp(self.otpy_clock.time(), UTC)
            self.state = self._state_storage.state = pybreaker.STATE_OPEN
            return self._throw_new_error_on_trip


def _with_block() -> None:
    """Stands for the body of a ``calling()`` block in listeners' ``before_call``."""


def _instance_of(cls: type[BaseException]) -> Callable[[BaseException], bool]:
    return lambda exc: isinstance(exc, cls)


def _exclusion(name: str, item: object) -> Exclusion:
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


def _count(name: str, arg: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"breaker {name!r}: {arg} must be an int >= 1, got {value!r}")
    return value


class CircuitBreaker:
    """Refuses calls (CircuitOpenError) after ``fail_max`` consecutive faults, for
    ``reset_timeout`` seconds of ``clock`` time; then admits one probe at a time until
    ``success_threshold`` probes succeed (closed) or one fails (open again).

    ``exclude`` names errors that are not faults (types or predicates): neutral while
    closed, and as a probe proof that the service answered. Thread-safe; calls run
    concurrently. ``state_storage`` (e.g. ``pybreaker.CircuitRedisStorage``) shares state.
    """

    def __init__(
        self,
        name: str = "breaker",
        *,
        fail_max: int = 5,
        reset_timeout: float = 60.0,
        success_threshold: int = 1,
        exclude: Iterable[Exclusion] = (),
        listeners: Iterable[pybreaker.CircuitBreakerListener] = (),
        state_storage: pybreaker.CircuitBreakerStorage | None = None,
        clock: Clock | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        ok = isinstance(reset_timeout, int | float) and not isinstance(reset_timeout, bool)
        if not ok or not math.isfinite(reset_timeout) or reset_timeout < 0:
            raise ConfigurationError(
                f"breaker {name!r}: reset_timeout must be a finite number of seconds >= 0, "
                f"got {reset_timeout!r}"
            )
        self.name = name
        self._on_event = on_event
        self._reset_timeout = float(reset_timeout)
        self._clock = clock if clock is not None else SYSTEM_CLOCK
        self._cb = _ClockedBreaker(
            self._clock,
            fail_max=_count(name, "fail_max", fail_max),
            reset_timeout=self._reset_timeout,
            success_threshold=_count(name, "success_threshold", success_threshold),
            exclude=[_exclusion(name, item) for item in exclude],
            listeners=list(listeners),
            state_storage=state_storage,
            name=name,
            throw_new_error_on_trip=False,
        )
        self._lock = self._cb._lock  # one lock: pybreaker's transitions take it too
        self._seen = self._cb.state  # the state object of the current generation
        self._gen = 0
        self._probe_gen: int | None = None  # generation whose probe is in flight
        self._in_flight = self._calls = self._successes = self._failures = 0
        self._excluded = self._rejected = self._trips = self._stale = 0

    # -- public ---------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current state; "open" until a call finds the reset timeout over."""
        with self._events() as events, self._lock:
            return self._sync(events)

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn`` if the breaker admits it, record the outcome, return or re-raise."""
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(f"breaker {self.name!r}: {fn!r} is async; call takes sync functions")
        ticket = self._admit(fn, args, kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._settle(ticket, exc)
            raise
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()  # never awaited: no RuntimeWarning
            self._settle(ticket, None, aborted=True)
            raise TypeError(
                f"breaker {self.name!r}: {fn!r} returned an awaitable; call takes sync functions"
            )
        self._settle(ticket, None)
        return result

    @contextlib.contextmanager
    def calling(self) -> Iterator[None]:
        """The rules of :meth:`call` for a ``with`` block (refused at entry)."""
        ticket = self._admit(_with_block, (), {})
        try:
            yield
        except BaseException as exc:
            self._settle(ticket, exc)
            raise
        self._settle(ticket, None)

    def retry_in(self) -> float:
        """Seconds until a probe would be admitted (0 when closed or half-open)."""
        with self._events() as events, self._lock:
            return self._remaining() if self._sync(events) == "open" else 0.0

    def open(self) -> None:
        """Open now, for a full ``reset_timeout`` (calls in flight become stale)."""
        with self._events() as events, self._lock:
            self._cb.open()
            self._sync(events)

    def close(self) -> None:
        """Close now and reset the counts (calls in flight become stale)."""
        with self._events() as events, self._lock:
            self._cb.close()
            self._sync(events)

    def add_listener(self, listener: pybreaker.CircuitBreakerListener) -> None:
        """Add a pybreaker listener (called with the underlying pybreaker breaker)."""
        self._cb.add_listener(listener)

    def statistics(self) -> BreakerStats:
        """A consistent snapshot of the state and the counts so far."""
        with self._events() as events, self._lock:
            state = self._sync(events)
            opened = self._cb._state_storage.opened_at
            return BreakerStats(
                name=self.name,
                state=state,
                fail_counter=self._cb.fail_counter,
                success_counter=self._cb.success_counter,
                fail_max=self._cb.fail_max,
                reset_timeout=self._reset_timeout,
                opened_at=opened.timestamp() if opened and state != "closed" else None,
                retry_in=self._remaining() if state == "open" else 0.0,
                in_flight=self._in_flight,
                probe_in_flight=self._probe_gen == self._gen,
                calls=self._calls,
                successes=self._successes,
                failures=self._failures,
                excluded=self._excluded,
                rejected=self._rejected,
                trips=self._trips,
                stale=self._stale,
            )

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._seen.name!r})"

    # -- internals (the _sync, _remaining, _release helpers run under the lock) -------------

    @contextlib.contextmanager
    def _events(self) -> Iterator[_Events]:
        """Collect events under the lock; deliver them once it is released."""
        events: _Events = []
        try:
            yield events
        finally:
            for name, measurements, metadata in events:
                emit(self._on_event, name, self.name, measurements, **metadata)

    def _sync(self, events: _Events) -> State:
        """Notice a state change (ours or, via shared storage, another process's)."""
        state = self._cb.state  # pybreaker re-reads the storage here
        if state is not self._seen:
            old, self._seen = self._seen.name, state
            self._gen += 1
            if old != state.name:
                events.append(("breaker.state_changed", {}, {"old": old, "new": state.name}))
            if state.name == pybreaker.STATE_OPEN:
                self._trips += 1
                fails = {"fail_counter": float(self._cb.fail_counter)}
                events.append(("breaker.tripped", fails, {"previous": old}))
        return cast(State, state.name)

    def _remaining(self) -> float:
        opened_at = self._cb._state_storage.opened_at
        if opened_at is None:
            return 0.0
        due = opened_at + timedelta(seconds=self._reset_timeout)
        now = datetime.fromtimestamp(self._clock.time(), UTC)
        return max(0.0, (due - now).total_seconds())

    def _admit(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> tuple[int, bool]:
        with self._events() as events, self._lock:
            state = self._sync(events)
            if state == "open":
                wait = self._remaining()
                if wait > 0:
                    raise self._reject("open", wait, events)
                self._cb.half_open()
                state = self._sync(events)
            probe = state == "half-open"
            if probe and self._probe_gen == self._gen:
                raise self._reject(PROBE_IN_FLIGHT, 0.0, events)
            ticket = (self._gen, probe)
            if probe:
                self._probe_gen = self._gen
            self._in_flight += 1
            try:
                for listener in self._cb.listeners:
                    listener.before_call(self._cb, fn, *args, **kwargs)
            except BaseException:
                self._release(ticket)
                raise
            self._calls += 1
            return ticket

    def _reject(self, reason: str, retry_in: float, events: _Events) -> CircuitOpenError:
        self._rejected += 1
        events.append(("breaker.rejected", {"retry_in": retry_in}, {"reason": reason}))
        return CircuitOpenError(self.name, retry_in, reason)

    def _release(self, ticket: tuple[int, bool]) -> None:
        self._in_flight -= 1
        if ticket[1] and self._probe_gen == ticket[0]:
            self._probe_gen = None

    def _settle(
        self, ticket: tuple[int, bool], exc: BaseException | None, *, aborted: bool = False
    ) -> None:
        """Record an outcome through pybreaker's state object, unless it is stale.

        Not a fault: a BaseException that is not an Exception (KeyboardInterrupt, ...) and
        an excluded error, except that an excluded error of a probe shows the service works.
        """
        tb = exc.__traceback__ if exc is not None else None
        try:
            with self._events() as events, self._lock:
                self._release(ticket)
                if aborted or (exc is not None and not isinstance(exc, Exception)):
                    return
                fault = exc is not None and self._cb.is_system_error(exc)
                self._successes += exc is None
                self._failures += fault
                self._excluded += exc is not None and not fault
                self._sync(events)
                if ticket[0] != self._gen:
                    self._stale += 1
                    return
                try:
                    if exc is not None and fault:
                        self._seen._handle_error(exc, reraise=False)
                    elif exc is None or ticket[1]:
                        self._seen._handle_success()
                except BaseException as raised:  # on_failure re-raises exc when it opens
                    if raised is not exc:
                        raise
                finally:
                    self._sync(events)
        finally:
            if exc is not None:
                exc.__traceback__ = tb  # drop the frames pybreaker's re-raise added
