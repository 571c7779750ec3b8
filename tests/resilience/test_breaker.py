"""CircuitBreaker: pybreaker's states and listeners, with concurrent calls, one half-open
probe at a time, a FakeClock for the reset timeout, neutral exclusions and stale outcomes.

Threads synchronise on Events and Barriers (every wait bounded), and are always joined.
"""

from __future__ import annotations

import abc
import gc
import itertools
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pybreaker
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_server import start_redis

from otpy.errors import CircuitOpenError, ConfigurationError
from otpy.resilience._breaker import PROBE_IN_FLIGHT, BreakerStats, CircuitBreaker
from otpy.resilience._events import ResilienceEvent
from otpy.testing import FakeClock

WAIT = 5.0  # real-time upper bound for any wait on another thread


class Boom(Exception):
    pass


def fail(exc: BaseException | None = None) -> None:
    raise exc if exc is not None else Boom("boom")


def ok(value: Any = "ok") -> Any:
    return value


class Recorder(pybreaker.CircuitBreakerListener):
    """Records every listener callback as a tuple."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def _add(self, *entry: Any) -> None:
        with self._lock:
            self.log.append(entry)

    def before_call(
        self, cb: pybreaker.CircuitBreaker, func: Any, *args: Any, **kwargs: Any
    ) -> None:
        self._add("before_call", func, args, kwargs)

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        self._add("failure", exc)

    def success(self, cb: pybreaker.CircuitBreaker) -> None:
        self._add("success")

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old: pybreaker.CircuitBreakerState | None,
        new: pybreaker.CircuitBreakerState,
    ) -> None:
        self._add("state_change", old.name if old else None, new.name)

    def kinds(self, kind: str) -> list[tuple[Any, ...]]:
        return [e for e in self.log if e[0] == kind]


class Events(list[ResilienceEvent]):
    def named(self, name: str) -> list[ResilienceEvent]:
        return [e for e in self if e.name == name]


@pytest.fixture
def events() -> Events:
    return Events()


def make(clock: FakeClock, events: Events | None = None, **kwargs: Any) -> CircuitBreaker:
    kwargs.setdefault("fail_max", 3)
    kwargs.setdefault("reset_timeout", 60.0)
    sink = events.append if events is not None else None
    return CircuitBreaker("svc", clock=clock, on_event=sink, **kwargs)


def trip(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            breaker.call(fail)


def start(target: Callable[[], Any], n: int = 1) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, name=f"breaker-test-{i}") for i in range(n)]
    for t in threads:
        t.start()
    return threads


def join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(WAIT)
    assert not [t for t in threads if t.is_alive()]


class Blocker:
    """A call that signals it started and then blocks until released."""

    def __init__(self, result: Any = "late", exc: BaseException | None = None) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.result = result
        self.exc = exc
        self.outcome: list[Any] = []

    def __call__(self) -> Any:
        self.started.set()
        assert self.release.wait(WAIT)
        if self.exc is not None:
            raise self.exc
        return self.result

    def run_in_thread(self, breaker: CircuitBreaker) -> list[threading.Thread]:
        def target() -> None:
            try:
                self.outcome.append(breaker.call(self))
            except BaseException as exc:
                self.outcome.append(exc)

        threads = start(target)
        assert self.started.wait(WAIT)
        return threads


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"fail_max": 0}, "fail_max"),
        ({"fail_max": 2.5}, "fail_max"),
        ({"fail_max": True}, "fail_max"),
        ({"reset_timeout": -1}, "reset_timeout"),
        ({"reset_timeout": float("nan")}, "reset_timeout"),
        ({"reset_timeout": float("inf")}, "reset_timeout"),
        ({"reset_timeout": "5"}, "reset_timeout"),
        ({"success_threshold": 0}, "success_threshold"),
        ({"exclude": [42]}, "exclude"),
        ({"exclude": [int]}, "exclude"),
    ],
)
def test_invalid_arguments_raise_configuration_error(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        CircuitBreaker("svc", **kwargs)


def test_reset_timeout_zero_is_allowed(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=1, reset_timeout=0)
    trip(breaker, 1)
    assert breaker.state == "open"
    assert breaker.retry_in() == 0.0
    assert breaker.call(ok) == "ok"
    assert breaker.state == "closed"


# -- closed -> open -> half-open -> closed ---------------------------------------------------


def test_opens_after_fail_max_consecutive_faults(clock: FakeClock, events: Events) -> None:
    breaker = make(clock, events, fail_max=3)
    trip(breaker, 2)
    assert breaker.state == "closed"
    assert breaker.statistics().fail_counter == 2
    with pytest.raises(Boom):  # the fault itself propagates, also on the tripping call
        breaker.call(fail)
    assert breaker.state == "open"
    [changed] = events.named("breaker.state_changed")
    assert changed.source == "svc"
    assert dict(changed.metadata) == {"old": "closed", "new": "open"}
    [tripped] = events.named("breaker.tripped")
    assert tripped.measurements["fail_counter"] == 3


def test_a_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=3)
    for _ in range(5):
        trip(breaker, 2)
        assert breaker.call(ok) == "ok"
        assert breaker.statistics().fail_counter == 0
    assert breaker.state == "closed"


def test_open_refuses_without_calling_and_reports_retry_in(
    clock: FakeClock, events: Events
) -> None:
    breaker = make(clock, events, fail_max=1, reset_timeout=60.0)
    trip(breaker, 1)
    called = []
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(called.append, 1)
    assert called == []
    assert (info.value.breaker, info.value.retry_in, info.value.reason) == ("svc", 60.0, "open")
    clock.advance(20.0)
    assert breaker.retry_in() == pytest.approx(40.0)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(called.append, 2)
    assert info.value.retry_in == pytest.approx(40.0)
    assert called == []
    [first, second] = events.named("breaker.rejected")
    assert first.metadata["reason"] == "open"
    assert second.measurements["retry_in"] == pytest.approx(40.0)
    assert breaker.statistics().rejected == 2


def test_after_reset_timeout_a_successful_probe_closes(clock: FakeClock, events: Events) -> None:
    breaker = make(clock, events, fail_max=2)
    trip(breaker, 2)
    clock.advance(59.999)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    clock.advance(0.001)
    assert breaker.state == "open"  # lazily, like pybreaker: only a call moves it on
    assert breaker.retry_in() == 0.0
    assert breaker.call(ok, "probe") == "probe"
    assert breaker.state == "closed"
    transitions = [
        (e.metadata["old"], e.metadata["new"]) for e in events.named("breaker.state_changed")
    ]
    assert transitions == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]
    assert breaker.statistics().fail_counter == 0


def test_a_failed_probe_reopens_for_a_full_reset_timeout(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=2, reset_timeout=10.0)
    trip(breaker, 2)
    clock.advance(15.0)  # later than the timeout: the new period starts at the probe
    with pytest.raises(Boom):
        breaker.call(fail)
    assert breaker.state == "open"
    assert breaker.retry_in() == 10.0
    clock.advance(9.5)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    clock.advance(0.5)
    assert breaker.call(ok) == "ok"
    stats = breaker.statistics()
    assert (stats.state, stats.trips) == ("closed", 2)


def test_success_threshold_needs_that_many_probes_one_at_a_time(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=1, success_threshold=3)
    trip(breaker, 1)
    clock.advance(60.0)
    for n in (1, 2):
        assert breaker.call(ok) == "ok"
        stats = breaker.statistics()
        assert (stats.state, stats.success_counter, stats.retry_in) == ("half-open", n, 0.0)
    blocker = Blocker()
    threads = blocker.run_in_thread(breaker)  # the third probe, held in flight
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert (info.value.reason, info.value.retry_in) == (PROBE_IN_FLIGHT, 0.0)
    blocker.release.set()
    join(threads)
    assert blocker.outcome == ["late"]
    assert breaker.state == "closed"


def test_a_failed_probe_resets_the_probe_successes(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=1, success_threshold=2)
    trip(breaker, 1)
    clock.advance(60.0)
    breaker.call(ok)
    trip(breaker, 1)
    assert breaker.statistics().success_counter == 0
    clock.advance(60.0)
    breaker.call(ok)
    assert breaker.state == "half-open"
    breaker.call(ok)
    assert breaker.state == "closed"


def test_only_one_probe_in_flight(clock: FakeClock, events: Events) -> None:
    breaker = make(clock, events, fail_max=1)
    trip(breaker, 1)
    clock.advance(60.0)
    probe = Blocker(result="probed")
    threads = probe.run_in_thread(breaker)
    assert breaker.state == "half-open"
    assert breaker.statistics().probe_in_flight
    called = []
    for _ in range(5):
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(called.append, 1)
        assert (info.value.reason, info.value.retry_in) == (PROBE_IN_FLIGHT, 0.0)
    assert called == []
    assert breaker.retry_in() == 0.0
    assert [e.metadata["reason"] for e in events.named("breaker.rejected")] == [PROBE_IN_FLIGHT] * 5
    probe.release.set()
    join(threads)
    assert probe.outcome == ["probed"]
    stats = breaker.statistics()
    assert (stats.state, stats.probe_in_flight, stats.in_flight) == ("closed", False, 0)


# -- exclusions and non-faults ---------------------------------------------------------------


def test_excluded_errors_neither_trip_nor_reset_the_count(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=5, exclude=[ValueError, lambda e: isinstance(e, KeyError)])
    trip(breaker, 4)
    with pytest.raises(ValueError):
        breaker.call(fail, ValueError("not a fault"))
    with pytest.raises(KeyError):
        breaker.call(fail, KeyError("nor this"))
    stats = breaker.statistics()
    assert (stats.state, stats.fail_counter, stats.excluded) == ("closed", 4, 2)
    trip(breaker, 1)
    assert breaker.state == "open"


def test_an_excluded_error_as_the_probe_counts_like_a_success(clock: FakeClock) -> None:
    rec = Recorder()
    breaker = make(clock, fail_max=1, exclude=[ValueError], listeners=[rec])
    with pytest.raises(ValueError):  # while closed: no success reported to pybreaker
        breaker.call(fail, ValueError())
    assert rec.kinds("success") == []
    trip(breaker, 1)
    clock.advance(60.0)
    with pytest.raises(ValueError):
        breaker.call(fail, ValueError("the service answered"))
    assert breaker.state == "closed"
    assert len(rec.kinds("success")) == 1


def test_an_exception_class_with_a_metaclass_excludes_only_itself(clock: FakeClock) -> None:
    class Domain(Exception, metaclass=abc.ABCMeta):
        pass

    # pybreaker alone would call the class as a predicate and exclude every error
    assert not pybreaker.CircuitBreaker(exclude=[Domain]).is_system_error(Boom())
    breaker = make(clock, fail_max=1, exclude=[Domain])
    with pytest.raises(Domain):
        breaker.call(fail, Domain())
    assert breaker.state == "closed"
    trip(breaker, 1)
    assert breaker.state == "open"


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_base_exceptions_propagate_uncounted_and_free_the_probe(
    clock: FakeClock, exc_type: type[BaseException]
) -> None:
    breaker = make(clock, fail_max=1)
    with pytest.raises(exc_type):
        breaker.call(fail, exc_type())
    assert breaker.state == "closed"
    trip(breaker, 1)
    clock.advance(60.0)
    with pytest.raises(exc_type):
        breaker.call(fail, exc_type())
    stats = breaker.statistics()
    assert (stats.state, stats.probe_in_flight, stats.failures, stats.calls) == (
        "half-open",
        False,
        1,
        3,
    )
    assert breaker.call(ok) == "ok"  # the next call is the probe
    assert breaker.state == "closed"


def test_the_callers_traceback_is_not_changed_by_recording(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=1)
    with pytest.raises(Boom) as info:
        breaker.call(fail)
    frames = [tb.tb_frame.f_code.co_name for tb in _walk(info.value.__traceback__)]
    assert "on_failure" not in frames
    assert frames[-1] == "fail"


def _walk(tb: Any) -> Iterator[Any]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


# -- listeners -------------------------------------------------------------------------------


def test_listeners_hear_what_pybreaker_would_tell_them(clock: FakeClock) -> None:
    rec, late = Recorder(), Recorder()
    breaker = make(clock, fail_max=1, listeners=[rec])
    breaker.add_listener(late)
    assert breaker.call(ok, "x") == "x"
    err = Boom()
    with pytest.raises(Boom):
        breaker.call(fail, exc=err)
    with pytest.raises(CircuitOpenError):  # refused: no before_call
        breaker.call(ok)
    clock.advance(60.0)
    breaker.call(ok)
    assert rec.log == [
        ("before_call", ok, ("x",), {}),
        ("success",),
        ("before_call", fail, (), {"exc": err}),
        ("failure", err),
        ("state_change", "closed", "open"),
        ("state_change", "open", "half-open"),
        ("before_call", ok, (), {}),
        ("state_change", "half-open", "closed"),
        ("success",),
    ]
    assert late.log == rec.log


def test_a_listener_that_raises_in_before_call_undoes_the_admission(clock: FakeClock) -> None:
    class Veto(pybreaker.CircuitBreakerListener):
        def before_call(self, cb: Any, func: Any, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("veto")

    breaker = make(clock, fail_max=1)
    trip(breaker, 1)
    clock.advance(60.0)
    breaker.add_listener(Veto())
    called = []
    with pytest.raises(RuntimeError, match="veto"):
        breaker.call(called.append, 1)
    stats = breaker.statistics()
    assert called == []
    assert (stats.in_flight, stats.probe_in_flight, stats.calls) == (0, False, 1)


# -- concurrency -----------------------------------------------------------------------------


def test_concurrent_calls_run_concurrently(clock: FakeClock) -> None:
    barrier = threading.Barrier(32, timeout=WAIT)  # passes only with all 32 inside at once
    breaker = make(clock)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            breaker.call(barrier.wait)
        except BaseException as exc:
            errors.append(exc)

    join(start(worker, 32))
    assert errors == []
    stats = breaker.statistics()
    assert (stats.calls, stats.successes, stats.in_flight, stats.state) == (32, 32, 0, "closed")


def test_plain_pybreaker_serialises_the_same_calls() -> None:
    """The trap this class avoids (pybreaker issue #55): its call holds the lock."""
    barrier = threading.Barrier(2, timeout=0.2)
    breaker = pybreaker.CircuitBreaker(fail_max=10)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            breaker.call(barrier.wait)
        except BaseException as exc:
            errors.append(exc)

    join(start(worker, 2))
    assert len(errors) == 2
    assert all(isinstance(e, threading.BrokenBarrierError) for e in errors)


def test_faults_of_calls_admitted_while_closed_trip_once(clock: FakeClock, events: Events) -> None:
    rec = Recorder()
    breaker = make(clock, events, fail_max=3, listeners=[rec])
    barrier = threading.Barrier(16, timeout=WAIT)  # all 16 admitted before any fails
    errors: list[BaseException] = []

    def fail_together() -> None:
        barrier.wait()
        fail()

    def worker() -> None:
        try:
            breaker.call(fail_together)
        except BaseException as exc:
            errors.append(exc)

    join(start(worker, 16))
    assert len(errors) == 16 and all(isinstance(e, Boom) for e in errors)
    stats = breaker.statistics()
    assert (stats.trips, stats.failures, stats.stale, stats.fail_counter) == (1, 16, 13, 3)
    assert (stats.state, stats.retry_in) == ("open", 60.0)
    assert len(events.named("breaker.tripped")) == 1
    assert len(rec.kinds("failure")) == 3  # stale outcomes are not reported to pybreaker
    assert rec.kinds("state_change") == [("state_change", "closed", "open")]


def test_a_late_fault_does_not_extend_the_open_period(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=2, reset_timeout=60.0)
    slow = Blocker(exc=Boom("late"))
    threads = slow.run_in_thread(breaker)
    trip(breaker, 2)
    clock.advance(30.0)
    slow.release.set()
    join(threads)
    assert isinstance(slow.outcome[0], Boom)
    stats = breaker.statistics()
    assert (stats.retry_in, stats.trips, stats.stale, stats.fail_counter) == (30.0, 1, 1, 2)


def test_a_late_success_neither_closes_nor_counts_as_a_probe(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=2)
    slow = Blocker(result="late")
    slow_threads = slow.run_in_thread(breaker)  # admitted while closed
    trip(breaker, 2)
    slow.release.set()
    join(slow_threads)
    assert slow.outcome == ["late"]  # the caller still gets its result
    assert breaker.state == "open"
    clock.advance(60.0)
    probe = Blocker(exc=Boom("probe failed"))
    probe_threads = probe.run_in_thread(breaker)
    late = Blocker(result="late too")  # cannot be admitted now: the probe is in flight
    with pytest.raises(CircuitOpenError):
        breaker.call(late)
    probe.release.set()
    join(probe_threads)
    stats = breaker.statistics()
    assert (stats.state, stats.trips, stats.stale, stats.successes) == ("open", 2, 1, 1)


def test_a_probe_outlived_by_a_manual_close_is_stale(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=1)
    trip(breaker, 1)
    clock.advance(60.0)
    probe = Blocker(exc=Boom("probe"))
    threads = probe.run_in_thread(breaker)
    breaker.close()
    assert breaker.call(ok) == "ok"  # closed: calls run next to the old probe
    probe.release.set()
    join(threads)
    stats = breaker.statistics()
    assert (stats.state, stats.fail_counter, stats.stale) == ("closed", 0, 1)


def test_shared_storage_state_changes_are_noticed(clock: FakeClock) -> None:
    storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
    rec = Recorder()
    a = make(clock, fail_max=2, state_storage=storage)
    b = make(clock, fail_max=2, state_storage=storage, listeners=[rec])
    slow = Blocker()
    threads = slow.run_in_thread(b)
    trip(a, 2)
    assert b.state == "open"
    assert rec.kinds("state_change") == [("state_change", "closed", "open")]
    with pytest.raises(CircuitOpenError):
        b.call(ok)
    slow.release.set()
    join(threads)
    assert slow.outcome == ["late"]
    stats = b.statistics()
    assert (stats.state, stats.stale, stats.trips, stats.retry_in) == ("open", 1, 1, 60.0)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    yield from start_redis()


def test_redis_storage_shares_counts_and_state(redis_url: str, clock: FakeClock) -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(redis_url)
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    try:
        a, b = (
            make(
                clock,
                fail_max=2,
                state_storage=pybreaker.CircuitRedisStorage(
                    pybreaker.STATE_CLOSED, client, namespace=namespace
                ),
            )
            for _ in range(2)
        )
        trip(a, 1)
        assert b.statistics().fail_counter == 1
        trip(b, 1)  # the second consecutive fault, counted in Redis: b trips
        assert a.state == "open"
        with pytest.raises(CircuitOpenError) as info:
            a.call(ok)
        assert info.value.retry_in == 60.0  # opened_at in Redis, from the FakeClock
        clock.advance(60.0)
        assert a.call(ok) == "ok"  # a's probe closes the shared circuit
        assert b.state == "closed"
    finally:
        client.close()


# -- async, calling(), manual control, statistics --------------------------------------------


def test_async_functions_are_refused(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=1)

    async def fetch() -> int:
        return 1

    with pytest.raises(TypeError, match="async"):
        breaker.call(fetch)  # type: ignore[arg-type]
    assert breaker.statistics().calls == 0
    trip(breaker, 1)
    clock.advance(60.0)
    with pytest.raises(TypeError, match="awaitable"):
        breaker.call(lambda: fetch())
    gc.collect()  # a coroutine left unawaited would warn here (and warnings are errors)
    stats = breaker.statistics()
    assert (stats.state, stats.probe_in_flight, stats.successes) == ("half-open", False, 0)
    assert breaker.call(ok) == "ok"
    assert breaker.state == "closed"


def test_calling_follows_the_same_rules(clock: FakeClock) -> None:
    rec = Recorder()
    breaker = make(clock, fail_max=1, listeners=[rec])
    with breaker.calling():
        pass
    with pytest.raises(Boom), breaker.calling():
        raise Boom()
    ran = False
    with pytest.raises(CircuitOpenError), breaker.calling():
        ran = True
    assert not ran
    stats = breaker.statistics()
    assert (stats.successes, stats.failures, stats.rejected, stats.state) == (1, 1, 1, "open")
    assert all(callable(e[1]) for e in rec.kinds("before_call"))


def test_manual_open_and_close(clock: FakeClock, events: Events) -> None:
    breaker = make(clock, events, fail_max=3, reset_timeout=30.0)
    trip(breaker, 2)
    breaker.open()
    assert (breaker.state, breaker.retry_in()) == ("open", 30.0)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    breaker.close()
    stats = breaker.statistics()
    assert (stats.state, stats.fail_counter, stats.trips, stats.opened_at) == ("closed", 0, 1, None)
    assert [e.name for e in events] == [
        "breaker.state_changed",
        "breaker.tripped",
        "breaker.rejected",
        "breaker.state_changed",
    ]


def test_statistics_snapshot(clock: FakeClock) -> None:
    breaker = make(clock, fail_max=2, reset_timeout=10.0, exclude=[ValueError])
    breaker.call(ok)
    with pytest.raises(ValueError):
        breaker.call(fail, ValueError())
    clock.advance(1.5)
    trip(breaker, 2)
    opened = clock.time()
    clock.advance(4.0)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    assert breaker.statistics() == BreakerStats(
        name="svc",
        state="open",
        fail_counter=2,
        success_counter=0,
        fail_max=2,
        reset_timeout=10.0,
        opened_at=opened,
        retry_in=6.0,
        in_flight=0,
        probe_in_flight=False,
        calls=4,
        successes=1,
        failures=2,
        excluded=1,
        rejected=1,
        trips=1,
        stale=0,
    )
    with pytest.raises(AttributeError):
        breaker.statistics().calls = 0  # type: ignore[misc]


def test_the_system_clock_is_the_default() -> None:
    breaker = CircuitBreaker("real", reset_timeout=60.0)
    breaker.open()
    assert 59.0 < breaker.retry_in() <= 60.0
    assert repr(breaker) == "CircuitBreaker('real', state='open')"


# -- property and stress ---------------------------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.sampled_from(["ok", "fault", "excluded"]),
        st.sampled_from([0.25, 1.0, 2.5]),  # advance the clock
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops=OPS, fail_max=st.integers(1, 4), threshold=st.integers(1, 3))
def test_sequential_calls_match_a_model(ops: list[Any], fail_max: int, threshold: int) -> None:
    """One thread: the breaker behaves like the textbook state machine."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        fail_max=fail_max,
        reset_timeout=2.0,
        success_threshold=threshold,
        exclude=[ValueError],
        clock=clock,
    )
    state, fails, probes, opened_at, trips = "closed", 0, 0, 0.0, 0
    for op in ops:
        if isinstance(op, float):
            clock.advance(op)
            continue
        if state == "open" and clock.monotonic() - opened_at >= 2.0:
            state, probes = "half-open", 0
        expect_refused = state == "open"
        refused = False
        error = {"ok": None, "fault": Boom(), "excluded": ValueError()}[op]
        try:
            breaker.call(ok) if error is None else breaker.call(fail, error)
        except CircuitOpenError:
            refused = True
        except (Boom, ValueError):
            pass
        assert refused == expect_refused
        if refused:
            continue
        if state == "closed":
            if op == "ok":
                fails = 0
            elif op == "fault":
                fails += 1
                if fails >= fail_max:
                    state, opened_at, trips = "open", clock.monotonic(), trips + 1
        elif op == "fault":  # the probe failed
            state, opened_at, trips = "open", clock.monotonic(), trips + 1
        else:
            probes += 1
            if probes >= threshold:
                state, fails = "closed", 0
        stats = breaker.statistics()
        assert stats.state == state
        assert stats.trips == trips
        if state == "closed":
            assert stats.fail_counter == fails


@pytest.fixture
def tight_switching() -> Iterator[None]:
    """Switch threads far more often than usual, to shake out interleavings."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.slow
