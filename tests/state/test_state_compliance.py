"""The StateProvider compliance suite, run against every backend otpy ships."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.state import LocalState, SQLiteState, StateProvider
from otpy.testing.compliance import Reopen, StateFactory, StateProviderCompliance

BACKENDS = ["LocalState", "SQLiteState", "SQLiteState-memory"]


class TestEveryBackend(StateProviderCompliance):
    @pytest.fixture(params=BACKENDS)
    def backend(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def state_factory(self, backend: str, tmp_path: Path) -> StateFactory:
        files = (tmp_path / f"state-{n}.db" for n in itertools.count())

        def make(session_id: str | None = None, clock: Clock | None = None) -> StateProvider:
            clock = clock or SYSTEM_CLOCK
            if backend == "LocalState":
                return LocalState(session_id, clock=clock)
            path = ":memory:" if backend.endswith("memory") else next(files)
            return SQLiteState(path, session_id, clock=clock)

        return make

    @pytest.fixture
    def state_reopen(self, backend: str) -> Reopen | None:
        if backend == "LocalState":
            return None

        def reopen(state: StateProvider) -> StateProvider:
            assert isinstance(state, SQLiteState)
            return SQLiteState(state.path, state.session_id)

        return reopen
