"""RetryPolicy: which errors are retried, Retry-After, backoff, caps, events.

Time is a FakeClock throughout. Where the test checks when each attempt happened, the
call runs in a thread and the test moves the clock; elsewhere a SteppingClock, whose
``sleep`` moves fake time forward at once, runs the whole call in the test's thread.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx2 as httpx
import pytest
import tenacity

from otpy.errors import (
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    CostExceedsLimitError,
    InvalidRequestError,
    OperationTimeout,
    OverloadedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    RateLimitTimeout,
    ServerError,
    SpendLimitError,
)
from otpy.resilience._events import ResilienceEvent
from otpy.resilience._retry import (
    RetryAttempt,
    RetryPolicy,
    is_retryable,
    parse_retry_after,
    retry_after_of,
)
from otpy.testing import FakeClock, wait_until
from support import InThread

EPOCH = 1_700_000_000.0


class RecordingClock(FakeClock):
    """A FakeClock that remembers every sleep it was asked for."""

    def __init__(self) -> None:
        super().__init__(epoch=EPOCH)
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        super().sleep(seconds)

    def wait_for_sleep(self, n: int) -> None:
        """Block until the n-th sleep has begun (one caller thread: the earlier ones ended)."""
        wait_until(lambda: len(self.sleeps) >= n and self.sleepers >= 1, message=f"sleep {n}")


class SteppingClock(RecordingClock):
    """Sleeping moves fake time forward at once: a whole retry loop runs in one thread."""

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)


class Flaky:
    """Raises the given errors in turn, then returns ``value``; notes when it was called."""

    def __init__(
        self, clock: FakeClock, errors: list[BaseException], value: str = "ok", took: float = 0
    ) -> None:
        self.clock = clock
        self.errors = list(errors)
        self.value = value
        self.took = took  # fake seconds each attempt takes
        self.calls: list[float] = []

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append(self.clock.monotonic())
        if self.took:
            self.clock.advance(self.took)
        if self.errors:
            raise self.errors.pop(0)
        return f"{self.value}{args}{kwargs}" if args or kwargs else self.value


if TYPE_CHECKING:
    import anthropic


def anthropic_429(headers: dict[str, str]) -> anthropic.RateLimitError:
    """The Anthropic SDK's 429 (imported here, not at collection: it takes a second)."""
    import anthropic

    request = httpx.Request("POST", "http://127.0.0.1/v1/messages")
    response = httpx.Response(429, headers=headers, request=request)
    return anthropic.RateLimitError("rate limited", response=response, body=None)


def retry_anthropic_429(exc: BaseException) -> bool:
    import anthropic

    return isinstance(exc, anthropic.RateLimitError)


@pytest.fixture
def seeded() -> Iterator[None]:
    state = random.getstate()
    random.seed(20261101)
    yield
    random.setstate(state)


