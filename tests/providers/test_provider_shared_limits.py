"""A provider's limits configured once and shared: ``rps`` (a per-second bucket) and,
with ``storage: redis://...``, one breaker for every process that builds the provider
from the same config (pybreaker's Redis storage), as Ray workers do."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from redis_server import start_redis

from otpy.errors import CircuitOpenError
from otpy.providers import CompletionRequest, ProviderLimits, SimulatedProvider, make_entry
from otpy.resilience import Limit, shared_breaker_storage
from otpy.testing import FakeClock


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield from start_redis()


def test_rps_adds_a_per_second_bucket_beside_rpm(clock: FakeClock) -> None:
    limits = ProviderLimits(rpm=600, rps=2, timeout=None)
    entry = make_entry("p", SimulatedProvider(), limits=limits, clock=clock)
    assert entry.limiter is not None
    assert set(entry.limiter.limits) == {
        Limit("requests", "600/minute", "rolling-window"),
        Limit("requests", "2/second", "rolling-window"),
    }
    request = CompletionRequest(prompt="hi")
    entry.complete(request)
    entry.complete(request)
    assert entry.limiter.try_acquire() is None  # the third request of this second waits
    clock.advance(1.0)
    assert entry.limiter.try_acquire() is not None


def test_providers_built_from_one_redis_config_share_their_breaker(redis_url: str) -> None:
    """Two entries made from the same config (two processes, in effect): the breaker one
    of them opens refuses the other's calls and takes it out of selection."""
    name = f"shared-{uuid.uuid4().hex[:8]}"
    limits = ProviderLimits(rpm=1000, storage=redis_url, fail_max=1, reset_timeout=60)
    here, there = (
        make_entry(name, SimulatedProvider(), limits=limits, clock=FakeClock()) for _ in range(2)
    )
    assert here.breaker.shared and here.breaker is not there.breaker
    assert there.refusal() is None
    here.breaker.open()
    assert there.breaker.state == "open"
    assert there.refusal() is not None and "open" in (there.refusal() or "")
    with pytest.raises(CircuitOpenError):
        there.complete(CompletionRequest(prompt="hi"))
    there.breaker.close()
    assert here.breaker.state == "closed" and here.refusal() is None


def test_a_memory_storage_keeps_the_breaker_in_the_process() -> None:
    assert shared_breaker_storage("memory://", "p") is None
    entry = make_entry("p", SimulatedProvider(), limits=ProviderLimits(), clock=FakeClock())
    assert not entry.breaker.shared


def test_a_breaker_made_while_redis_is_down_starts_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = shared_breaker_storage("redis://127.0.0.1:1", "down")
    assert storage is not None and storage.state == "closed"  # pybreaker's fallback
    assert any("not initialized yet" in r.getMessage() for r in caplog.records)
