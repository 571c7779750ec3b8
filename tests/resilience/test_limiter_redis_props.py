"""The native strategies on a real redis-server under 16 threads (hypothesis).

Redis buckets run on the server's clock, which a test cannot move: each example runs for
real time, and the check is made on the timeline the server itself recorded (every
permit's ``admitted_at`` is the server time of its admission, in the same atomic script),
never on the test's own clock.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from limiter_load import Timeline, violations
from redis_server import start_redis

from otpy.errors import RateLimitTimeout
from otpy.resilience import Limit, RateLimiter

RUN = 1.6  # real seconds per example: past one period of every bucket


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    yield from start_redis()


bucket_specs = st.tuples(
    st.sampled_from(["requests", "tokens"]),
    st.integers(3, 60),
    st.sampled_from(["1 second", "1 second", "2 seconds"]),  # Redis periods: real time
    st.sampled_from(["rolling-window", "token-bucket"]),
)
# One bucket per dimension: settle reports one refund per dimension, and on real time a
# token bucket gives back a little less than a window (what drained since the admission).


def hammer(limiters: list[RateLimiter], seed: int) -> Timeline:
    """16 threads acquire mixed costs for RUN seconds, some settling for less: half wait
    in one limiter's queue, half try another limiter on the same buckets (as another
    process would) over and over, so admissions land the moment room appears."""
    timeline: Timeline = []
    record = threading.Lock()
    start = threading.Barrier(16)
    until = time.monotonic() + RUN

    def worker(index: int) -> None:
        rng = random.Random(seed * 100 + index)
        start.wait(10)
        limiter = limiters[index % 2]
        while time.monotonic() < until:
            cost = {"requests": rng.randint(0, 2), "tokens": rng.randint(0, 30)}
            try:
                found = limiter.try_acquire(cost) if index % 2 else limiter.acquire(cost, 0.05)
            except RateLimitTimeout:
                continue
            except Exception as exc:  # a cost over a bucket's limit: refused at once
                assert "can never be admitted" in str(exc)
                continue
            if found is None:
                continue
            permit, kept = found, dict(cost)
            if rng.random() < 0.4:
                used = {d: rng.randint(0, n) for d, n in cost.items()}
                for dimension, delta in permit.settle(used).items():
                    kept[dimension] += delta
            with record:
                timeline.append((permit.admitted_at, kept))

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(30)
    assert not any(thread.is_alive() for thread in pool)
    return timeline


@pytest.mark.slow
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(specs=st.lists(bucket_specs, min_size=1, max_size=2), seed=st.integers(0, 1000))
def test_no_window_or_bucket_on_redis_ever_holds_more_than_its_limit(
    redis_url: str, specs: list[tuple[str, int, str, Any]], seed: int
) -> None:
    limits: dict[str, Limit] = {}
    for dimension, amount, per, strategy in specs:
        limits.setdefault(dimension, Limit(dimension, f"{amount}/{per}", strategy))
    name = f"p-{uuid.uuid4().hex[:8]}"
    limiter, other = (RateLimiter(list(limits.values()), redis_url, name=name) for _ in "ab")
    timeline = hammer([limiter, other], seed)
    assert len(timeline) >= 2  # it ran
    assert violations(timeline, list(limits.values())) == {}
    assert limiter.statistics().refunds_dropped == other.statistics().refunds_dropped == {}