# --- classification ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RateLimitedError("429"), True),
        (OverloadedError("529"), True),
        (ServerError("500"), True),
        (ProviderTimeoutError("slow"), True),
        (ProviderConnectionError("down"), True),
        (AuthenticationError("401"), False),
        (InvalidRequestError("400"), False),
        (SpendLimitError("credits"), False),
        (ProviderError("unknown"), False),
        (OperationTimeout("call", 5), True),
        (CircuitOpenError("b", 3.0), False),
        (RateLimitTimeout("rl", 1.0, ["requests"]), False),
        (CostExceedsLimitError("rl", "tokens", 10, "5/minute"), False),
        (ConfigurationError("bad"), False),
        (TimeoutError(), True),
        (ConnectionError(), True),
        (ConnectionResetError(), True),
        (ValueError(), False),
        (RuntimeError(), False),
        (KeyboardInterrupt(), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_is_retryable(error: BaseException, expected: bool) -> None:
    assert is_retryable(error) is expected


def test_an_sdk_error_is_not_retryable_as_it_is() -> None:
    """Translate SDK errors to ProviderError, or pass ``retry_on``."""
    assert is_retryable(anthropic_429({})) is False


# --- Retry-After parsing ----------------------------------------------------------


def test_parse_retry_after_forms() -> None:
    now = EPOCH
    assert parse_retry_after({"retry-after-ms": "1234"}, now) == 1.234
    assert parse_retry_after({"Retry-After-Ms": "1.5", "retry-after": "9"}, now) == 0.0015
    assert parse_retry_after({"RETRY-AFTER": "7"}, now) == 7.0
    assert parse_retry_after({"retry-after": " 2.5 "}, now) == 2.5
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now) == 30.0
    # garbage ms falls through to retry-after
    assert parse_retry_after({"retry-after-ms": "soon", "retry-after": "3"}, now) == 3.0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"retry-after": "soon"},
        {"retry-after": "-1"},
        {"retry-after-ms": "-5"},
        {"retry-after": "nan"},
        {"retry-after": "inf"},
        {"retry-after": ""},
        {"retry-after": email.utils.formatdate(EPOCH - 60, usegmt=True)},  # in the past
        {"x-other": "5"},
    ],
)
def test_parse_retry_after_gives_none_for_no_valid_advice(headers: dict[str, str]) -> None:
    assert parse_retry_after(headers, EPOCH) is None


def test_retry_after_of_reads_the_attribute_or_the_response_headers() -> None:
    assert retry_after_of(RateLimitedError("429", retry_after=2.5), EPOCH) == 2.5
    assert retry_after_of(RateLimitedError("429"), EPOCH) is None
    assert retry_after_of(anthropic_429({"retry-after-ms": "1234"}), EPOCH) == 1.234
    assert retry_after_of(anthropic_429({"retry-after": "4"}), EPOCH) == 4.0
    assert retry_after_of(anthropic_429({}), EPOCH) is None
    assert retry_after_of(ValueError("x"), EPOCH) is None
    odd = ValueError("odd")
    odd.response = object()  # type: ignore[attr-defined]
    assert retry_after_of(odd, EPOCH) is None


# --- waiting: Retry-After and backoff -----------------------------------------------


def test_retry_after_ms_is_honoured_to_the_millisecond() -> None:
    clock = RecordingClock()
    fn = Flaky(clock, [anthropic_429({"retry-after-ms": "1234"})])
    policy = RetryPolicy(retry_on=retry_anthropic_429, max_backoff=0.5, initial=0.5)
    caller = InThread(policy.call, fn, clock=clock)
    clock.wait_for_sleep(1)
    assert fn.calls == [0.0]
    clock.advance(1.234)
    assert caller.result(10) == "ok"
    assert fn.calls == [0.0, 1.234]  # exactly the header, not the (smaller) backoff cap
    assert clock.sleeps == [1.234]


def test_provider_error_retry_after_is_honoured() -> None:
    clock = RecordingClock()
    fn = Flaky(clock, [RateLimitedError("429", retry_after=2.5), OverloadedError("529")])
    policy = RetryPolicy(jitter=False, initial=1.0)
    record: list[RetryAttempt] = []
    caller = InThread(policy.call, fn, clock=clock, record=record)
    clock.wait_for_sleep(1)
    clock.advance(2.5)
    clock.wait_for_sleep(2)
    assert fn.calls == [0.0, 2.5]
    clock.advance(2.0)  # no Retry-After on the 529: backoff for attempt 2 is 1.0 * 2
    assert caller.result(10) == "ok"
    assert fn.calls == [0.0, 2.5, 4.5]
    assert [(r.attempt, r.delay, type(r.error)) for r in record] == [
        (1, 2.5, RateLimitedError),
        (2, 2.0, OverloadedError),
    ]


def test_retry_after_as_an_http_date() -> None:
    clock = RecordingClock()
    date = email.utils.formatdate(clock.time() + 7, usegmt=True)
    fn = Flaky(clock, [anthropic_429({"retry-after": date})])
    caller = InThread(RetryPolicy(retry_on=retry_anthropic_429).call, fn, clock=clock)
    clock.wait_for_sleep(1)
    clock.advance(7.0)
    assert caller.result(10) == "ok"
    assert fn.calls == [0.0, 7.0]


