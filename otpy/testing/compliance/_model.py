"""A hypothesis state machine that runs a StateProvider against a plain dict model.

Part of :mod:`otpy.testing.compliance` (needs hypothesis and pytest).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from otpy.errors import BatchUpdateError, InvalidValueError, VariableExistsError, VariableNotFound
from otpy.state import StateProvider

__all__ = ["run_model_check"]

_NAMES = st.sampled_from(["a", "b", "c", "d"])
_VALUES = st.integers(-3, 53)  # the variables take 0..50
_LOW, _HIGH = 0, 50


def _valid(value: int) -> bool:
    return _LOW <= value <= _HIGH


def run_model_check(
    make_state: Callable[[], StateProvider], max_examples: int = 50, steps: int = 40
) -> None:
    """Random register/set/batch/delete/re-import sequences on fresh stores from
    ``make_state()``; after every step the store must list exactly what the model holds."""

    class StoreAgainstModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.store = make_state()
            self.atomic = self.store.capabilities()["atomic_updates"]
            self.model: dict[str, list[Any]] = {}  # name -> [id, value, version]

        def key(self, name: str, by_id: bool) -> str:
            return str(self.model[name][0]) if by_id and name in self.model else name

        @rule(name=_NAMES, value=_VALUES)
        def register(self, name: str, value: int) -> None:
            if name in self.model:
                with pytest.raises(VariableExistsError):
                    self.store.register_variable(name, "integer", value)
            elif not _valid(value):
                with pytest.raises(InvalidValueError):
                    self.store.register_variable(
                        name, "integer", value, {"min": _LOW, "max": _HIGH}
                    )
            else:
                var_id = self.store.register_variable(
                    name, "integer", value, {"min": _LOW, "max": _HIGH}
                )
                self.model[name] = [var_id, value, 1]

        @rule(name=_NAMES, value=_VALUES, by_id=st.booleans())
        def set(self, name: str, value: int, by_id: bool) -> None:
            key = self.key(name, by_id)
            if name not in self.model:
                with pytest.raises(VariableNotFound):
                    self.store.set_variable(key, value)
            elif not _valid(value):
                with pytest.raises(InvalidValueError):
                    self.store.set_variable(key, value)
            else:
                assert self.store.set_variable(key, value).version == self.model[name][2] + 1
                self.model[name][1:] = [value, self.model[name][2] + 1]

        @rule(
            updates=st.dictionaries(
                st.sampled_from(["a", "b", "c", "d", "zz"]), _VALUES, max_size=4
            ),
            by_id=st.booleans(),
        )
        def batch(self, updates: dict[str, int], by_id: bool) -> None:
            keyed = {self.key(name, by_id): value for name, value in updates.items()}
            names = dict(zip(keyed, updates, strict=True))
            bad = {
                key
                for key, value in keyed.items()
                if names[key] not in self.model or not _valid(value)
            }
            good = [key for key in keyed if key not in bad]
            if bad:
                with pytest.raises(BatchUpdateError) as info:
                    self.store.update_variables(keyed)
                assert set(info.value.failures) == bad
                if self.atomic:
                    return
                assert sorted(info.value.applied) == sorted(good)
            else:
                result = self.store.update_variables(keyed)
                assert list(result) == list(keyed)
            for key in good:
                entry = self.model[names[key]]
                entry[1:] = [keyed[key], entry[2] + 1]

        @rule(name=_NAMES, by_id=st.booleans())
        def delete(self, name: str, by_id: bool) -> None:
            key = self.key(name, by_id)
            if name not in self.model:
                with pytest.raises(VariableNotFound):
                    self.store.delete_variable(key)
            else:
                self.store.delete_variable(key)
                del self.model[name]

        @rule()
        def reimport(self) -> None:
            self.store.import_state(json.loads(json.dumps(self.store.export_state())))

        @invariant()
        def lists_what_the_model_holds(self) -> None:
            listed = [(v.name, v.id, v.value, v.version) for v in self.store.list_variables()]
            assert listed == [(name, *entry) for name, entry in self.model.items()]
            found = self.store.get_variables(["a", "b", "c", "d"])
            assert {name: v.value for name, v in found.items()} == {
                name: entry[1] for name, entry in self.model.items()
            }

        def teardown(self) -> None:
            self.store.cleanup()

    run_state_machine_as_test(
        StoreAgainstModel,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
