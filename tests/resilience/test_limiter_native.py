"""The native strategies (rolling-window, the default, and token-bucket) in memory: exact
limits, waits, refunds, a lowered limit, and the zero-violation property under 16 threads
(hypothesis) and under saturation. Time is a FakeClock throughout.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from limiter_load import TimedClock, saturate, settled, utilisation, violations
from limits.storage import MemoryStorage

from otpy.errors import ConfigurationError
from otpy.resilience import ClockedMemoryStorage, Limit, Permit, RateLimiter
from otpy.testing import FakeClock

EPOCH = 1_700_000_040.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(epoch=EPOCH)


def level(limiter: RateLimiter, dimension: str, strategy: str | None = None) -> float:
    return next(
        b.level
        for b in limiter.statistics().buckets
        if b.dimension == dimension and strategy in (None, b.strategy)
    )


# -- rolling window ----------------------------------------------------------------------


def test_the_default_is_an_exact_rolling_window(clock: FakeClock) -> None:
    limiter = RateLimiter([Limit("requests", "3/minute")], clock=clock)
    assert limiter.limits[0].strategy == "rolling-window"
    for step in (0.0, 20.0, 20.0):  # t = 0, 20, 40
        clock.advance(step)
        assert limiter.try_acquire() is not None
    clock.advance(19.9)  # t = 59.9: three in the last minute
    assert limiter.try_acquire() is None
    assert limiter.wait_time() == pytest.approx(0.1, abs=1e-9)  # t = 0 leaves at 60
    clock.advance(0.1)
    assert limiter.try_acquire() is not None
    assert limiter.try_acquire() is None  # the next to leave is t = 20


def test_rolling_refund_goes_back_to_its_slot_until_it_expires(clock: FakeClock) -> None:
    limiter = RateLimiter([Limit("tokens", "1000/minute")], clock=clock)
    early = limiter.acquire({"tokens": 600})
    clock.advance(30)
    late = limiter.acquire({"tokens": 400})
    clock.advance(31)  # the 600 have left the window; refunding them gives nothing
    assert early.settle({"tokens": 0}) == {"tokens": 0}
    assert level(limiter, "tokens") == 400
    assert late.settle({"tokens": 100}) == {"tokens": -300}
    assert level(limiter, "tokens") == 100
    assert limiter.statistics().refunds_dropped == {}  # nothing owed was kept


def test_a_window_keeps_one_run_per_slot_whatever_the_units(clock: FakeClock) -> None:
    storage = ClockedMemoryStorage(clock)
    limiter = RateLimiter([Limit("tokens", "1000000/second")], storage, clock=clock)
    for _ in range(5000):  # 5,000 hits a millisecond apart: 5 seconds of them
        limiter.acquire({"tokens": 100})
        clock.advance(0.001)
    assert level(limiter, "tokens") == 99_900  # the hits of the last second: (4, 5]
    (log,) = storage.buckets.logs.values()
    assert len(log.runs) - log.head <= 1001  # a period's worth of slots, not of hits


def test_a_lowered_limit_counts_what_was_admitted_before(clock: FakeClock) -> None:
    storage = ClockedMemoryStorage(clock)
    high = RateLimiter([Limit("requests", "10/minute")], storage, clock=clock, name="p")
    for _ in range(8):
        high.acquire()
    low = RateLimiter([Limit("requests", "5/minute")], storage, clock=clock, name="p")
    assert low.try_acquire() is None  # 8 already in the window: over the new limit
    assert level(low, "requests") == 8
    assert high.try_acquire() is not None  # the old limit still sees room
    clock.advance(60)  # all 9 have left the window
    assert [low.try_acquire() is not None for _ in range(6)] == [True] * 5 + [False]


# -- token bucket ------------------------------------------------------------------------


def test_token_bucket_refills_continuously(clock: FakeClock) -> None:
    limiter = RateLimiter([Limit("tokens", "600/minute", "token-bucket")], clock=clock)
    limiter.acquire({"tokens": 600})  # a full bucket at once
    assert limiter.try_acquire({"tokens": 1}) is None
    assert limiter.wait_time({"tokens": 100}) == pytest.approx(10, abs=1e-5)  # 10/s
    clock.advance(5)
    assert level(limiter, "tokens") == pytest.approx(550)
    assert limiter.try_acquire({"tokens": 50}) is not None
    assert limiter.try_acquire({"tokens": 1}) is None


def test_token_bucket_refund_gives_back_only_what_has_not_drained(clock: FakeClock) -> None:
    # 100 tokens a 100 s: one a second. Had the first call reserved only what it used (10),
    # the bucket would have refilled to full by t = 20 and held 60 after the second call:
    # giving back all 40 at t = 20 would leave 50 in use and let 50 more in, where the
    # provider's own bucket has room for 40 only.
    limiter = RateLimiter([Limit("tokens", "100/100 seconds", "token-bucket")], clock=clock)
    first = limiter.acquire({"tokens": 50})
    clock.advance(20)
    limiter.acquire({"tokens": 60})
    assert first.settle({"tokens": 10}) == {"tokens": -30}  # 20 of its 50 have drained
    assert level(limiter, "tokens") == pytest.approx(60)
    assert limiter.try_acquire({"tokens": 41}) is None
    assert limiter.try_acquire({"tokens": 40}) is not None


def test_simultaneous_refunds_on_an_idle_bucket_are_exact(clock: FakeClock) -> None:
    limiter = RateLimiter([Limit("tokens", "100/minute", "token-bucket")], clock=clock)
    a = limiter.acquire({"tokens": 30})
    b = limiter.acquire({"tokens": 30})
    assert b.settle({"tokens": 0}) == {"tokens": -30}
    assert a.settle({"tokens": 0}) == {"tokens": -30}  # b's refund did not shrink a's
    assert level(limiter, "tokens") == 0


def test_charge_past_the_limit_is_paid_off_at_the_rate(clock: FakeClock) -> None:
    limiter = RateLimiter([Limit("tokens", "60/minute", "token-bucket")], clock=clock)
    limiter.acquire({"tokens": 10}).settle({"tokens": 90})
    assert level(limiter, "tokens") == 90
    assert limiter.wait_time({"tokens": 1}) == pytest.approx(31, abs=1e-5)


def test_settle_reports_the_smallest_refund_of_a_dimensions_buckets(clock: FakeClock) -> None:
    limiter = RateLimiter(
        [Limit("tokens", "1000/minute"), Limit("tokens", "1000/minute", "token-bucket")],
        clock=clock,
    )
    permit = limiter.acquire({"tokens": 600})
    clock.advance(18)  # the bucket drained 300 of the 600; the window still holds them all
    assert permit.settle({"tokens": 0}) == {"tokens": -300}
    assert level(limiter, "tokens", "rolling-window") == 0
    assert level(limiter, "tokens", "token-bucket") == pytest.approx(0)


# -- configuration -----------------------------------------------------------------------


def test_one_native_bucket_per_dimension_period_and_strategy(clock: FakeClock) -> None:
    with pytest.raises(ConfigurationError, match="given twice"):
        RateLimiter([Limit("requests", "10/minute"), Limit("requests", "20/minute")], clock=clock)
    RateLimiter(
        [Limit("requests", "10/minute"), Limit("requests", "20/minute", "token-bucket"),
         Limit("requests", "2/second")], clock=clock,
    )  # fmt: skip


def test_a_storage_without_native_buckets_takes_limits_strategies_only() -> None:
    with pytest.raises(ConfigurationError, match="rolling-window and token-bucket need"):
        RateLimiter([Limit("requests", "10/minute")], MemoryStorage())
    other = RateLimiter([Limit("requests", "1/minute", "fixed-window")], MemoryStorage())
    assert other.try_acquire() is not None and other.try_acquire() is None


def test_native_and_limits_buckets_reserve_all_or_none(clock: FakeClock) -> None:
    limiter = RateLimiter(
        [Limit("requests", "10/minute"), Limit("tokens", "100/minute", "token-bucket"),
         Limit("tokens", "50/minute", "fixed-window")], clock=clock,
    )  # fmt: skip
    limiter.acquire({"requests": 1, "tokens": 40})
    assert limiter.try_acquire({"requests": 1, "tokens": 20}) is None  # the fixed window
    assert level(limiter, "requests") == 1
    assert level(limiter, "tokens", "token-bucket") == 40
    permit = limiter.acquire({"requests": 1, "tokens": 10})
    assert permit.admitted_at == clock.monotonic()


# -- under 16 threads ----------------------------------------------------------------------

PROPS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PERIODS = {"second": 1, "10 seconds": 10, "minute": 60}
STEPS = [0.0, 0.0005, 0.001, 0.25, 0.5, 0.9995, 1.0, 3.0, 9.9995, 10.0, 30.0, 59.9995, 60.0, 61.0]

bucket_specs = st.tuples(
    st.sampled_from(["requests", "tokens"]),
    st.integers(1, 40),
    st.sampled_from(sorted(PERIODS)),
    st.sampled_from(["rolling-window", "token-bucket"]),
)


def _limits(specs: list[tuple[str, int, str, str]]) -> list[Limit]:
    seen: dict[tuple[str, str, str], Limit] = {}
    for dimension, amount, per, strategy in specs:
        seen.setdefault(
            (dimension, per, strategy), Limit(dimension, f"{amount} per {per}", strategy)
        )  # type: ignore[arg-type]
    return list(seen.values())


@PROPS
@given(
    specs=st.lists(bucket_specs, min_size=1, max_size=4),
    phases=st.lists(
        st.tuples(
            st.sampled_from(STEPS),  # some end a hair before or after a period
            st.lists(
                st.tuples(st.integers(0, 3), st.integers(0, 40), st.floats(0, 1)),
                min_size=1,
                max_size=6,
            ),
        ),
        min_size=1,
        max_size=10,
    ),
)
def test_no_rolling_window_and_no_bucket_ever_holds_more_than_its_limit(
    specs: list[tuple[str, int, str, str]], phases: list[tuple[float, Any]]
) -> None:
    """16 threads, mixed costs, refunds: every admission at a known fake instant; the
    timeline of what each kept never breaks any bucket's rule."""
    clock = FakeClock(epoch=EPOCH)
    limits = _limits(specs)
    limiter = RateLimiter(limits, ClockedMemoryStorage(clock), clock=clock)
    timeline: list[tuple[float, dict[str, int]]] = []
    record = threading.Lock()
    for step, work in phases:
        clock.advance(step)
        start = threading.Barrier(16)

        def worker(index: int, start: threading.Barrier, work: Any) -> None:
            start.wait(10)
            for requests, tokens, keep in work[index % len(work) :] + work[: index % len(work)]:
                cost = {"requests": requests, "tokens": tokens}
                try:
                    permit: Permit | None = limiter.try_acquire(cost)
                except Exception as exc:  # a cost over a bucket's limit: refused at once
                    assert "can never be admitted" in str(exc)
                    continue
                if permit is None:
                    continue
                kept = dict(cost)
                if keep < 0.5:  # used less than reserved: settle gives the rest back
                    for dimension, delta in permit.settle(settled(cost, keep * 2)).items():
                        kept[dimension] += delta
                with record:
                    timeline.append((permit.admitted_at, kept))

        pool = [threading.Thread(target=worker, args=(i, start, work)) for i in range(16)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(30)
        assert not any(t.is_alive() for t in pool)
        assert violations(timeline, limits) == {}
    assert limiter.statistics().refunds_dropped == {}


# -- under saturation ----------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["rolling-window", "token-bucket"])
def test_saturated_limiter_uses_at_least_95_percent_and_never_exceeds(strategy: Any) -> None:
    clock = TimedClock(epoch=EPOCH)
    limits = [Limit("requests", "60/minute", strategy), Limit("tokens", "20000/minute", strategy)]
    limiter = RateLimiter(limits, clock=clock)

    def cost(rng: random.Random) -> dict[str, int]:
        return {"requests": 1, "tokens": rng.randint(200, 1200)}

    def used(rng: random.Random, asked: dict[str, int]) -> dict[str, int]:
        return {"tokens": int(asked["tokens"] * rng.uniform(0.5, 1.0))}

    timeline = saturate(limiter, clock, workers=16, seconds=300, cost=cost, used=used)
    assert violations(timeline, limits) == {}
    used_of = [utilisation(timeline, limit, 60, 300) for limit in limits]
    assert max(used_of) >= 0.95, f"{strategy}: {used_of} of the limits"
