"""call_with_timeout (a per-call timeout on the injected clock) and Fallback chains."""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from otpy.errors import (
    AllOptionsFailed,
    AuthenticationError,
    ConfigurationError,
    OperationTimeout,
    OverloadedError,
    ProviderError,
    RateLimitedError,
    ServerError,
)
from otpy.resilience._events import ResilienceEvent
from otpy.resilience._fallback import Fallback, FallbackResult, OptionFailure
from otpy.resilience._retry import RetryPolicy
from otpy.resilience._timeout import call_with_timeout
from otpy.testing import FakeClock, wait_until

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class Boom(Exception):
    pass


def _raise_boom() -> None:
    raise Boom("deep down")


def _thread_named(name: str) -> threading.Thread:
    return next(t for t in threading.enumerate() if t.name == name)


# --- call_with_timeout ------------------------------------------------------------


def test_no_timeout_calls_in_the_calling_thread(clock: FakeClock) -> None:
    seen: list[threading.Thread] = []

    def fn(a: int, *, b: int) -> int:
        seen.append(threading.current_thread())
        return a + b

    assert call_with_timeout(fn, 1, timeout=None, clock=clock, b=2) == 3
    assert seen == [threading.current_thread()]


def test_returns_the_result_from_a_named_daemon_thread(clock: FakeClock) -> None:
    seen: list[tuple[threading.Thread, str]] = []

    def fn(a: int, *, b: int) -> int:
        seen.append((threading.current_thread(), threading.current_thread().name))
        return a * b

    assert call_with_timeout(fn, 6, timeout=5.0, clock=clock, name="llm", b=7) == 42
    ((thread, name),) = seen
    assert thread is not threading.current_thread()
    assert name == "otpy-timeout-llm" and thread.daemon
    assert clock.monotonic() == 0.0  # no fake time passed


def test_timed_calls_reuse_pooled_threads(clock: FakeClock) -> None:
    """A timed call starts no thread of its own: sequential calls share one runner."""
    ran: set[threading.Thread] = set()
    call_with_timeout(lambda: ran.add(threading.current_thread()), timeout=5.0, clock=clock)
    before = threading.active_count()
    for _ in range(50):
        call_with_timeout(lambda: ran.add(threading.current_thread()), timeout=5.0, clock=clock)
    assert threading.active_count() == before
    assert len(ran) == 1


