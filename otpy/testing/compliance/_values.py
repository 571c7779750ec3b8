"""The StateProvider compliance suite: types and constraints, versions, metadata, batches, delete.

See :mod:`otpy.testing.compliance`.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest

from otpy.errors import (
    BatchUpdateError,
    ConfigurationError,
    InvalidValueError,
    VariableNotFound,
)
from otpy.state import StateProvider
from otpy.testing import FakeClock
from otpy.testing.compliance._cases import (
    BAD,
    GOOD,
    records,
)

__all__ = ["ValuesCases"]


class ValuesCases:
    """Types and constraints, versions, metadata, batches, delete."""

    # -- types and constraints -------------------------------------------------------------

    @pytest.mark.parametrize(("type_name", "constraints", "given", "stored"), GOOD)
    def test_good_value_is_stored_normalised(
        self, state: StateProvider, type_name: str, constraints: Any, given: Any, stored: Any
    ) -> None:
        state.register_variable("v", type_name, given, constraints)
        for variable in (state.get_variable("v"), state.set_variable("v", given)):
            assert variable.value == stored
            assert type(variable.value) is type(stored)
        assert json.loads(json.dumps(state.get_variable("v").value)) == stored

    @pytest.mark.parametrize(("type_name", "constraints", "good", "bad", "rule"), BAD)
    def test_bad_value_refused_naming_variable_value_rule(
        self, state: StateProvider, type_name: str, constraints: Any, good: Any, bad: Any, rule: str
    ) -> None:
        with pytest.raises(InvalidValueError) as at_registration:
            state.register_variable("v", type_name, bad, constraints)
        state.register_variable("v", type_name, good, constraints)
        before = state.get_variable("v")
        with pytest.raises(InvalidValueError) as info:
            state.set_variable("v", bad)
        for exc in (at_registration.value, info.value):
            assert isinstance(exc, ValueError)
            assert (exc.variable, exc.rule) == ("v", rule)
            assert exc.value is bad
            message = str(exc)
            assert "'v'" in message and rule in message
            shown = repr(bad)
            assert (shown if len(shown) <= 80 else shown[:77]) in message
        assert state.get_variable("v") == before

    def test_list_and_json_values_are_copied(self, state: StateProvider) -> None:
        given = [1, 2]
        state.register_variable("items", "list", given)
        state.register_variable("doc", "json", {"a": [1]})
        given.append(3)
        got = state.get_variable("items").value
        got.append(4)
        doc = state.get_variable("doc").value
        doc["a"].append(2)
        doc["b"] = 1
        returned = state.set_variable("items", got)
        returned.value.clear()
        assert state.get_variable("items").value == [1, 2, 4]
        assert state.get_variable("doc").value == {"a": [1]}
        for listed in state.list_variables():
            listed.value.clear()
        assert state.get_variable("items").value == [1, 2, 4]

    def test_returned_metadata_and_constraints_do_not_change_the_store(
        self, state: StateProvider
    ) -> None:
        state.register_variable(
            "m", "string", "a", {"choices": ["a", "b"]}, {"tags": ["x"], "d": {"k": 1}}
        )
        got = state.get_variable("m")
        for attempt in (
            lambda: got.metadata.__setitem__("owner", "me"),
            lambda: got.metadata["tags"].append("y"),
            lambda: got.metadata["d"].clear(),
            lambda: got.constraints["choices"].append("c"),
        ):
            with contextlib.suppress(TypeError):  # read-only records are fine too
                attempt()
        fresh = state.get_variable("m")
        assert fresh.metadata == {"tags": ["x"], "d": {"k": 1}}
        assert fresh.constraints == {"choices": ["a", "b"]}
        with pytest.raises(InvalidValueError):
            state.set_variable("m", "c")

    # -- versions, timestamps, metadata ----------------------------------------------------

    def test_versions_and_timestamps(self, state: StateProvider, state_clock: FakeClock) -> None:
        registered_at = state_clock.time()
        state.register_variable("x", "integer", 0)
        state.register_variable("y", "integer", 0)
        state_clock.advance(5)
        assert state.set_variable("x", 1).version == 2
        state_clock.advance(5)
        batch = state.update_variables({"x": 2, "y": 2})
        assert (batch["x"].version, batch["y"].version) == (3, 2)
        state_clock.advance(5)
        with pytest.raises(InvalidValueError):
            state.set_variable("x", "bad")
        x = state.get_variable("x")
        assert (x.version, x.created_at, x.updated_at) == (3, registered_at, registered_at + 10)
        assert state.set_variable("x", 2).version == 4  # the same value is still a change

    def test_update_metadata_is_merged(self, state: StateProvider) -> None:
        state.register_variable("x", "integer", 0, metadata={"owner": "a", "keep": 1})
        assert state.set_variable("x", 1, metadata={"by": "opt"}).metadata == {
            "owner": "a",
            "keep": 1,
            "by": "opt",
        }
        state.update_variables({"x": 2}, metadata={"owner": "b"})
        assert state.set_variable("x", 3).metadata == {"owner": "b", "keep": 1, "by": "opt"}
        with pytest.raises(ConfigurationError, match="metadata"):
            state.set_variable("x", 4, metadata={"bad": object()})
        assert state.get_variable("x").version == 4

    # -- batches ---------------------------------------------------------------------------

    def test_get_variables_keyed_as_given_missing_skipped(self, state: StateProvider) -> None:
        a_id = state.register_variable("a", "integer", 1)
        state.register_variable("b", "integer", 2)
        got = state.get_variables([a_id, "b", "nope", "var:nope"])
        assert list(got) == [a_id, "b"]
        assert (got[a_id].name, got["b"].value) == ("a", 2)
        assert state.get_variables([]) == {}

    def test_update_variables_applies_all_keyed_as_given(self, state: StateProvider) -> None:
        a_id = state.register_variable("a", "integer", 1)
        state.register_variable("b", "list", [])
        result = state.update_variables({a_id: 5, "b": (1, 2)}, metadata={"round": 1})
        assert list(result) == [a_id, "b"]
        assert (result[a_id].value, result["b"].value) == (5, [1, 2])
        assert [v.version for v in state.list_variables()] == [2, 2]
        assert state.get_variable("b").metadata == {"round": 1}
        assert state.update_variables({}) == {}

    def test_failed_batch_names_every_failure(self, state: StateProvider) -> None:
        state.register_variable("good", "integer", 1)
        state.register_variable("bad", "integer", 1, {"max": 5})
        state.register_variable("other", "string", "a")
        before = records(state)
        with pytest.raises(BatchUpdateError) as info:
            state.update_variables({"good": 2, "bad": 6, "missing": 1, "other": 3})
        error = info.value
        assert set(error.failures) == {"bad", "missing", "other"}
        assert isinstance(error.failures["bad"], InvalidValueError)
        assert isinstance(error.failures["other"], InvalidValueError)
        assert isinstance(error.failures["missing"], VariableNotFound)
        for words in ("bad", "missing", "other", "max 5", "type string"):
            assert words in str(error)
        if state.capabilities()["atomic_updates"]:
            assert error.applied == []
            assert records(state) == before
        else:
            assert error.applied == ["good"]
            assert state.get_variable("good").value == 2
            assert state.get_variable("bad").value == 1

    def test_same_variable_twice_in_one_batch(self, state: StateProvider) -> None:
        x_id = state.register_variable("x", "integer", 1)
        with pytest.raises(BatchUpdateError, match="twice") as info:
            state.update_variables({"x": 2, x_id: 3})
        assert list(info.value.failures) == [x_id]
        if state.capabilities()["atomic_updates"]:
            assert state.get_variable("x").version == 1

    # -- delete ----------------------------------------------------------------------------

    def test_delete(self, state: StateProvider) -> None:
        x_id = state.register_variable("x", "integer", 1)
        y_id = state.register_variable("y", "integer", 1)
        state.delete_variable("x")
        state.delete_variable(y_id)
        for identifier in ("x", x_id, "y", y_id):
            with pytest.raises(VariableNotFound):
                state.get_variable(identifier)
        assert state.list_variables() == []
        new_id = state.register_variable("x", "string", "again")
        assert new_id != x_id
        assert state.get_variable("x").version == 1
