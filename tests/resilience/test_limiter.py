"""RateLimiter: buckets, all-or-none reservation, FIFO waiting, settle, pause, statistics.

Time is a FakeClock throughout: windows (in ClockedMemoryStorage) and waits both read it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import limits
import pytest
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

from otpy.errors import (
    ConfigurationError,
    CostExceedsLimitError,
    PermitError,
    RateLimitTimeout,
)
from otpy.resilience import ClockedMemoryStorage, Limit, RateLimiter
from otpy.testing import FakeClock, wait_until
from support import InThread

# FakeClock's wall time is epoch + monotonic; start at a minute boundary so calendar
# windows begin at t=0.
EPOCH = 1_700_000_040.0
STRATEGIES = ["rolling-window", "token-bucket", "sliding-window-counter", "moving-window",
              "fixed-window"]  # fmt: skip


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(epoch=EPOCH)


def rpm_tpm(clock: FakeClock, rpm: str = "60/minute", tpm: str = "1000/minute") -> RateLimiter:
    return RateLimiter([Limit("requests", rpm), Limit("tokens", tpm)], clock=clock, name="p/m")


def level(limiter: RateLimiter, dimension: str) -> float:
    return next(b.level for b in limiter.statistics().buckets if b.dimension == dimension)


@pytest.fixture
def acquirers() -> Iterator[list[InThread]]:
    started: list[InThread] = []
    yield started
    for a in started:
        a.thread.join(5)


def queued(limiter: RateLimiter, n: int) -> None:
    wait_until(lambda: limiter.statistics().waiting >= n, message=f"{n} queued")


# -- Limit -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("requests", "sixty a minute"), "is not a rate such as"),
        (("requests", "60/minute", "leaky"), "unknown strategy 'leaky'"),
        (("", "60/minute"), "Limit dimension ''"),
        (("requests", 60), "rate must be a string"),
        (("requests", "0/minute"), "at least 1"),
    ],
)
def test_limit_rejects_bad_input_naming_it(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Limit(*args)


def test_limit_reads_limits_strings_and_items() -> None:
    assert Limit("tokens", "100000 per minute").amount == 100000
    assert Limit("tokens", "100000 per minute").period == 60
    assert Limit("requests", limits.parse("5/second")).period == 1
    assert "tokens 10/3600s" in str(Limit("tokens", "10/hour", "fixed-window"))


def test_limiter_rejects_bad_configuration(clock: FakeClock) -> None:
    with pytest.raises(ConfigurationError, match="at least one Limit"):
        RateLimiter([], clock=clock)
    with pytest.raises(ConfigurationError, match="given twice"):
        RateLimiter([Limit("requests", "60/minute"), ("requests", "60 per minute")], clock=clock)
    with pytest.raises(ConfigurationError, match="storage 'nosuch://x'"):
        RateLimiter([Limit("requests", "1/second")], "nosuch://x", clock=clock)


def test_bad_costs_are_clear_errors_and_change_nothing(clock: FakeClock) -> None:
    limiter = rpm_tpm(clock)
    with pytest.raises(ConfigurationError, match="cost of 'tokens' must be an int >= 0"):
        limiter.acquire({"requests": 1, "tokens": -5})
    with pytest.raises(ConfigurationError, match="'tokens' must be an int"):
        limiter.acquire({"tokens": 1.5})  # type: ignore[dict-item]
    assert level(limiter, "requests") == 0


# -- buckets -----------------------------------------------------------------------


def test_same_amount_rpm_and_tpm_do_not_share_a_key(clock: FakeClock) -> None:
    # limits keys are namespace/amount/granularity: these two would collide in limits.
    limiter = RateLimiter(
        [Limit("requests", "1000/minute"), Limit("tokens", "1000/minute")], clock=clock
    )
    limiter.acquire({"requests": 1, "tokens": 900})
    assert level(limiter, "requests") == 1
    assert level(limiter, "tokens") == 900


def test_two_limiters_with_one_storage_are_kept_apart_by_name(clock: FakeClock) -> None:
    storage = ClockedMemoryStorage(clock)
    a = RateLimiter([Limit("requests", "2/minute")], storage, clock=clock, name="a")
    b = RateLimiter([Limit("requests", "2/minute")], storage, clock=clock, name="b")
    a.acquire()
    a.acquire()
    assert a.try_acquire() is None
    assert b.try_acquire() is not None


def test_default_cost_is_one_request(clock: FakeClock) -> None:
    limiter = rpm_tpm(clock, rpm="2/minute")
    permit = limiter.acquire()
    assert permit.cost == {"requests": 1}
    assert level(limiter, "requests") == 1
    assert level(limiter, "tokens") == 0


def test_dimensions_without_a_bucket_are_not_limited(clock: FakeClock) -> None:
    limiter = RateLimiter([Limit("requests", "1/minute")], clock=clock)
    permit = limiter.acquire({"requests": 1, "tokens": 10**9})
    assert permit.settle({"tokens": 5}) == {}


def test_all_or_none_a_refusing_bucket_leaves_the_others_untouched(clock: FakeClock) -> None:
    limiter = rpm_tpm(clock)
    limiter.acquire({"requests": 1, "tokens": 950})
    assert limiter.try_acquire({"requests": 1, "tokens": 100}) is None
    assert level(limiter, "requests") == 1  # the request bucket was rolled back
    assert limiter.statistics().refused == 1


def test_cost_larger_than_a_bucket_fails_at_once(clock: FakeClock) -> None:
    limiter = rpm_tpm(clock)
    with pytest.raises(CostExceedsLimitError) as info:
        limiter.acquire({"requests": 1, "tokens": 1001}, timeout=None)
    assert info.value.dimension == "tokens"
    assert info.value.cost == 1001
    assert "can never be admitted" in str(info.value)
    assert clock.sleepers == 0 and level(limiter, "requests") == 0


# -- waiting -----------------------------------------------------------------------


def test_acquire_waits_until_the_window_has_room(
    clock: FakeClock, acquirers: list[InThread]
) -> None:
    limiter = RateLimiter([Limit("requests", "2/minute", "fixed-window")], clock=clock)
    limiter.acquire()
    limiter.acquire()
    waiter = InThread(limiter.acquire, {"requests": 1})
    acquirers.append(waiter)
    clock.wait_for_sleepers(1)
    assert limiter.wait_time() == pytest.approx(60, abs=1e-3)
    clock.advance(59.9)
    clock.wait_for_sleepers(1)
    assert not waiter.done.is_set()
    clock.advance(0.2)
    permit = waiter.result()
    assert permit.waited == pytest.approx(60.1)
    stats = limiter.statistics()
    assert (stats.acquired, stats.waited, stats.waiting) == (3, 1, 0)


def test_sliding_window_admits_as_the_previous_window_decays(
    clock: FakeClock, acquirers: list[InThread]
) -> None:
    limiter = RateLimiter([Limit("tokens", "1000/minute", "sliding-window-counter")], clock=clock)
    limiter.acquire({"tokens": 1000})
    clock.advance(60)  # a new window: the previous one weighs 1000 x (1 - elapsed/60)
    expected = limiter.wait_time({"tokens": 400})
    # floor(1000 x (1 - t/60)) + 400 <= 1000  <=>  t > 23.94
    assert expected == pytest.approx(23.94, abs=1e-3)
    waiter = InThread(limiter.acquire, {"tokens": 400})
    acquirers.append(waiter)
    clock.wait_for_sleepers(1)
    clock.advance(23.93)
    clock.wait_for_sleepers(1)
    assert not waiter.done.is_set()
    clock.advance(0.02)
    assert waiter.result().waited == pytest.approx(23.95)


def test_fifo_a_large_request_is_not_starved_by_small_ones(
    clock: FakeClock, acquirers: list[InThread]
) -> None:
    limiter = RateLimiter([Limit("tokens", "1000/minute", "fixed-window")], clock=clock)
    limiter.acquire({"tokens": 900})
    big = InThread(limiter.acquire, {"tokens": 800})
    acquirers.append(big)
    queued(limiter, 1)
    small = InThread(limiter.acquire, {"tokens": 50})  # would fit now, but queues behind
    acquirers.append(small)
    queued(limiter, 2)
    assert limiter.try_acquire({"tokens": 10}) is None  # nobody jumps the queue
    clock.wait_for_sleepers(1)
    assert not small.done.is_set()
    clock.advance(60)
    assert big.result().cost == {"tokens": 800}
    assert small.result().cost == {"tokens": 50}
    assert level(limiter, "tokens") == 850


def test_timeout_raises_reserves_nothing_and_lets_the_next_go(
    clock: FakeClock, acquirers: list[InThread]
) -> None:
    limiter = rpm_tpm(clock, tpm="1000/minute")
    limiter.acquire({"requests": 1, "tokens": 1000})
    head = InThread(limiter.acquire, {"requests": 1, "tokens": 1000}, timeout=5)
    acquirers.append(head)
    queued(limiter, 1)
    second = InThread(limiter.acquire, {"requests": 1, "tokens": 1}, timeout=None)
    acquirers.append(second)
    queued(limiter, 2)
    clock.wait_for_sleepers(1)
    clock.advance(5)
    with pytest.raises(RateLimitTimeout) as info:
        head.result()
    assert "tokens 1000/60s" in str(info.value) and info.value.timeout == 5
    clock.wait_for_sleepers(1)  # the second is head now, waiting for its own room
    clock.advance(54.9)
    clock.wait_for_sleepers(1)
    assert not second.done.is_set()
    clock.advance(0.1)  # t = 60: the 1000 tokens of t = 0 leave the rolling minute
    second.result()
    stats = limiter.statistics()
    assert stats.timeouts == 1 and stats.waiting == 0
    assert level(limiter, "requests") == 1  # the first request left the window with them


def test_timeout_zero_is_a_non_blocking_attempt(clock: FakeClock) -> None:
    limiter = RateLimiter([Limit("requests", "1/minute")], clock=clock)
    limiter.acquire(timeout=0)
    with pytest.raises(RateLimitTimeout):
        limiter.acquire(timeout=0)
    assert clock.sleepers == 0


def test_interrupted_waiter_leaves_the_queue(clock: FakeClock) -> None:
    limiter = RateLimiter([Limit("requests", "1/minute")], clock=clock)
    limiter.acquire()
    stop = threading.Event()

    class Stop(BaseException):
        pass

    class InterruptingClock(FakeClock):
        def wait(self, event: threading.Event, timeout: float | None) -> bool:
            stop.set()
            raise Stop

    limiter.clock = InterruptingClock()
    with pytest.raises(Stop):
        limiter.acquire()
    assert stop.is_set() and limiter.statistics().waiting == 0


# -- settle, release, pause ---------------------------------------------------------


def test_settle_refunds_unused_tokens_and_wakes_the_queue(
    clock: FakeClock, acquirers: list[InThread]
) -> None:
    limiter = rpm_tpm(clock)
    permit = limiter.acquire({"requests": 1, "tokens": 900})
    waiter = InThread(limiter.acquire, {"requests": 1, "tokens": 500})
    acquirers.append(waiter)
    clock.wait_for_sleepers(1)
    assert permit.settle({"tokens": 300}) == {"tokens": -600}
    assert waiter.result().waited == 0.0  # no time passed: the refund made the room
    assert level(limiter, "tokens") == 800
    assert limiter.statistics().refunded == {"tokens": 600}


def test_settle_charges_usage_beyond_the_reservation(clock: FakeClock) -> None:
    limiter = rpm_tpm(clock)
    permit = limiter.acquire({"requests": 1, "tokens": 100})
    assert permit.settle({"tokens": 1200}) == {"tokens": 1100}  # even past the limit
    assert level(limiter, "tokens") == 1200
    assert limiter.try_acquire({"requests": 1, "tokens": 1}) is None
    assert limiter.statistics().charged == {"tokens": 1100}
    clock.advance(30)  # the overdraft weighs for a whole period
    assert limiter.wait_time({"tokens": 1}) == pytest.approx(30, abs=1e-6)


def test_settle_twice_is_an_error_and_release_gives_everything_back(clock: FakeClock) -> None:
    limiter = rpm_tpm(clock)
    permit = limiter.acquire({"requests": 1, "tokens": 700})
    permit.settle({"tokens": 700})
    with pytest.raises(PermitError, match="already settled"):
        permit.settle({"tokens": 1})
    other = limiter.acquire({"requests": 1, "tokens": 200})
    other.release()
    assert other.settled
    assert level(limiter, "requests") == 1 and level(limiter, "tokens") == 700
    with pytest.raises(ConfigurationError, match="usage of 'tokens'"):
        limiter.acquire({"tokens": 1}).settle({"tokens": -1})


def test_refund_lands_in_the_window_it_was_taken_from(clock: FakeClock) -> None:
    limiter = RateLimiter([Limit("tokens", "1000/minute", "sliding-window-counter")], clock=clock)
    permit = limiter.acquire({"tokens": 1000})
    clock.advance(90)  # now half-way through the next window: the reservation weighs 500
    assert level(limiter, "tokens") == pytest.approx(500)
    permit.settle({"tokens": 0})
    assert level(limiter, "tokens") == pytest.approx(0)


def test_pause_for_holds_every_caller_until_it_ends(
    clock: FakeClock, acquirers: list[InThread]
) -> None:
    limiter = rpm_tpm(clock)
    limiter.pause_for(2.5)
    limiter.pause_for(1.0)  # a shorter pause does not cut the longer one
    assert limiter.try_acquire() is None
    waiter = InThread(limiter.acquire, {"requests": 1})
    acquirers.append(waiter)
    clock.wait_for_sleepers(1)
    assert limiter.statistics().paused_for == 2.5
    clock.advance(2.4)
    clock.wait_for_sleepers(1)
    assert not waiter.done.is_set()
    clock.advance(0.1)
    assert waiter.result().waited == pytest.approx(2.5)
    with pytest.raises(ConfigurationError):
        limiter.pause_for(-1)


def test_pause_timeout_names_the_pause(clock: FakeClock, acquirers: list[InThread]) -> None:
    limiter = rpm_tpm(clock)
    limiter.pause_for(30)
    waiter = InThread(limiter.acquire, {"requests": 1}, timeout=1)
    acquirers.append(waiter)
    clock.wait_for_sleepers(1)
    clock.advance(1)
    with pytest.raises(RateLimitTimeout, match="held back by pause"):
        waiter.result()


def test_reset_forgets_counts_and_pause(clock: FakeClock) -> None:
    limiter = rpm_tpm(clock)
    limiter.acquire({"requests": 1, "tokens": 1000})
    limiter.pause_for(10)
    limiter.reset()
    assert limiter.try_acquire({"requests": 1, "tokens": 1000}) is not None


def test_statistics_is_a_snapshot(clock: FakeClock) -> None:
    limiter = rpm_tpm(clock)
    limiter.acquire({"requests": 1, "tokens": 10})
    stats = limiter.statistics()
    assert stats.name == "p/m"
    assert [(b.dimension, b.limit, b.period, b.remaining) for b in stats.buckets] == [
        ("requests", 60, 60, 59),
        ("tokens", 1000, 60, 990),
    ]
    with pytest.raises(AttributeError):
        stats.acquired = 5  # type: ignore[misc]
    assert "RateLimiter 'p/m'" in repr(limiter) and "tokens 1000/60s" in repr(limiter)


# -- strategies --------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_limits_refunds_and_charges(clock: FakeClock, strategy: Any) -> None:
    limiter = RateLimiter([Limit("tokens", "100/minute", strategy)], clock=clock)
    permit = limiter.acquire({"tokens": 80})
    assert limiter.try_acquire({"tokens": 30}) is None
    assert permit.settle({"tokens": 50}) == {"tokens": -30}
    assert limiter.try_acquire({"tokens": 30}) is not None
    assert level(limiter, "tokens") == 80
    limiter.acquire({"tokens": 20}).settle({"tokens": 40})
    assert level(limiter, "tokens") == 120
    assert limiter.wait_time({"tokens": 1}) > 0


def test_fixed_window_refusal_consumes_nothing(clock: FakeClock) -> None:
    # limits' fixed window counts a refused hit; the limiter must not.
    limiter = RateLimiter([Limit("requests", "3/minute", "fixed-window")], clock=clock)
    limiter.acquire({"requests": 2})
    for _ in range(5):
        assert limiter.try_acquire({"requests": 2}) is None
    assert level(limiter, "requests") == 2
    assert limiter.try_acquire({"requests": 1}) is not None


def test_moving_window_stores_one_run_per_hit_not_per_unit(clock: FakeClock) -> None:
    storage = ClockedMemoryStorage(clock)
    limiter = RateLimiter(
        [Limit("tokens", "1000000/minute", "moving-window")], storage, clock=clock
    )
    limiter.acquire({"tokens": 400_000})
    limiter.acquire({"tokens": 400_000})
    key = Limit("tokens", "1000000/minute").item.key_for("otpy", "default", "tokens")
    assert storage.moving_window_runs(key, 60) == [(EPOCH, 800_000)]
    clock.advance(30)
    limiter.acquire({"tokens": 200_000})
    assert len(storage.moving_window_runs(key, 60)) == 2
    assert limiter.wait_time({"tokens": 1}) == pytest.approx(30, abs=1e-3)


# -- the storage speaks limits' contract --------------------------------------------

LimitsStrategy = Callable[[Any], Any]


@pytest.mark.parametrize(
    "strategy",
    [FixedWindowRateLimiter, MovingWindowRateLimiter, SlidingWindowCounterRateLimiter],
)
def test_clocked_storage_drives_limits_own_strategies(
    clock: FakeClock, strategy: LimitsStrategy
) -> None:
    storage = ClockedMemoryStorage(clock)
    limiter = strategy(storage)
    item = limits.parse("5/minute")
    assert all(limiter.hit(item, "k") for _ in range(5))
    assert not limiter.hit(item, "k")
    assert not limiter.test(item, "k")
    assert limiter.get_window_stats(item, "k").remaining == 0
    clock.advance(120)  # two periods later every strategy has forgotten
    assert limiter.test(item, "k", cost=5)
    assert limiter.hit(item, "k", cost=5)
    limiter.clear(item, "k")
    assert limiter.hit(item, "k", cost=5)
    assert storage.check() and storage.reset() is not None


def test_clocked_storage_expires_keys_lazily_without_threads(clock: FakeClock) -> None:
    before = threading.active_count()
    storage = ClockedMemoryStorage(clock)
    assert storage.incr("a", 10, 3) == 3
    assert storage.get_expiry("a") == EPOCH + 10
    clock.advance(10)
    assert storage.get("a") == 0
    for i in range(100):
        storage.incr(f"k{i}", 1)
    clock.advance(5)
    storage.incr("trigger", 1)  # a write sweeps expired keys at most once a second
    assert storage.get("k0") == 0 and storage.decr("k1") == 0
    assert threading.active_count() == before


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_align_takes_the_providers_view_when_it_is_stricter(
    clock: FakeClock, strategy: str
) -> None:
    limiter = RateLimiter(
        [Limit("requests", "10/minute", strategy), Limit("tokens", "1000/minute", strategy)],
        clock=clock,
        name="aligned",
    )
    limiter.acquire({"requests": 2, "tokens": 100})
    assert limiter.align("requests", 3) == 5  # we thought 8 were left; the server says 3
    assert level(limiter, "requests") == pytest.approx(7)
    assert limiter.align("requests", 5) == 0  # our view (3 left) is stricter: kept
    assert limiter.align("tokens", 900) == 0 and level(limiter, "tokens") == pytest.approx(100)
    assert limiter.align("input_tokens", 0) == 0  # no such bucket: nothing to align
    for _ in range(3):
        assert limiter.try_acquire({"requests": 1}) is not None
    assert limiter.try_acquire({"requests": 1}) is None
    assert limiter.statistics().aligned == {"requests": 5}
    with pytest.raises(ConfigurationError, match="remaining >= 0"):
        limiter.align("requests", -1)