def test_idle_runners_retire(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool holds as many runners as calls ran at once, and each one leaves once idle
    for IDLE_SECONDS (shortened here; 60 s by default): runners do not pile up."""
    from otpy.resilience import _timeout

    monkeypatch.setattr(_timeout, "IDLE_SECONDS", 0.2)
    wave = sum(t.name == "otpy-timeout-idle" for t in threading.enumerate()) + 4
    barrier = threading.Barrier(wave + 1, timeout=10)  # every idle runner taken, 4 started
    ran: set[threading.Thread] = set()

    def fn() -> None:
        ran.add(threading.current_thread())
        barrier.wait()

    callers = [
        threading.Thread(target=call_with_timeout, args=(fn,), kwargs={"timeout": 30.0})
        for _ in range(wave)
    ]
    for caller in callers:
        caller.start()
    barrier.wait()  # all of them run at once, each on a runner of its own
    for caller in callers:
        caller.join(10)
    assert len(ran) == wave
    wait_until(lambda: not any(t.is_alive() for t in ran), timeout=10, message="runners retired")


def test_reraises_the_exception_with_its_traceback(clock: FakeClock) -> None:
    with pytest.raises(Boom, match="deep down") as info:
        call_with_timeout(_raise_boom, timeout=5.0, clock=clock, name="boom")
    assert info.traceback[-1].name == "_raise_boom"
    _join_finished("boom")


def test_reraises_a_base_exception(clock: FakeClock) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        call_with_timeout(interrupted, timeout=5.0, clock=clock, name="ki")
    _join_finished("ki")


def _join_finished(name: str) -> None:
    """The runner that ran the call named ``name`` has finished it (runners are pooled:
    they stay, under another name)."""
    wait_until(lambda: not any(t.name == f"otpy-timeout-{name}" for t in threading.enumerate()))


def test_times_out_on_the_clock_and_abandons_the_call(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()
    started = threading.Event()

    def blocked() -> str:
        started.set()
        release.wait(10)  # real-time bound: the test sets it below
        raise Boom("too late")

    outcome: list[BaseException | str] = []

    def caller() -> None:
        try:
            outcome.append(call_with_timeout(blocked, timeout=5.0, clock=clock, name="slow"))
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=caller, name="timeout-caller")
    waiter.start()
    assert started.wait(5)
    worker = _thread_named("otpy-timeout-slow")  # a pooled runner, named for its call
    clock.wait_for_sleepers(1)
    clock.advance(5.0)
    waiter.join(5)
    assert not waiter.is_alive()
    (error,) = outcome
    assert isinstance(error, OperationTimeout)
    assert (error.operation, error.timeout) == ("slow", 5.0)
    assert isinstance(error, TimeoutError)
    # the abandoned call runs on; its late exception is discarded, logged at debug level
    caplog.set_level(logging.DEBUG, logger="otpy.resilience")
    release.set()

    def late() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "'slow' finished after" in r.getMessage()]

    wait_until(lambda: late() != [], message="the abandoned call's late outcome logged")
    assert worker.name != "otpy-timeout-slow"  # its runner is back in the pool
    (record,) = late()
    assert record.levelno == logging.DEBUG
    assert record.exc_info is not None and record.exc_info[0] is Boom


def test_context_variables_carry_over(clock: FakeClock) -> None:
    def read_and_set() -> str:
        value = REQUEST_ID.get()
        REQUEST_ID.set("changed in the worker")
        return value

    token = REQUEST_ID.set("req-42")
    try:
        assert call_with_timeout(read_and_set, timeout=5.0, clock=clock, name="ctx") == "req-42"
        assert REQUEST_ID.get() == "req-42"  # the worker ran in a copy
    finally:
        REQUEST_ID.reset(token)
    _join_finished("ctx")


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf"), True, "5"])
def test_invalid_timeout(timeout: Any, clock: FakeClock) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        call_with_timeout(lambda: None, timeout=timeout, clock=clock)


def test_an_operation_timeout_is_retried(clock: FakeClock) -> None:
    """A hung first attempt times out; the retry policy tries again and the second serves."""
    release = threading.Event()
    first = threading.Event()
    attempts: list[float] = []

    def call_llm() -> str:
        attempts.append(clock.monotonic())
        if len(attempts) == 1:
            first.set()
            release.wait(10)
            return "late"
        return "fresh"

    policy = RetryPolicy(initial=1.0, jitter=False)
    retried = threading.Event()
    result: list[str] = []
    caller = threading.Thread(
        target=lambda: result.append(
            policy.call(
                # clock= is the policy's own keyword: bind the timeout's with partial
                functools.partial(
                    call_with_timeout, call_llm, timeout=5.0, clock=clock, name="llm"
                ),
                clock=clock,
                on_event=lambda e: retried.set(),
            )
        )
    )
    caller.start()
    assert first.wait(5)  # attempt 1 runs on its runner
    clock.wait_for_sleepers(1)  # the caller waits for it
    clock.advance(5.0)  # attempt 1 times out
    assert retried.wait(5)  # emitted just before the backoff sleep begins
    clock.wait_for_sleepers(1)
    clock.advance(1.0)
    caller.join(5)
    assert result == ["fresh"]
    assert attempts == [0.0, 6.0]
    release.set()
    _join_finished("llm")


# --- Fallback -----------------------------------------------------------------------


class Option:
    def __init__(self, name: str, error: BaseException | None = None) -> None:
        self.name = name
        self.error = error
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append((args, kwargs))
        if self.error is not None:
            raise self.error
        return f"{self.name}:{args}:{kwargs}"


def test_first_option_serves() -> None:
    a, b = Option("a"), Option("b")
    result = Fallback([("a", a), ("b", b)]).call("prompt", max_tokens=5)
    assert result == FallbackResult("a:('prompt',):{'max_tokens': 5}", "a", ())
    assert b.calls == []


def test_second_serves_after_the_first_fails() -> None:
    error = RateLimitedError("429", provider="anthropic")
    a, b = Option("a", error), Option("b")
    events: list[ResilienceEvent] = []
    chain = Fallback({"claude": a, "gemini": b}, name="llm", on_event=events.append)
    result = chain.call("hi")
    assert result.value == "b:('hi',):{}" and result.served_by == "gemini"
    (failure,) = result.failures
    assert failure == OptionFailure("claude", error, f"RateLimitedError: {error}")
    assert failure.reason.startswith("RateLimitedError: provider 'anthropic'")
    assert a.calls == b.calls == [(("hi",), {})]
    (event,) = events
    assert (event.name, event.source) == ("fallback.fell_back", "llm")
    assert event.metadata["from_option"] == "claude"
    assert event.metadata["to_option"] == "gemini"
    assert event.metadata["error"] == "RateLimitedError"
    assert event.measurements == {"tried": 1}


def test_an_error_not_to_fall_back_on_propagates_at_once() -> None:
    a, b = Option("a", AuthenticationError("401")), Option("b")
    chain = Fallback([("a", a), ("b", b)], fall_back_on=lambda e: getattr(e, "retryable", False))
    with pytest.raises(AuthenticationError):
        chain.call()
    assert b.calls == []


def test_base_exceptions_propagate_by_default() -> None:
    a, b = Option("a", KeyboardInterrupt()), Option("b")
    with pytest.raises(KeyboardInterrupt):
        Fallback([("a", a), ("b", b)]).call()
    assert b.calls == []


def test_all_failing_raises_all_options_failed_in_order() -> None:
    errors = [OverloadedError("529"), ServerError("500"), RateLimitedError("429")]
    options = [(f"o{n}", Option(f"o{n}", e)) for n, e in enumerate(errors)]
    events: list[ResilienceEvent] = []
    chain: Fallback[str] = Fallback(options, name="models", on_event=events.append)
    with pytest.raises(AllOptionsFailed) as info:
        chain.call()
    assert info.value.chain == "models"
    assert info.value.failures == [("o0", errors[0]), ("o1", errors[1]), ("o2", errors[2])]
    assert info.value.__cause__ is errors[2]
    assert "all 3 options failed" in str(info.value)
    assert [e.name for e in events] == [
        "fallback.fell_back",
        "fallback.fell_back",
        "fallback.exhausted",
    ]
    assert [e.metadata["to_option"] for e in events[:2]] == ["o1", "o2"]
    exhausted = events[-1]
    assert exhausted.measurements == {"options": 3}
    assert exhausted.metadata["errors"] == ("OverloadedError", "ServerError", "RateLimitedError")


def test_call_returns_the_value() -> None:
    def double(x: int) -> int:
        return x * 2

    options: list[tuple[str, Callable[..., Any]]] = [("a", Option("a", ServerError("x")))]
    chain: Fallback[Any] = Fallback([*options, ("b", double)])
    assert chain(21) == 42
    assert chain.options == ("a", "b")
    assert "Fallback('fallback'" in repr(chain)


def test_a_failing_event_sink_does_not_break_the_chain() -> None:
    def broken(event: ResilienceEvent) -> None:
        raise RuntimeError("sink down")

    chain = Fallback([("a", Option("a", ServerError("x"))), ("b", Option("b"))], on_event=broken)
    assert chain.call().served_by == "b"


def test_retry_inside_a_fallback_option() -> None:
    """Each option retries on its own; the chain moves on when an option gives up."""

    class Stepping(FakeClock):
        def sleep(self, seconds: float) -> None:
            self.advance(seconds)

    clock = Stepping()
    primary = Option("primary", OverloadedError("529"))
    policy = RetryPolicy(max_attempts=3, jitter=False)
    chain = Fallback(
        [
            ("primary", lambda p: policy.call(primary, p, clock=clock)),
            ("secondary", lambda p: policy.call(Option("secondary"), p, clock=clock)),
        ],
        fall_back_on=lambda e: isinstance(e, ProviderError),
    )
    result = chain.call("q")
    assert result.served_by == "secondary"
    assert len(primary.calls) == 3
    assert clock.monotonic() == 1.5  # 0.5 + 1.0 of backoff on the primary


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ([], "at least one option"),
        ({}, "at least one option"),
        ([("a", Option("a")), ("a", Option("b"))], "given twice"),
        ([("", Option("a"))], "non-empty"),
        ([("a", "not callable")], "not callable"),
        ([Option("a")], "pair"),
    ],
)
def test_invalid_options(options: Any, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Fallback(options)
