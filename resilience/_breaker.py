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
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar, cast

import pybreaker

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import CircuitOpenError, ConfigurationError
from otpy.resilience._breaker_parts import (
    BreakerStats,
    ClockedBreaker,
    Exclusion,
    State,
    count,
    exclusion,
    is_async,
)
from otpy.resilience._events import EventSink, emit

__all__ = ["BreakerStats", "CircuitBreaker"]

P = ParamSpec("P")
T = TypeVar("T")
_Events = list[tuple[str, Mapping[str, float], Mapping[str, Any]]]
PROBE_IN_FLIGHT = "half-open, probe in flight"
_PLAIN = frozenset({type(None), bool, int, float, str, bytes, dict, list, tuple})  # never awaitable


def _with_block() -> None:
    """Stands for the body of a ``calling()`` block in listeners' ``before_call``."""


class _Collected:
    """Events gathered under the breaker's lock, delivered once it is released (a class,
    not a generator context manager: it is on every call's path)."""

    __slots__ = ("breaker", "events")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self.events: _Events = []

    def __enter__(self) -> _Events:
        return self.events

    def __exit__(self, *exc_info: object) -> None:
        for name, measurements, metadata in self.events:
            emit(self.breaker._on_event, name, self.breaker.name, measurements, **metadata)


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
        self._cb = ClockedBreaker(
            self._clock,
            fail_max=count(name, "fail_max", fail_max),
            reset_timeout=self._reset_timeout,
            success_threshold=count(name, "success_threshold", success_threshold),
            exclude=[exclusion(name, item) for item in exclude],
            listeners=list(listeners),
            state_storage=state_storage,
            name=name,
            throw_new_error_on_trip=False,
        )
        self._lock = self._cb._lock  # one lock: pybreaker's transitions take it too
        # A storage given to it may be shared (Redis, or one memory storage for several
        # breakers): the state is re-read from it. The one it makes for itself only changes
        # here, so the state object pybreaker holds is the state.
        self._shared = state_storage is not None
        self._seen = self._cb.state  # the state object of the current generation
        self._closed = self._seen.name == pybreaker.STATE_CLOSED
        self._quick = False  # calls may take the closed-state short cut (see _hooks)
        self._hooks()
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
        if is_async(fn):
            raise TypeError(f"breaker {self.name!r}: {fn!r} is async; call takes sync functions")
        ticket = self._admit_closed() if self._quick else None
        if ticket is None:
            ticket = self._admit(fn, args, kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._settle(ticket, exc)
            raise
        if type(result) not in _PLAIN and inspect.isawaitable(result):
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
        if not self._shared and self._seen.name == pybreaker.STATE_CLOSED:
            return 0.0  # in memory, nothing to look up: closed is closed
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

    @property
    def shared(self) -> bool:
        """Whether its state lives in a storage it was given (other processes may change
        it: every read goes to the storage)."""
        return self._shared

    def add_listener(self, listener: pybreaker.CircuitBreakerListener) -> None:
        """Add a pybreaker listener (called with the underlying pybreaker breaker)."""
        with self._lock:
            self._cb.add_listener(listener)
            self._hooks()

    def _hooks(self) -> None:
        """Under the lock: may a call skip the general admission and settlement? Only with
        the state in memory (nobody else changes it) and no listener that hears calls
        (``before_call``, ``success``): then a closed breaker admits with a count, and a
        success only resets the fault count."""
        base = pybreaker.CircuitBreakerListener
        hears = any(
            type(x).before_call is not base.before_call or type(x).success is not base.success
            for x in self._cb.listeners
        )
        self._quick = not self._shared and not hears

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

    def _events(self) -> _Collected:
        """Collect events under the lock; deliver them once it is released."""
        return _Collected(self)

    def _sync(self, events: _Events) -> State:
        """Notice a state change (ours or, via shared storage, another process's)."""
        state = self._cb.state if self._shared else self._cb._state  # shared: re-read it
        if state is not self._seen:
            old, self._seen = self._seen.name, state
            self._closed = state.name == pybreaker.STATE_CLOSED
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

    def _admit_closed(self) -> tuple[int, bool] | None:
        """The short cut of :meth:`_admit` for a closed breaker (see ``_hooks``); None
        when it is not closed."""
        with self._lock:
            if not self._closed:
                return None
            self._in_flight += 1
            self._calls += 1
            return (self._gen, False)

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
        if exc is None and not aborted and self._quick:
            with self._lock:  # the short cut: a success of this generation while closed
                if ticket[0] == self._gen and self._closed:
                    self._in_flight -= 1
                    self._successes += 1
                    self._seen._handle_success()  # closed: resets the fault count
                    return
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
