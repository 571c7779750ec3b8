"""guard(): one call path through limiter, breaker, retry, timeout and fallbacks.

For each option of the chain (the guarded function first, then its fallbacks), the
retry policy runs attempts; each attempt

1. fails fast with CircuitOpenError if the breaker is open (no point queueing);
2. reserves its cost in the rate limiter, waiting in FIFO order;
3. runs the function through the breaker, under the per-call timeout;
4. settles the permit with the usage the result reports (``usage``), or releases it if
   the call failed before the provider could count it; a timed-out call keeps its
   reservation (it may still be running). A provider's Retry-After pauses the limiter,
   so every caller sharing it backs off, not only this one.

When an option fails for good, the next one is tried (fallback). Every step is reported
as a :class:`ResilienceEvent` to ``on_event``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

import pybreaker

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import (
    CircuitOpenError,
    ConfigurationError,
    CostExceedsLimitError,
    InvalidRequestError,
    OperationTimeout,
    PermitError,
    RateLimitedError,
    RateLimitTimeout,
)
from otpy.resilience._breaker import CircuitBreaker
from otpy.resilience._events import EventSink, emit
from otpy.resilience._fallback import Fallback, OptionFailure
from otpy.resilience._limiter import RateLimiter
from otpy.resilience._retry import RetryAttempt, RetryPolicy, retry_after_of
from otpy.resilience._timeout import call_with_timeout

__all__ = ["NOT_FAULTS", "Guard", "GuardResult", "Guarded", "guard"]

T = TypeVar("T")

# Errors that say nothing about the provider's health: a breaker should not count them.
NOT_FAULTS: tuple[type[BaseException], ...] = (
    InvalidRequestError,
    RateLimitedError,
    RateLimitTimeout,
    CostExceedsLimitError,
    PermitError,
)

Cost = Mapping[str, int] | Callable[..., Mapping[str, int]]
Usage = Callable[[Any], Mapping[str, int]]


@dataclass(frozen=True)
class GuardResult(Generic[T]):
    """What a guarded call returned and how it got there.

    ``served_by`` names the option that produced ``value``; ``failures`` says why each
    earlier option failed; ``retries`` lists the failed attempts of every option tried;
    ``waited`` is the total time spent waiting for rate limits.
    """

    value: T
    served_by: str
    failures: tuple[OptionFailure, ...]
    retries: tuple[RetryAttempt, ...]
    waited: float


class Guard:
    """The resilience policy for one provider (and model): limiter, breaker, retry,
    per-call timeout. Stateless itself; the limiter and breaker hold the state, so one
    Guard can be shared by any number of threads."""

    def __init__(
        self,
        name: str,
        *,
        limiter: RateLimiter | None = None,
        breaker: CircuitBreaker | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        acquire_timeout: float | None = None,
        clock: Clock | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise ConfigurationError(f"guard {name!r}: timeout must be > 0 s, not {timeout!r}")
        self.name = name
        self.limiter = limiter
        self.breaker = breaker
        self.retry = retry or RetryPolicy.NONE
        self.timeout = timeout
        self.acquire_timeout = acquire_timeout
        self.clock = clock or SYSTEM_CLOCK
        self.on_event = on_event
        if breaker is not None and on_event is not None:
            breaker.add_listener(_BreakerReporter(self))

    def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        cost: Cost | None = None,
        usage: Usage | None = None,
        retries: list[RetryAttempt] | None = None,
        waited: list[float] | None = None,
        admitted: list[float] | None = None,
        **kwargs: Any,
    ) -> T:
        """Call ``fn(*args, **kwargs)`` through this guard; return its result or raise its
        last error. ``cost`` (a mapping, or a function of the call's arguments) is what
        each attempt reserves; ``usage(result)`` the actual usage to settle with.
        ``retries`` / ``waited`` / ``admitted``, when given, collect the failed attempts,
        the seconds waited for the limiter and when it admitted each attempt
        (``Permit.admitted_at``). Blocks the calling thread throughout."""
        units = cost(*args, **kwargs) if callable(cost) else cost
        attempt: Callable[..., T] = self._attempt
        return self.retry.call(
            attempt, fn, args, kwargs, units, usage, (waited, admitted),
            clock=self.clock, on_event=self.on_event, source=self.name, record=retries,
        )  # fmt: skip

    def _attempt(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        cost: Mapping[str, int] | None,
        usage: Usage | None,
        collect: tuple[list[float] | None, list[float] | None],
    ) -> T:
        breaker = self.breaker
        retry_in = breaker.retry_in() if breaker is not None else 0.0
        if breaker is not None and retry_in > 0:
            emit(self.on_event, "breaker.rejected", self.name, {"retry_in": retry_in})
            raise CircuitOpenError(breaker.name, retry_in)
        permit = None
        if self.limiter is not None:
            permit = self.limiter.acquire(cost, timeout=self.acquire_timeout)
            if permit.waited > 0:
                emit(self.on_event, "rate_limit.waited", self.name, {"seconds": permit.waited},
                     limiter=self.limiter.name, cost=dict(permit.cost))  # fmt: skip
            waited, admitted = collect
            if waited is not None:
                waited.append(permit.waited)
            if admitted is not None:
                admitted.append(permit.admitted_at)
        try:
            result = self._run(fn, args, kwargs)
        except CircuitOpenError as exc:  # half-open: another call is the probe
            emit(self.on_event, "breaker.rejected", self.name, {"retry_in": exc.retry_in},
                 reason=exc.reason)  # fmt: skip
            if permit is not None:
                permit.release()
            raise
        except OperationTimeout as exc:
            emit(self.on_event, "call.timed_out", self.name, {"timeout": exc.timeout})
            raise  # the call may still be running at the provider: the permit stands
        except BaseException as exc:
            if permit is not None:
                permit.release()
                after = retry_after_of(exc, self.clock.time())
                if after is not None and self.limiter is not None:
                    self.limiter.pause_for(after)
            raise
        if permit is not None and usage is not None:
            permit.settle(usage(result))
        return result

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        """``fn`` through the breaker (if any), under the timeout (if any)."""
        breaker, timeout, clock, name = self.breaker, self.timeout, self.clock, self.name
        if timeout is None:
            return fn(*args, **kwargs) if breaker is None else breaker.call(fn, *args, **kwargs)
        if breaker is None:
            return call_with_timeout(fn, *args, timeout=timeout, clock=clock, name=name, **kwargs)
        timed: Callable[..., T] = call_with_timeout
        return breaker.call(timed, fn, *args, timeout=timeout, clock=clock, name=name, **kwargs)


class _BreakerReporter(pybreaker.CircuitBreakerListener):
    """Reports the breaker's state changes as the guard's events."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        old = old_state.name if old_state is not None else None
        name = "breaker.tripped" if new_state.name == "open" else "breaker.state_changed"
        emit(self.guard.on_event, name, self.guard.name, {"fail_counter": cb.fail_counter},
             old=old, new=new_state.name)  # fmt: skip


class Guarded(Generic[T]):
    """A function bound to a :class:`Guard` and a fallback chain; call it like the
    function. ``run(...)`` returns a :class:`GuardResult` instead of the bare value."""

    def __init__(
        self,
        fn: Callable[..., T],
        guard: Guard,
        *,
        cost: Cost | None = None,
        usage: Usage | None = None,
        fallbacks: Sequence[Guarded[T] | tuple[str, Callable[..., T]]] = (),
    ) -> None:
        self.fn = fn
        self.guard = guard
        self.cost = cost
        self.usage = usage
        self.fallbacks = tuple(fallbacks)
        self.name = guard.name

    def _option(self, retries: list[RetryAttempt], waited: list[float]) -> Callable[..., T]:
        return partial(self.guard.call, self.fn, cost=self.cost, usage=self.usage,
                       retries=retries, waited=waited)  # fmt: skip

    def run(self, *args: Any, **kwargs: Any) -> GuardResult[T]:
        """Call through the guard, then each fallback in turn until one succeeds.

        Raises the error itself when there are no fallbacks, else ``AllOptionsFailed``
        (with every option's error) when all fail."""
        retries: list[RetryAttempt] = []
        waited: list[float] = []
        if not self.fallbacks:
            value = self._option(retries, waited)(*args, **kwargs)
            return GuardResult(value, self.name, (), tuple(retries), sum(waited))
        options: list[tuple[str, Callable[..., T]]] = [(self.name, self._option(retries, waited))]
        for fallback in self.fallbacks:
            if isinstance(fallback, Guarded):
                options.append((fallback.name, fallback._option(retries, waited)))
            else:
                options.append(fallback)
        chain: Fallback[T] = Fallback(options, name=self.name, on_event=self.guard.on_event)
        outcome = chain.call(*args, **kwargs)
        return GuardResult(
            outcome.value, outcome.served_by, outcome.failures, tuple(retries), sum(waited)
        )

    def __call__(self, *args: Any, **kwargs: Any) -> T:
        if self.fallbacks:
            return self.run(*args, **kwargs).value
        return self.guard.call(self.fn, *args, cost=self.cost, usage=self.usage, **kwargs)

    def __repr__(self) -> str:
        names = [f.name if isinstance(f, Guarded) else f[0] for f in self.fallbacks]
        return f"<Guarded {' -> '.join([self.name, *names])}>"


def guard(
    fn: Callable[..., T],
    *,
    name: str | None = None,
    limiter: RateLimiter | None = None,
    breaker: CircuitBreaker | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    acquire_timeout: float | None = None,
    cost: Cost | None = None,
    usage: Usage | None = None,
    fallbacks: Sequence[Guarded[T] | tuple[str, Callable[..., T]]] = (),
    clock: Clock | None = None,
    on_event: EventSink | None = None,
) -> Guarded[T]:
    """Wrap ``fn`` in limiter -> breaker -> retry -> timeout -> fallbacks.

    Example::

        call = guard(client.complete, name="anthropic/sonnet",
                     limiter=RateLimiter([Limit("requests", "50/minute"),
                                          Limit("tokens", "40000/minute")]),
                     breaker=CircuitBreaker("anthropic", exclude=NOT_FAULTS),
                     retry=RetryPolicy(max_attempts=4), timeout=60,
                     cost=lambda req: {"requests": 1, "tokens": req.max_tokens},
                     usage=lambda out: {"tokens": out.usage.total_tokens},
                     fallbacks=[guard(gemini.complete, name="gemini", ...)])
        completion = call(request)          # or call.run(request).served_by
    """
    g = Guard(
        name or getattr(fn, "__qualname__", None) or repr(fn),
        limiter=limiter,
        breaker=breaker,
        retry=retry,
        timeout=timeout,
        acquire_timeout=acquire_timeout,
        clock=clock,
        on_event=on_event,
    )
    return Guarded(fn, g, cost=cost, usage=usage, fallbacks=fallbacks)
