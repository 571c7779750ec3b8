"""Property tests (hypothesis) of the breaker and the retry policy under threads.

- A breaker under concurrent faults (8-16 threads) trips exactly once, and once its reset
  timeout has passed lets exactly one probe through however many callers arrive at once.
- Retries honour Retry-After to the millisecond on the fake clock, whatever the values.
"""

from __future__ import annotations

import threading
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otpy.errors import CircuitOpenError, RateLimitedError
from otpy.resilience import CircuitBreaker, RetryPolicy
from otpy.testing import FakeClock

PROPS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Fault(Exception):
    pass


def run_together(n: int, body: Any) -> list[Any]:
    """Run ``body()`` in n threads released at once; return each result or exception."""
    start = threading.Barrier(n, timeout=10)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        start.wait()
        try:
            results[i] = body()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    return results


@PROPS
@given(threads=st.integers(8, 16), fail_max=st.integers(1, 8), data=st.data())
def test_concurrent_faults_trip_once_and_one_probe_goes_through(
    threads: int, fail_max: int, data: st.DataObject
) -> None:
    clock = FakeClock()
    trips: list[str] = []
    breaker = CircuitBreaker(
        "p",
        fail_max=fail_max,
        reset_timeout=30,
        clock=clock,
        on_event=lambda e: trips.append(e.name) if e.name == "breaker.tripped" else None,
    )
    inside = threading.Barrier(threads, timeout=10)  # everyone admitted before any fails

    def fault() -> None:
        inside.wait()
        raise Fault

    outcomes = run_together(threads, lambda: breaker.call(fault))
    assert all(isinstance(o, Fault) for o in outcomes)
    assert breaker.statistics().trips == 1 and trips == ["breaker.tripped"]
    assert breaker.state == "open"

    # While open, nobody gets through; after the timeout exactly one caller is the probe.
    early = run_together(threads, lambda: breaker.call(lambda: "x"))
    assert all(isinstance(o, CircuitOpenError) for o in early)
    clock.advance(30)
    release = threading.Event()
    probes: list[int] = []

    def probe() -> str:
        probes.append(1)
        release.wait(10)
        return "ok"

    def caller() -> Any:
        try:
            return breaker.call(probe)
        finally:
            if not release.is_set() and breaker.statistics().rejected >= threads - 1 + threads:
                release.set()  # every other caller has been refused: let the probe finish

    results = run_together(threads, caller)
    assert len(probes) == 1
    assert results.count("ok") == 1
    assert sum(isinstance(r, CircuitOpenError) for r in results) == threads - 1
    succeed = data.draw(st.booleans())
    after = breaker.call(lambda: "fine") if succeed else None
    assert breaker.state == "closed"
    assert after == ("fine" if succeed else None)


@PROPS
@given(
    delays_ms=st.lists(st.integers(1, 120_000), min_size=1, max_size=5),
    as_header=st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_retries_wait_exactly_the_retry_after_to_the_millisecond(
    delays_ms: list[int], as_header: list[bool]
) -> None:
    clock = FakeClock()
    at: list[float] = []

    class Response:
        def __init__(self, ms: int) -> None:
            self.headers = {"retry-after-ms": str(ms)}

    errors: list[BaseException] = []
    for ms, header in zip(delays_ms, as_header, strict=False):
        if header:  # the SDK's way: the advice in the response headers
            error = RateLimitedError("429")
            error.response = Response(ms)  # type: ignore[attr-defined]
        else:
            error = RateLimitedError("429", retry_after=ms / 1000)
        errors.append(error)
    script = list(errors)

    def call() -> str:
        at.append(clock.monotonic())
        if script:
            raise script.pop(0)
        return "ok"

    class JumpingClock(FakeClock):
        def sleep(self, seconds: float) -> None:  # the retry's sleeps move time at once
            clock.advance(seconds)

    policy = RetryPolicy(max_attempts=len(delays_ms) + 1, max_retry_after=1000)
    assert policy.call(call, clock=JumpingClock()) == "ok"
    expected, total = [0.0], 0
    for ms in delays_ms:
        total += ms
        expected.append(total / 1000)
    assert [round(t * 1000, 6) for t in at] == [round(e * 1000, 6) for e in expected]