@pytest.mark.usefixtures("tight_switching")
@pytest.mark.parametrize("seed", range(4))
def test_stress_random_faults_keep_the_invariants(seed: int) -> None:
    clock = FakeClock()
    local = threading.local()
    guard = threading.Lock()
    transitions: list[tuple[str, str]] = []
    counts = {"fn": 0, "probes": 0, "max_probes": 0, "refused": 0}

    class Watch(pybreaker.CircuitBreakerListener):
        def before_call(self, cb: Any, func: Any, *args: Any, **kwargs: Any) -> None:
            local.probe = cb.current_state == pybreaker.STATE_HALF_OPEN  # under the lock

        def state_change(self, cb: Any, old: Any, new: Any) -> None:
            transitions.append((old.name, new.name))  # under the lock: in order

    events = Events()
    breaker = CircuitBreaker(
        "stress",
        fail_max=3,
        reset_timeout=1.0,
        success_threshold=2,
        exclude=[ValueError],
        listeners=[Watch()],
        clock=clock,
        on_event=events.append,
    )

    def fn(rng: random.Random) -> None:
        with guard:
            counts["fn"] += 1
            if local.probe:
                counts["probes"] += 1
                counts["max_probes"] = max(counts["max_probes"], counts["probes"])
        try:
            roll = rng.random()
            if roll > 0.9:  # a slow call (real time): others are admitted, refused, trip it
                time.sleep(0.0002)
            if roll < 0.05:
                clock.advance(rng.choice([0.25, 0.5, 1.0]))
            if roll < 0.35:
                raise Boom()
            if roll < 0.40:
                raise ValueError()
        finally:
            if local.probe:
                with guard:
                    counts["probes"] -= 1

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        for _ in range(1500):
            if rng.random() < 0.02:
                clock.advance(0.5)
            try:
                breaker.call(fn, rng)
            except CircuitOpenError:
                with guard:
                    counts["refused"] += 1
            except (Boom, ValueError):
                pass

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    join(threads)

    stats = breaker.statistics()
    assert counts["max_probes"] <= 1
    assert (stats.in_flight, stats.probe_in_flight) == (0, False)
    assert stats.calls == counts["fn"] == stats.successes + stats.failures + stats.excluded
    assert stats.rejected == counts["refused"] == len(events.named("breaker.rejected"))
    assert stats.calls + stats.rejected == 16 * 1500
    opens = sum(1 for _, new in transitions if new == "open")
    assert stats.trips == opens == len(events.named("breaker.tripped")) > 0
    assert ("half-open", "closed") in transitions
    allowed = {("closed", "open"), ("open", "half-open"), ("half-open", "open")}
    allowed.add(("half-open", "closed"))
    assert set(transitions) <= allowed
    assert all(a[1] == b[0] for a, b in itertools.pairwise(transitions))
    assert transitions[-1][1] == stats.state
    assert stats.stale > 0  # late outcomes happened, and were ignored
    reasons = {e.metadata["reason"] for e in events.named("breaker.rejected")}
    assert reasons == {"open", PROBE_IN_FLIGHT}
