"""The StateProvider compliance suite: fixtures, lifecycle, registration and look-up.

See :mod:`otpy.testing.compliance`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otpy.clock import Clock
from otpy.errors import (
    ConfigurationError,
    InvalidValueError,
    StateError,
    VariableExistsError,
    VariableNotFound,
)
from otpy.state import StateProvider, VariableChange
from otpy.testing import FakeClock
from otpy.testing.compliance._cases import (
    BAD_DEFINITIONS,
    NAN,
    Reopen,
    StateFactory,
    close_calls,
    names,
    populate,
    records,
)

__all__ = ["BasicsCases"]


class BasicsCases:
    """Fixtures, lifecycle, registration and look-up."""

    # -- fixtures --------------------------------------------------------------------------

    @pytest.fixture
    def state_reopen(self) -> Reopen | None:
        """Override for a persistent backend: open a new object on a store's data."""
        return None

    @pytest.fixture
    def make_state(self, state_factory: StateFactory) -> Iterator[StateFactory]:
        """``state_factory``, cleaning up every store it made after the test."""
        made: list[StateProvider] = []

        def make(session_id: str | None = None, clock: Clock | None = None) -> StateProvider:
            store = state_factory(session_id=session_id, clock=clock)
            made.append(store)
            return store

        yield make
        for store in made:
            store.cleanup()

    @pytest.fixture
    def state_clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def state(self, make_state: StateFactory, state_clock: FakeClock) -> StateProvider:
        return make_state(session_id="compliance", clock=state_clock)

    # -- lifecycle -------------------------------------------------------------------------

    def test_usable_at_once_and_init_is_idempotent(self, state: StateProvider) -> None:
        state.register_variable("x", "integer", 1)
        state.init()
        state.init()
        assert state.get_variable("x").value == 1

    def test_session_id_given_or_unique(self, make_state: StateFactory) -> None:
        assert make_state(session_id="job-7").session_id == "job-7"
        first, second = make_state().session_id, make_state().session_id
        assert isinstance(first, str) and first and first != second

    @pytest.mark.parametrize("call", close_calls(), ids=lambda c: c[0])
    def test_every_call_after_cleanup_says_closed(
        self, state: StateProvider, call: tuple[str, Callable[[StateProvider], object]]
    ) -> None:
        state.register_variable("x", "integer", 1)
        state.cleanup()
        state.cleanup()
        with pytest.raises(StateError, match="closed") as info:
            call[1](state)
        assert not isinstance(info.value, VariableNotFound)

    def test_context_manager(self, make_state: StateFactory) -> None:
        store = make_state()
        with store as entered:
            assert entered is store
            store.register_variable("x", "integer", 1)
        with pytest.raises(StateError, match="closed"):
            store.list_variables()

    def test_init_after_cleanup_keeps_data_iff_persistent(self, state: StateProvider) -> None:
        state.register_variable("x", "integer", 1)
        state.set_variable("x", 2)
        persistent = state.capabilities()["persistence"]
        before = records(state)
        state.cleanup()
        state.init()
        assert records(state) == (before if persistent else [])
        state.register_variable("y", "integer", 1)  # writable again

    def test_reopen_keeps_data_iff_persistent(
        self, state: StateProvider, state_reopen: Reopen | None, state_clock: FakeClock
    ) -> None:
        if state_reopen is None:
            assert not state.capabilities()["persistence"], "persistent, but no state_reopen"
            pytest.skip("the backend has no state_reopen")
        persistent = state.capabilities()["persistence"]
        populate(state, state_clock)
        before = records(state)
        state.cleanup()
        reopened = state_reopen(state)
        try:
            assert reopened.session_id == state.session_id
            assert records(reopened) == (before if persistent else [])
        finally:
            reopened.cleanup()

    def test_cleanup_drops_subscriptions(self, state: StateProvider) -> None:
        seen: list[VariableChange] = []
        state.subscribe("*", seen.append)
        state.cleanup()
        state.init()
        state.register_variable("x", "integer", 1)
        assert seen == []

    # -- register and get ------------------------------------------------------------------

    def test_register_then_get_by_name_and_id(
        self, state: StateProvider, state_clock: FakeClock
    ) -> None:
        var_id = state.register_variable(
            "temperature", "float", 0.7, {"min": 0.0, "max": 2.0}, {"owner": "job-1"}, "sampling"
        )
        by_name, by_id = state.get_variable("temperature"), state.get_variable(var_id)
        assert by_name == by_id
        assert (by_name.id, by_name.name, by_name.type, by_name.value) == (
            var_id,
            "temperature",
            "float",
            0.7,
        )
        assert by_name.constraints == {"min": 0.0, "max": 2.0}
        assert by_name.metadata == {"owner": "job-1"}
        assert by_name.description == "sampling"
        assert by_name.version == 1
        assert by_name.created_at == by_name.updated_at == state_clock.time()

    def test_ids_are_unique_and_never_names(self, state: StateProvider) -> None:
        ids = {state.register_variable(f"v{i}", "integer", i) for i in range(20)}
        assert len(ids) == 20
        for var_id in ids:
            assert isinstance(var_id, str)
            with pytest.raises(ConfigurationError):
                state.register_variable(var_id, "integer", 1)

    def test_duplicate_name_refused(self, state: StateProvider) -> None:
        state.register_variable("x", "integer", 1)
        with pytest.raises(VariableExistsError, match="'x'") as info:
            state.register_variable("x", "string", "a")
        assert info.value.name == "x"
        assert state.get_variable("x").type == "integer"
        assert len(state.list_variables()) == 1

    @pytest.mark.parametrize(
        "name", ["", "1abc", "a b", "var:x", "a:b", "é", "x" * 201, 5, None, "-x"]
    )
    def test_bad_names_refused(self, state: StateProvider, name: Any) -> None:
        with pytest.raises(ConfigurationError, match="name"):
            state.register_variable(name, "integer", 1)
        assert state.list_variables() == []

    def test_good_names_accepted(self, state: StateProvider) -> None:
        for name in ("_", "a", "Job_1.step-2/temperature", "x" * 200):
            var_id = state.register_variable(name, "boolean", True)
            assert state.get_variable(name).id == var_id

    @pytest.mark.parametrize(
        ("type_name", "value", "constraints", "words"),
        BAD_DEFINITIONS,
        ids=[f"{d[0]}-{d[2]}" for d in BAD_DEFINITIONS],
    )
    def test_bad_definitions_refused(
        self,
        state: StateProvider,
        type_name: str,
        value: Any,
        constraints: Any,
        words: list[str],
    ) -> None:
        with pytest.raises(ConfigurationError) as info:
            state.register_variable("v", type_name, value, constraints)
        message = str(info.value)
        assert "'v'" in message
        for word in words:
            assert word in message, (word, message)
        assert state.list_variables() == []

    @pytest.mark.parametrize(
        ("metadata", "description"),
        [("owner", ""), ({"a": {1, 2}}, ""), ({1: "x"}, ""), ({"a": NAN}, ""), (None, 5)],
    )
    def test_bad_metadata_or_description_refused(
        self, state: StateProvider, metadata: Any, description: Any
    ) -> None:
        with pytest.raises(ConfigurationError, match=r"metadata|description"):
            state.register_variable("v", "integer", 1, None, metadata, description)
        assert state.list_variables() == []

    def test_bad_initial_value_registers_nothing(self, state: StateProvider) -> None:
        with pytest.raises(InvalidValueError, match=r"max 2\.0"):
            state.register_variable("t", "float", 3.0, {"max": 2.0})
        assert state.list_variables() == []

    @pytest.mark.parametrize("operation", ["get", "set", "delete"])
    def test_missing_variable(self, state: StateProvider, operation: str) -> None:
        calls: dict[str, Callable[[], object]] = {
            "get": lambda: state.get_variable("nope"),
            "set": lambda: state.set_variable("nope", 1),
            "delete": lambda: state.delete_variable("nope"),
        }
        with pytest.raises(VariableNotFound, match="'nope'") as info:
            calls[operation]()
        assert isinstance(info.value, LookupError)
        assert info.value.identifier == "nope"

    def test_list_in_registration_order(self, state: StateProvider) -> None:
        for name in ("c", "a", "b", "d"):
            state.register_variable(name, "integer", 0)
        state.set_variable("c", 5)
        state.delete_variable("a")
        state.register_variable("a", "integer", 0)
        assert names(state) == ["c", "b", "d", "a"]
