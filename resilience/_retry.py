"""Retries with exponential backoff and full jitter, honouring Retry-After, on tenacity.

Every wait goes through an injected :class:`~otpy.clock.Clock`, and so does the
``deadline``: tenacity's own timing (``start_time``, ``seconds_since_start``) reads
``time.monotonic`` and is not used.
"""

from __future__ import annotations

import datetime
import email.utils
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import tenacity

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import ConfigurationError, OperationTimeout, OtpyError, ProviderError
from otpy.resilience._events import EventSink, emit

__all__ = ["RetryAttempt", "RetryPolicy", "is_retryable", "parse_retry_after", "retry_after_of"]

T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    """Whether trying again can help.

    ``ProviderError`` -> its ``retryable`` (never auth, invalid request or spend limit);
    ``OperationTimeout`` -> True; any other otpy error (open circuit, rate-limit timeout,
    cost over the limit, ...) -> False; builtin ``TimeoutError`` / ``ConnectionError`` ->
    True; anything else -> False.
    """
    if isinstance(exc, ProviderError):
        return bool(exc.retryable)
    if isinstance(exc, OperationTimeout):
        return True
    if isinstance(exc, OtpyError):
        return False
    return isinstance(exc, TimeoutError | ConnectionError)


def _seconds(value: str) -> float | None:
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait according to the headers, or None if they give no (valid) advice.

    ``retry-after-ms`` (milliseconds) wins over ``retry-after`` (seconds, or an HTTP-date
    counted from ``now``, epoch seconds). Names are case-insensitive; a negative or
    unparsable value, or a date in the past, counts as no advice.
    """
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    if "retry-after-ms" in lower:
        ms = _seconds(lower["retry-after-ms"])
        if ms is not None:
            return ms / 1000.0
    value = lower.get("retry-after")
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=datetime.UTC)
    delay = when.timestamp() - now
    return delay if delay >= 0 else None


def retry_after_of(exc: BaseException, now: float) -> float | None:
    """The error's own Retry-After in seconds, or None.

    A numeric ``exc.retry_after`` (``ProviderError``) wins; otherwise the headers of an
    httpx-style ``exc.response`` (``anthropic.APIStatusError`` has one) are parsed with
    :func:`parse_retry_after` (``now``: epoch seconds, for an HTTP-date).
    """
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if value >= 0 else None  # NaN fails >= 0
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if isinstance(headers, Mapping):
        return parse_retry_after(headers, now)
    return None


@dataclass(frozen=True)
class RetryAttempt:
    """One failed attempt of a :meth:`RetryPolicy.call`.

    ``delay`` is how long the policy waited before the next attempt, or None when the
    call ended with this ``error`` (not retryable, or the policy gave up).
    """

    attempt: int
    delay: float | None
    error: BaseException


def _positive(name: str, value: float, *, zero_ok: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigurationError(f"RetryPolicy.{name} must be a number, not {value!r}")
    if value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ConfigurationError(f"RetryPolicy.{name} must be {bound}, not {value!r}")


@dataclass(frozen=True)
class RetryPolicy:
    """How to retry a call: up to ``max_attempts`` attempts (the first included).

    Between attempts it waits exactly the error's Retry-After when it has one, else an
    exponential backoff ``initial * multiplier**(n-1)`` capped at ``max_backoff`` (with
    ``jitter``: uniform in ``[0, that]``, "full jitter"). ``deadline`` bounds the whole
    call (attempts and waits, on the clock): a wait that would end at or past it is not
    started. A Retry-After above ``max_retry_after`` is not waited out either. In both
    cases the policy gives up at once and re-raises the error. ``retry_on`` decides which
    errors are retried; others are re-raised after their attempt.
    """

    max_attempts: int = 4
    initial: float = 0.5
    max_backoff: float = 30.0
    multiplier: float = 2.0
    jitter: bool = True
    deadline: float | None = None
    max_retry_after: float = 300.0
    retry_on: Callable[[BaseException], bool] = is_retryable

    NONE: ClassVar[RetryPolicy]
    """Calls once, never retries."""

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ConfigurationError(
                f"RetryPolicy.max_attempts must be an int >= 1, not {self.max_attempts!r}"
            )
        if self.max_attempts < 1:
            raise ConfigurationError(
                f"RetryPolicy.max_attempts must be >= 1 (1 = no retry), not {self.max_attempts}"
            )
        _positive("initial", self.initial, zero_ok=True)
        _positive("max_backoff", self.max_backoff, zero_ok=True)
        _positive("multiplier", self.multiplier, zero_ok=False)
        _positive("max_retry_after", self.max_retry_after, zero_ok=True)
        if self.max_backoff < self.initial:
            raise ConfigurationError(
                f"RetryPolicy.max_backoff ({self.max_backoff}) must be >= initial ({self.initial})"
            )
        if self.multiplier < 1:
            raise ConfigurationError(f"RetryPolicy.multiplier must be >= 1, not {self.multiplier}")
        if self.deadline is not None:
            _positive("deadline", self.deadline, zero_ok=False)
        if not callable(self.retry_on):
            raise ConfigurationError(
                f"RetryPolicy.retry_on must be callable, not {self.retry_on!r}"
            )

    def call(
        self,
        fn: Callable[..., T],
        *args: object,
        clock: Clock | None = None,
        on_event: EventSink | None = None,
        source: str = "retry",
        record: list[RetryAttempt] | None = None,
        **kwargs: object,
    ) -> T:
        """Call ``fn(*args, **kwargs)``, retrying per this policy; return its result.

        Blocks the calling thread for the attempts and the waits between them
        (``clock.sleep``). Raises the last error of ``fn`` itself, unchanged, when it is
        not retryable or the policy gives up. Emits ``retry.retried`` before each wait
        and ``retry.gave_up`` when it stops on a retryable error. When given, ``record``
        gets one :class:`RetryAttempt` appended per failed attempt. The keyword names
        above are taken by the policy: pass ``functools.partial`` for an ``fn`` that
        uses them.
        """
        clock = clock or SYSTEM_CLOCK
        started = clock.monotonic()
        try:  # most calls succeed at once: no policy machinery for them
            return fn(*args, **kwargs)
        except BaseException as exc:
            first: BaseException | None = exc

        def attempt(*args: object, **kwargs: object) -> T:
            """``fn``, whose first attempt has already run: tenacity sees its error."""
            nonlocal first
            if first is None:
                return fn(*args, **kwargs)
            error, first = first, None
            try:
                raise error
            finally:
                del error  # no cycle through the traceback's frames

        run = _Run(self, clock, on_event, source, record, started)
        retrying = tenacity.Retrying(
            stop=run.stop,
            wait=run.wait,
            retry=run.retry,
            sleep=run.clock.sleep,
            before_sleep=run.before_sleep,
            reraise=True,
        )
        return retrying(attempt, *args, **kwargs)


RetryPolicy.NONE = RetryPolicy(max_attempts=1)


class _Run:
    """The state of one ``RetryPolicy.call``: tenacity's wait/stop/retry/before_sleep hooks.

    Tenacity evaluates, after a failed attempt: ``retry`` -> ``wait`` (sets
    ``upcoming_sleep``) -> ``stop`` (which sees ``upcoming_sleep``) -> ``before_sleep`` ->
    sleep. So ``stop`` can refuse a wait that would end past the deadline.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        clock: Clock,
        sink: EventSink | None,
        source: str,
        record: list[RetryAttempt] | None,
        started: float,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.sink = sink
        self.source = source
        self.record = record
        self.started = started
        self.retry_after: float | None = None
        self._retry_on = tenacity.retry_if_exception(policy.retry_on)
        backoff = tenacity.wait_random_exponential if policy.jitter else tenacity.wait_exponential
        self._backoff = backoff(
            multiplier=policy.initial, max=policy.max_backoff, exp_base=policy.multiplier
        )

    @staticmethod
    def _error(state: tenacity.RetryCallState) -> BaseException:
        assert state.outcome is not None
        error = state.outcome.exception()
        assert error is not None
        return error

    def _append(self, state: tenacity.RetryCallState, delay: float | None) -> None:
        if self.record is not None:
            self.record.append(RetryAttempt(state.attempt_number, delay, self._error(state)))

    def retry(self, state: tenacity.RetryCallState) -> bool:
        if self._retry_on(state):
            return True
        if state.outcome is not None and state.outcome.failed:
            self._append(state, None)  # not retryable: the call ends with this error
        return False

    def wait(self, state: tenacity.RetryCallState) -> float:
        self.retry_after = retry_after_of(self._error(state), self.clock.time())
        if self.retry_after is not None:
            return self.retry_after
        return float(self._backoff(state))

    def stop(self, state: tenacity.RetryCallState) -> bool:
        policy = self.policy
        reason = None
        if state.attempt_number >= policy.max_attempts:
            reason = "max_attempts"
        elif self.retry_after is not None and self.retry_after > policy.max_retry_after:
            reason = "retry_after_too_long"
        elif policy.deadline is not None and (
            self.clock.monotonic() + state.upcoming_sleep >= self.started + policy.deadline
        ):
            reason = "deadline"
        if reason is None:
            return False
        self._append(state, None)
        if policy.max_attempts == 1:
            return True  # a policy that never retries does not "give up"
        emit(
            self.sink,
            "retry.gave_up",
            self.source,
            {
                "attempts": state.attempt_number,
                "elapsed": self.clock.monotonic() - self.started,
            },
            error=type(self._error(state)).__name__,
            reason=reason,
            retry_after=self.retry_after is not None,
        )
        return True

    def before_sleep(self, state: tenacity.RetryCallState) -> None:
        delay = state.upcoming_sleep
        self._append(state, delay)
        emit(
            self.sink,
            "retry.retried",
            self.source,
            {"attempt": state.attempt_number, "delay": delay},
            error=type(self._error(state)).__name__,
            retry_after=self.retry_after is not None,
        )
