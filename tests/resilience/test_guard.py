"""guard(): limiter -> breaker -> retry -> timeout -> fallback, with its events."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from otpy.errors import (
    AllOptionsFailed,
    AuthenticationError,
    CircuitOpenError,
    InvalidRequestError,
    OperationTimeout,
    RateLimitedError,
    ServerError,
)
from otpy.resilience import (
    NOT_FAULTS,
    CircuitBreaker,
    Guarded,
    Limit,
    RateLimiter,
    ResilienceEvent,
    RetryPolicy,
    guard,
)
from otpy.testing import FakeClock, wait_until
from support import InThread

EPOCH = 1_700_000_040.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(epoch=EPOCH)


@pytest.fixture
def events() -> list[ResilienceEvent]:
    return []


def names(events: list[ResilienceEvent]) -> list[str]:
    return [e.name for e in events]


class Provider:
    """A stand-in callee: answers from a script of results and errors, counts calls."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()

    def __call__(self, *args: Any) -> Any:
        with self.lock:
            self.calls.append(args)
            step = self.script.pop(0) if self.script else "ok"
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return step()
        return step


def limiter(clock: FakeClock, rpm: str = "100/minute", tpm: str = "10000/minute") -> RateLimiter:
    return RateLimiter([Limit("requests", rpm), Limit("tokens", tpm)], clock=clock, name="lim")


def level(lim: RateLimiter, dimension: str) -> float:
    return next(b.level for b in lim.statistics().buckets if b.dimension == dimension)


@pytest.fixture
def callers() -> Iterator[list[InThread]]:
    started: list[InThread] = []
    yield started
    for c in started:
        c.thread.join(5)


def test_a_plain_call_reserves_settles_and_returns(
    clock: FakeClock, events: list[ResilienceEvent]
) -> None:
    lim = limiter(clock)
    provider = Provider({"text": "hi", "tokens": 120})
    call = guard(
        provider,
        name="p",
        limiter=lim,
        breaker=CircuitBreaker("p", clock=clock),
        retry=RetryPolicy(max_attempts=3, jitter=False),
        cost=lambda prompt, max_tokens: {"requests": 1, "tokens": max_tokens},
        usage=lambda out: {"tokens": out["tokens"]},
        clock=clock,
        on_event=events.append,
    )
    result = call.run("hello", 1000)
    assert result.value == {"text": "hi", "tokens": 120}
    assert (result.served_by, result.failures, result.retries, result.waited) == ("p", (), (), 0)
    assert provider.calls == [("hello", 1000)]
    assert level(lim, "tokens") == 120  # 1000 reserved, settled to the 120 used
    assert events == []
    assert repr(call) == "<Guarded p>"


def test_waiting_for_the_limiter_is_reported(
    clock: FakeClock, events: list[ResilienceEvent], callers: list[InThread]
) -> None:
    lim = limiter(clock, rpm="1/minute")
    call = guard(Provider(), name="p", limiter=lim, clock=clock, on_event=events.append)
    call()
    caller = InThread(call.run)
    callers.append(caller)
    clock.wait_for_sleepers(1)
    clock.advance(60.5)
    assert caller.result().waited == pytest.approx(60.5)
    waited = [e for e in events if e.name == "rate_limit.waited"]
    assert len(waited) == 1 and waited[0].measurements["seconds"] == pytest.approx(60.5)
    assert waited[0].source == "p" and waited[0].metadata["limiter"] == "lim"


def test_retryable_faults_are_retried_and_each_failed_attempt_gives_its_permit_back(
    clock: FakeClock, events: list[ResilienceEvent], callers: list[InThread]
) -> None:
    lim = limiter(clock)
    provider = Provider(ServerError("boom", status=500), ServerError("boom", status=502), "ok")
    call = guard(
        provider,
        name="p",
        limiter=lim,
        retry=RetryPolicy(max_attempts=3, initial=1.0, jitter=False),
        cost={"requests": 1, "tokens": 500},
        clock=clock,
        on_event=events.append,
    )
    caller = InThread(call.run)
    callers.append(caller)
    clock.wait_for_sleepers(1)
    clock.advance(1.0)
    wait_until(lambda: len(provider.calls) == 2)
    clock.wait_for_sleepers(1)
    clock.advance(2.0)
    result = caller.result()
    assert result.value == "ok" and len(result.retries) == 2
    assert [r.delay for r in result.retries] == [1.0, 2.0]
    assert names(events) == ["retry.retried", "retry.retried"]
    assert level(lim, "requests") == pytest.approx(1)  # two failed attempts released
    assert level(lim, "tokens") == pytest.approx(500)


def test_retry_after_pauses_the_limiter_and_is_waited_to_the_millisecond(
    clock: FakeClock, events: list[ResilienceEvent], callers: list[InThread]
) -> None:
    lim = limiter(clock)
    at: list[float] = []
    provider = Provider(RateLimitedError("slow down", status=429, retry_after=2.375), "ok")

    def timed(*args: Any) -> Any:
        at.append(clock.monotonic())
        return provider(*args)

    call = guard(timed, name="p", limiter=lim, retry=RetryPolicy(), clock=clock,
                 on_event=events.append)  # fmt: skip
    caller = InThread(call)
    callers.append(caller)
    clock.wait_for_sleepers(1)
    # everyone using this limiter is held back, not only the caller that got the 429
    assert lim.statistics().paused_for == 2.375
    assert lim.try_acquire() is None
    clock.advance(2.25)  # (binary-exact times: the check is to the millisecond and below)
    clock.wait_for_sleepers(1)
    assert len(at) == 1
    clock.advance(0.125)
    assert caller.result() == "ok"
    assert at == [0.0, 2.375]
    retried = [e for e in events if e.name == "retry.retried"]
    assert retried[0].measurements["delay"] == 2.375