def test_backoff_without_jitter_is_exact_and_capped() -> None:
    clock = RecordingClock()
    errors: list[BaseException] = [ServerError(str(n)) for n in range(5)]
    fn = Flaky(clock, errors)
    policy = RetryPolicy(max_attempts=6, initial=0.5, multiplier=2.0, max_backoff=3.0, jitter=False)
    caller = InThread(policy.call, fn, clock=clock)
    for n, delay in enumerate((0.5, 1.0, 2.0, 3.0, 3.0), start=1):
        clock.wait_for_sleep(n)
        assert len(fn.calls) == n
        clock.advance(delay)
    assert caller.result(10) == "ok"
    assert clock.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert fn.calls == [0.0, 0.5, 1.5, 3.5, 6.5, 9.5]


def test_multiplier_sets_the_growth() -> None:
    clock = SteppingClock()
    fn = Flaky(clock, [ServerError("x")] * 3)
    policy = RetryPolicy(initial=1.0, multiplier=3.0, max_backoff=100.0, jitter=False)
    assert policy.call(fn, clock=clock) == "ok"
    assert clock.sleeps == [1.0, 3.0, 9.0]


@pytest.mark.usefixtures("seeded")
def test_full_jitter_stays_within_the_growing_window() -> None:
    policy = RetryPolicy(max_attempts=7, initial=1.0, multiplier=2.0, max_backoff=10.0)
    by_retry: list[list[float]] = [[] for _ in range(6)]
    for _ in range(300):
        clock = SteppingClock()
        fn = Flaky(clock, [ServerError("x")] * 6)
        assert policy.call(fn, clock=clock) == "ok"
        for n, delay in enumerate(clock.sleeps):
            by_retry[n].append(delay)
    caps = [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    for delays, cap in zip(by_retry, caps, strict=True):
        assert all(0.0 <= d <= cap for d in delays)
        assert max(delays) > 0.9 * cap  # the whole window is used, so it grows
        assert min(delays) < 0.1 * cap  # full jitter: down to ~0


# --- giving up ---------------------------------------------------------------------


def test_max_attempts_caps_the_calls_and_reraises_the_last_error() -> None:
    clock = SteppingClock()
    errors = [ServerError(f"boom {n}") for n in range(5)]
    fn = Flaky(clock, list(errors))
    events: list[ResilienceEvent] = []
    record: list[RetryAttempt] = []
    policy = RetryPolicy(max_attempts=3, jitter=False, initial=1.0)
    with pytest.raises(ServerError) as info:
        policy.call(fn, clock=clock, on_event=events.append, source="p", record=record)
    assert info.value is errors[2]  # the original, not a tenacity.RetryError
    assert not isinstance(info.value, tenacity.RetryError)
    assert len(fn.calls) == 3
    assert [(r.attempt, r.delay) for r in record] == [(1, 1.0), (2, 2.0), (3, None)]
    gave_up = events[-1]
    assert gave_up.name == "retry.gave_up" and gave_up.source == "p"
    assert gave_up.measurements["attempts"] == 3
    assert gave_up.metadata["reason"] == "max_attempts"
    assert gave_up.metadata["error"] == "ServerError"


def test_reraised_error_keeps_the_traceback_of_the_failing_call() -> None:
    def fails() -> str:
        raise ProviderConnectionError("down")

    with pytest.raises(ProviderConnectionError) as info:
        RetryPolicy(max_attempts=2).call(fails, clock=SteppingClock())
    assert info.traceback[-1].name == "fails"


def test_deadline_stops_before_a_wait_that_would_end_past_it() -> None:
    clock = RecordingClock()
    fn = Flaky(clock, [ServerError("x")] * 10)
    events: list[ResilienceEvent] = []
    policy = RetryPolicy(max_attempts=10, initial=1.0, jitter=False, deadline=5.0)
    caller = InThread(policy.call, fn, clock=clock, on_event=events.append)
    clock.wait_for_sleep(1)
    clock.advance(1.0)
    clock.wait_for_sleep(2)
    clock.advance(2.0)  # attempt 3 at t=3; a 4 s wait would end at 7 > 5
    with pytest.raises(ServerError):
        caller.result(10)
    assert fn.calls == [0.0, 1.0, 3.0]
    assert clock.sleeps == [1.0, 2.0]
    assert events[-1].name == "retry.gave_up"
    assert events[-1].metadata["reason"] == "deadline"
    assert events[-1].measurements == {"attempts": 3, "elapsed": 3.0}


def test_deadline_counts_the_time_attempts_take() -> None:
    clock = SteppingClock()
    fn = Flaky(clock, [ServerError("x")] * 10, took=2.0)
    policy = RetryPolicy(max_attempts=10, initial=1.0, jitter=False, deadline=6.0)
    with pytest.raises(ServerError):
        policy.call(fn, clock=clock)
    # attempt 1: 0-2, wait 1, attempt 2: 3-5; a 2 s wait would end at 7 > 6
    assert fn.calls == [0.0, 3.0]
    assert clock.sleeps == [1.0]


def test_deadline_is_measured_from_the_start_of_the_call() -> None:
    clock = SteppingClock()
    clock.advance(100.0)
    fn = Flaky(clock, [ServerError("x")] * 2)
    policy = RetryPolicy(initial=1.0, jitter=False, deadline=4.0)
    assert policy.call(fn, clock=clock) == "ok"
    assert fn.calls == [100.0, 101.0, 103.0]


def test_a_retry_after_past_the_deadline_gives_up_at_once() -> None:
    clock = SteppingClock()
    error = RateLimitedError("429", retry_after=12.0)
    fn = Flaky(clock, [error])
    events: list[ResilienceEvent] = []
    with pytest.raises(RateLimitedError) as info:
        RetryPolicy(deadline=10.0).call(fn, clock=clock, on_event=events.append)
    assert info.value is error
    assert fn.calls == [0.0] and clock.sleeps == []
    assert [e.name for e in events] == ["retry.gave_up"]
    assert events[0].metadata["reason"] == "deadline"
    assert events[0].metadata["retry_after"] is True


def test_a_retry_after_above_max_retry_after_gives_up_at_once() -> None:
    clock = SteppingClock()
    too_long = anthropic_429({"retry-after": "301"})
    fn = Flaky(clock, [too_long])
    events: list[ResilienceEvent] = []
    policy = RetryPolicy(retry_on=retry_anthropic_429, max_retry_after=300.0)
    with pytest.raises(type(too_long)):
        policy.call(fn, clock=clock, on_event=events.append)
    assert fn.calls == [0.0] and clock.sleeps == []
    assert events[0].metadata["reason"] == "retry_after_too_long"
    # at the limit it is waited out
    fn = Flaky(clock, [anthropic_429({"retry-after": "300"})])
    assert policy.call(fn, clock=clock) == "ok"
    assert clock.sleeps == [300.0]


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationError("401"),
        InvalidRequestError("400"),
        SpendLimitError("credits"),
        CircuitOpenError("b", 1.0),
        ValueError("bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_non_retryable_error_raises_after_one_attempt(error: BaseException) -> None:
    clock = SteppingClock()
    fn = Flaky(clock, [error])
    events: list[ResilienceEvent] = []
    record: list[RetryAttempt] = []
    with pytest.raises(type(error)) as info:
        RetryPolicy().call(fn, clock=clock, on_event=events.append, record=record)
    assert info.value is error
    assert fn.calls == [0.0] and clock.sleeps == []
    assert events == []
    assert record == [RetryAttempt(1, None, error)]


def test_operation_timeout_is_retried() -> None:
    clock = SteppingClock()
    fn = Flaky(clock, [OperationTimeout("llm", 30.0), TimeoutError()])
    assert RetryPolicy(jitter=False).call(fn, clock=clock) == "ok"
    assert len(fn.calls) == 3


def test_retry_on_decides_what_is_retried() -> None:
    clock = SteppingClock()
    fn = Flaky(clock, [KeyError("k"), KeyError("k")])
    policy = RetryPolicy(retry_on=lambda e: isinstance(e, KeyError), jitter=False)
    assert policy.call(fn, clock=clock) == "ok"
    assert len(fn.calls) == 3


def test_none_policy_calls_once() -> None:
    clock = SteppingClock()
    error = ServerError("500")
    fn = Flaky(clock, [error])
    events: list[ResilienceEvent] = []
    record: list[RetryAttempt] = []
    with pytest.raises(ServerError):
        RetryPolicy.NONE.call(fn, clock=clock, on_event=events.append, record=record)
    assert fn.calls == [0.0] and clock.sleeps == []
    assert events == []  # a policy that never retries does not "give up"
    assert record == [RetryAttempt(1, None, error)]
    assert RetryPolicy.NONE.max_attempts == 1


def test_arguments_reach_the_function_and_success_needs_no_retry() -> None:
    clock = SteppingClock()
    fn = Flaky(clock, [])
    record: list[RetryAttempt] = []
    assert RetryPolicy().call(fn, 1, "a", clock=clock, record=record, k=2) == "ok(1, 'a'){'k': 2}"
    assert record == [] and clock.sleeps == []


# --- events -------------------------------------------------------------------------


def test_retried_events_before_each_wait() -> None:
    clock = SteppingClock()
    fn = Flaky(clock, [RateLimitedError("429", retry_after=1.5), ServerError("500")])
    events: list[ResilienceEvent] = []
    policy = RetryPolicy(jitter=False, initial=0.25)
    assert policy.call(fn, clock=clock, on_event=events.append, source="anthropic") == "ok"
    assert [(e.name, e.source) for e in events] == [("retry.retried", "anthropic")] * 2
    first, second = events
    assert first.measurements == {"attempt": 1, "delay": 1.5}
    assert first.metadata == {"error": "RateLimitedError", "retry_after": True}
    assert second.measurements == {"attempt": 2, "delay": 0.5}
    assert second.metadata == {"error": "ServerError", "retry_after": False}


def test_a_failing_event_sink_does_not_break_the_call(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: ResilienceEvent) -> None:
        raise RuntimeError("sink down")

    clock = SteppingClock()
    fn = Flaky(clock, [ServerError("x"), ServerError("y")])
    assert RetryPolicy(jitter=False).call(fn, clock=clock, on_event=broken) == "ok"
    assert len(fn.calls) == 3
    assert "subscriber failed on retry.retried" in caplog.text
    # and when giving up: still the provider's error, not the sink's
    fn = Flaky(clock, [ServerError("x")] * 5)
    with pytest.raises(ServerError):
        RetryPolicy(max_attempts=2).call(fn, clock=clock, on_event=broken)


# --- configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_attempts", 0),
        ("max_attempts", 2.5),
        ("max_attempts", True),
        ("initial", -0.1),
        ("initial", float("nan")),
        ("max_backoff", -1.0),
        ("max_backoff", 0.1),  # below initial
        ("multiplier", 0.5),
        ("multiplier", 0),
        ("deadline", 0),
        ("deadline", -5.0),
        ("max_retry_after", -1.0),
        ("max_retry_after", "300"),
        ("retry_on", None),
    ],
)
def test_invalid_fields_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=field):
        RetryPolicy(**{field: value})


def test_policy_is_frozen_and_reusable_across_calls() -> None:
    policy = RetryPolicy(max_attempts=2, jitter=False)
    with pytest.raises(AttributeError):
        policy.max_attempts = 5  # type: ignore[misc]
    clock = SteppingClock()
    for _ in range(3):
        fn = Flaky(clock, [ServerError("x")])
        assert policy.call(fn, clock=clock) == "ok"
    assert clock.sleeps == [0.5, 0.5, 0.5]
