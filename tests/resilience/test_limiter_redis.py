"""RateLimiter on a real redis-server: limits shared by limiters and by processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_server import start_redis

from otpy.errors import RateLimitTimeout
from otpy.resilience import Limit, RateLimiter

STRATEGIES = ["rolling-window", "token-bucket", "sliding-window-counter", "fixed-window",
              "moving-window"]  # fmt: skip


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    yield from start_redis()


@pytest.fixture
def name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def limiter(url: str, name: str, *limits: Limit) -> RateLimiter:
    return RateLimiter(limits or [Limit("requests", "5/hour")], url, name=name)


def level(lim: RateLimiter, dimension: str) -> float:
    return next(b.level for b in lim.statistics().buckets if b.dimension == dimension)


def test_limiters_with_one_name_share_the_buckets(redis_url: str, name: str) -> None:
    a, b = limiter(redis_url, name), limiter(redis_url, name)
    assert a.shared and b.shared
    for _ in range(3):
        a.acquire(timeout=0)
    assert [b.try_acquire() is not None for _ in range(3)] == [True, True, False]
    assert a.try_acquire() is None
    assert limiter(redis_url, name + "-other").try_acquire() is not None


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_all_or_none_on_redis(redis_url: str, name: str, strategy: Any) -> None:
    lim = limiter(
        redis_url,
        name,
        Limit("requests", "10/hour", strategy),
        Limit("tokens", "100/hour", strategy),
    )
    lim.acquire({"requests": 1, "tokens": 90})
    for _ in range(3):
        assert lim.try_acquire({"requests": 1, "tokens": 20}) is None
    assert level(lim, "requests") == pytest.approx(1, abs=0.01)
    assert level(lim, "tokens") == pytest.approx(90, abs=0.01)  # fixed window: no leftovers
    assert lim.try_acquire({"requests": 1, "tokens": 10}) is not None


@pytest.mark.parametrize(
    "strategy", ["rolling-window", "token-bucket", "sliding-window-counter", "fixed-window"]
)
def test_refund_is_seen_by_another_limiter(redis_url: str, name: str, strategy: Any) -> None:
    a = limiter(redis_url, name, Limit("tokens", "1000/hour", strategy))
    b = limiter(redis_url, name, Limit("tokens", "1000/hour", strategy))
    permit = a.acquire({"tokens": 900})
    assert b.try_acquire({"tokens": 200}) is None
    assert permit.settle({"tokens": 100}) == {"tokens": -800}
    assert b.try_acquire({"tokens": 200}) is not None
    assert level(b, "tokens") == pytest.approx(300, abs=0.01)
    b.acquire({"tokens": 1}).settle({"tokens": 800})  # a charge passes the limit
    assert level(a, "tokens") == pytest.approx(1100, abs=0.01)
    assert a.try_acquire({"tokens": 1}) is None


def test_moving_window_refund_removes_exactly_its_entries(redis_url: str, name: str) -> None:
    lim = limiter(redis_url, name, Limit("requests", "10/hour", "moving-window"))
    for _ in range(50):  # the entries' timestamps must match as Redis stored them
        assert lim.acquire({"requests": 4}).settle({"requests": 1}) == {"requests": -3}
        lim.reset()
    kept = lim.acquire({"requests": 3})
    permit = lim.acquire({"requests": 4})
    assert permit.settle({"requests": 1}) == {"requests": -3}
    assert lim.statistics().refunds_dropped == {}
    assert level(lim, "requests") == 4
    kept.release()
    assert level(lim, "requests") == 1


def test_waits_for_the_shared_window(redis_url: str, name: str) -> None:
    lim = limiter(redis_url, name, Limit("requests", "2/second", "fixed-window"))
    lim.acquire({"requests": 2})
    started = time.monotonic()
    lim.acquire(timeout=5)  # real time: the server's window has to pass
    assert time.monotonic() - started < 2.5
    with pytest.raises(RateLimitTimeout):
        lim.acquire({"requests": 2}, timeout=0)


WORKER = textwrap.dedent(
    """
    import json, random, sys
    from otpy.resilience import Limit, RateLimiter
    url, name, seed, attempts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    lim = RateLimiter([Limit("requests", "40/hour"), Limit("tokens", "1000/hour"),
                       Limit("tokens", "600/hour", "fixed-window")], url, name=name)
    rng = random.Random(seed)
    got = []
    for _ in range(attempts):
        cost = {"requests": 1, "tokens": rng.randint(1, 60)}
        permit = lim.try_acquire(cost)
        if permit is None:
            continue
        if rng.random() < 0.3:  # used less than reserved: the rest goes back to everyone
            used = rng.randint(0, cost["tokens"])
            permit.settle({"tokens": used})
            cost["tokens"] = used
        got.append(cost)
    print(json.dumps(got))
    """
)


def test_processes_sharing_redis_never_exceed_any_bucket(
    redis_url: str, name: str, tmp_path: Path
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), redis_url, name, str(seed), "200"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in range(4)
    ]
    admitted: list[dict[str, int]] = []
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0
        admitted.extend(json.loads(out))
    requests = sum(c["requests"] for c in admitted)
    tokens = sum(c["tokens"] for c in admitted)
    assert requests <= 40 and tokens <= 600  # the binding limits, across processes
    # and the limits were actually reached (800 attempts for 40 requests / 600 tokens)
    assert requests == 40 or tokens > 600 - 60
    check = limiter(redis_url, name, Limit("tokens", "600/hour", "fixed-window"))
    assert level(check, "tokens") == tokens


def test_a_server_that_forgot_the_scripts_is_reloaded(redis_url: str, name: str) -> None:
    import redis

    lim = limiter(
        redis_url, name, Limit("requests", "5/hour"), Limit("tokens", "9/hour", "fixed-window")
    )
    permit = lim.acquire({"requests": 1, "tokens": 5})
    redis.Redis.from_url(redis_url).script_flush()  # as after a restart
    assert lim.try_acquire({"requests": 1, "tokens": 5}) is None
    redis.Redis.from_url(redis_url).script_flush()
    assert permit.settle({"tokens": 1}) == {"tokens": -4}
    assert lim.try_acquire({"requests": 1, "tokens": 5}) is not None