def test_breaker_trips_then_fails_fast_without_calling_or_queueing(
    clock: FakeClock, events: list[ResilienceEvent]
) -> None:
    lim = limiter(clock)
    provider = Provider(*[ServerError("down", status=503)] * 3)
    breaker = CircuitBreaker("p", fail_max=3, reset_timeout=30, clock=clock, exclude=NOT_FAULTS)
    call = guard(provider, name="p", limiter=lim, breaker=breaker, clock=clock,
                 on_event=events.append)  # fmt: skip
    for _ in range(3):
        with pytest.raises(ServerError):
            call()
    assert "breaker.tripped" in names(events)
    with pytest.raises(CircuitOpenError) as info:
        call()
    assert info.value.retry_in == pytest.approx(30)
    assert len(provider.calls) == 3 and level(lim, "requests") == 0
    assert names(events)[-1] == "breaker.rejected"
    clock.advance(30)
    assert call() == "ok"  # the probe closes it again
    assert names(events)[-2:] == ["breaker.state_changed", "breaker.state_changed"]


def test_non_faults_do_not_trip_the_breaker(clock: FakeClock) -> None:
    provider = Provider(*[InvalidRequestError("bad field", status=400)] * 5)
    breaker = CircuitBreaker("p", fail_max=2, clock=clock, exclude=NOT_FAULTS)
    call = guard(provider, name="p", breaker=breaker, retry=RetryPolicy(), clock=clock)
    for _ in range(5):
        with pytest.raises(InvalidRequestError):
            call()
    assert breaker.state == "closed" and len(provider.calls) == 5  # and never retried


def test_fallback_serves_and_says_why_the_primary_failed(
    clock: FakeClock, events: list[ResilienceEvent]
) -> None:
    primary = Provider(AuthenticationError("bad key", provider="anthropic", status=401))
    backup = Provider("from backup")
    call = guard(
        primary,
        name="anthropic",
        retry=RetryPolicy(max_attempts=5),
        fallbacks=[guard(backup, name="gemini", clock=clock)],
        clock=clock,
        on_event=events.append,
    )
    result = call.run("q")
    assert (result.value, result.served_by) == ("from backup", "gemini")
    assert [f.option for f in result.failures] == ["anthropic"]
    assert isinstance(result.failures[0].error, AuthenticationError)
    assert "bad key" in result.failures[0].reason
    assert len(primary.calls) == 1  # not retried: a bad key stays bad
    assert backup.calls == [("q",)]
    assert names(events) == ["fallback.fell_back"]
    assert repr(call) == "<Guarded anthropic -> gemini>"


def test_an_open_breaker_falls_back_at_once(clock: FakeClock) -> None:
    breaker = CircuitBreaker("primary", fail_max=1, clock=clock)
    breaker.open()
    primary = Provider()
    call = guard(primary, name="primary", breaker=breaker,
                 fallbacks=[("plain", lambda: "served")], clock=clock)  # fmt: skip
    result = call.run()
    assert result.served_by == "plain" and primary.calls == []
    assert isinstance(result.failures[0].error, CircuitOpenError)


def test_every_option_failing_raises_all_options_failed(clock: FakeClock) -> None:
    call: Guarded[Any] = guard(
        Provider(ServerError("a")),
        name="a",
        fallbacks=[guard(Provider(ServerError("b")), name="b"), ("c", Provider(ServerError("c")))],
        clock=clock,
    )
    with pytest.raises(AllOptionsFailed) as info:
        call()
    assert [name for name, _ in info.value.failures] == ["a", "b", "c"]
    assert isinstance(info.value.__cause__, ServerError)


def test_a_timed_out_call_keeps_its_reservation(
    clock: FakeClock, events: list[ResilienceEvent], callers: list[InThread]
) -> None:
    lim = limiter(clock)
    release = threading.Event()
    call = guard(
        Provider(lambda: release.wait(5)),
        name="p",
        limiter=lim,
        timeout=10,
        cost={"requests": 1, "tokens": 700},
        clock=clock,
        on_event=events.append,
    )
    caller = InThread(call)
    callers.append(caller)
    clock.wait_for_sleepers(1)
    clock.advance(10)
    with pytest.raises(OperationTimeout):
        caller.result()
    release.set()
    assert level(lim, "tokens") == 700  # the provider may still be working on it
    assert names(events) == ["call.timed_out"]
    wait_until(lambda: not any(t.name == "otpy-timeout-p" for t in threading.enumerate()))


def test_calls_through_one_guard_run_concurrently(clock: FakeClock) -> None:
    everyone = threading.Barrier(32)
    call = guard(
        lambda: everyone.wait(5),
        name="p",
        limiter=limiter(clock),
        breaker=CircuitBreaker("p", clock=clock),
        clock=clock,
    )
    pool = [InThread(call) for _ in range(32)]
    for caller in pool:
        caller.result()  # a BrokenBarrierError here would mean the calls were serialized


def test_a_failing_event_subscriber_never_breaks_the_call(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: ResilienceEvent) -> None:
        raise RuntimeError("subscriber bug")

    call = guard(Provider(ServerError("x"), "ok"), name="p", retry=RetryPolicy(initial=0),
                 clock=clock, on_event=broken)  # fmt: skip
    assert call() == "ok"
    assert "subscriber failed on retry.retried" in caplog.text
