"""The StateProvider compliance suite on RedisState, against a real redis-server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from redis_server import start_redis

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.state import RedisState, StateProvider
from otpy.testing.compliance import Reopen, StateFactory, StateProviderCompliance


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    yield from start_redis()


class TestRedisState(StateProviderCompliance):
    @pytest.fixture
    def state_factory(self, redis_url: str) -> StateFactory:
        prefix = f"test-{uuid.uuid4().hex}"  # each test its own key space on one server

        def make(session_id: str | None = None, clock: Clock | None = None) -> StateProvider:
            return RedisState(redis_url, session_id, clock=clock or SYSTEM_CLOCK, prefix=prefix)

        return make

    @pytest.fixture
    def state_reopen(self) -> Reopen:
        def reopen(state: StateProvider) -> StateProvider:
            assert isinstance(state, RedisState)
            return RedisState(state.url, state.session_id, prefix=state.prefix)

        return reopen
