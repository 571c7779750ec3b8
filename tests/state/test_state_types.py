"""The building blocks of otpy.state, tested directly: variable types and constraints,
names, JSON checking, Variable records, the export format and change delivery."""

from __future__ import annotations

import copy
import enum
import json
import pickle
import threading
from dataclasses import FrozenInstanceError
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import otpy.state
from otpy.errors import ConfigurationError, InvalidValueError, StateError
from otpy.state import EXPORT_FORMAT, LocalState, Variable, VariableChange
from otpy.state._export import parse_export
from otpy.state._records import changes_between, new_record, next_version
from otpy.state._subscriptions import Subscriptions
from otpy.state._types import (
    MAX_DEPTH,
    TYPES,
    NotJSON,
    check_name,
    copy_value,
    define,
    is_valid_name,
    json_copy,
    validate,
)
from otpy.state._variable import FrozenDict, FrozenList, freeze

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def test_public_surface() -> None:
    assert set(otpy.state.__all__) == {
        "EXPORT_FORMAT",
        "LocalState",
        "RedisState",
        "SQLiteState",
        "StateProvider",
        "Variable",
        "VariableChange",
    }
    assert EXPORT_FORMAT == "otpy.state/1"


def test_the_type_table() -> None:
    assert {name: vtype.allowed for name, vtype in TYPES.items()} == {
        "boolean": (),
        "choice": ("choices",),
        "float": ("min", "max", "choices"),
        "integer": ("min", "max", "choices"),
        "json": (),
        "list": ("min_length", "max_length", "item_type"),
        "string": ("min_length", "max_length", "pattern", "choices"),
    }
    assert {name for name, vtype in TYPES.items() if vtype.copies} == {"list", "json"}


@pytest.mark.parametrize(
    ("type_name", "constraints", "value", "message"),
    [
        ("float", {"max": 2.0}, 3.5, "variable 'temperature': value 3.5 breaks max 2.0"),
        ("float", {"min": 0}, -1, "variable 'temperature': value -1 breaks min 0.0"),
        ("float", {}, float("nan"), "variable 'temperature': value nan breaks type float "
         "(not a finite number)"),
        ("integer", {}, 2.0, "variable 'temperature': value 2.0 breaks type integer"),
        ("string", {"pattern": "^[a-z]+$"}, "A", "variable 'temperature': value 'A' breaks "
         "pattern ^[a-z]+$"),
        ("string", {"choices": ["a", "b"]}, "c", "variable 'temperature': value 'c' breaks "
         "choices ['a', 'b']"),
        ("string", {"max_length": 5}, "abcdef", "variable 'temperature': value 'abcdef' breaks "
         "max_length 5 (length 6)"),
        ("list", {"item_type": "float"}, [1.0, "x"], "variable 'temperature': value "
         "[1.0, 'x'] breaks item_type float (item [1] 'x' is not of type float)"),
        ("json", {}, {"a": [1, {2: 3}]}, "variable 'temperature': value {'a': [1, {2: 3}]} "
         "breaks type json (['a'][1]: key 2 is not a str)"),
        ("choice", {"choices": [1, 2]}, True, "variable 'temperature': value True breaks "
         "choices [1, 2]"),
    ],
)  # fmt: skip
def test_error_messages(type_name: str, constraints: Any, value: Any, message: str) -> None:
    defined = define("temperature", type_name, constraints)
    with pytest.raises(InvalidValueError) as info:
        validate("temperature", type_name, value, defined)
    assert str(info.value) == message
    assert info.value.value is value


def test_a_long_value_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidValueError) as info:
        validate("s", "string", "x" * 500, define("s", "string", {"max_length": 3}))
    assert "..." in str(info.value) and len(str(info.value)) < 200


@pytest.mark.parametrize(
    ("type_name", "constraints", "message"),
    [
        ("flot", None, "variable 'v': unknown type 'flot' in field 'type'; allowed: boolean, "
         "choice, float, integer, json, list, string"),
        ("float", {"pattern": "x", "size": 1}, "variable 'v': constraint(s) 'pattern', 'size' "
         "not allowed for type 'float'; allowed: min, max, choices"),
        ("boolean", {"choices": [True]}, "variable 'v': constraint(s) 'choices' not allowed "
         "for type 'boolean'; allowed: none"),
        ("integer", {"min": 5, "max": 1}, "variable 'v': constraint 'min' (5) is greater than "
         "max (1)"),
        ("list", {"item_type": "json"}, "variable 'v': constraint 'item_type' must be one of "
         "boolean, float, integer, string, got 'json'"),
        ("choice", {}, "variable 'v': constraint 'choices' is required for type 'choice'"),
        ("float", {"choices": [1.0, 9.0], "max": 5.0}, "variable 'v': constraint 'choices' "
         "holds 9.0, which breaks max 5.0"),
    ],
)  # fmt: skip
def test_definition_errors(type_name: Any, constraints: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        define("v", type_name, constraints)
    assert str(info.value) == message


def test_definitions_are_normalised() -> None:
    assert define("v", "float", {"min": 0, "choices": (1, 2.5)}) == {
        "min": 0.0,
        "choices": [1.0, 2.5],
    }
    assert define("v", "string", None) == {}
    assert type(define("v", "float", {"min": 0})["min"]) is float
    assert json.dumps(define("v", "list", {"min_length": 0, "item_type": "string"}))


def test_names() -> None:
    for good in ("a", "_", "A9_.-/x", "x" * 200):
        assert is_valid_name(good) and check_name(good) == good
    for bad in ("", "9a", "a b", "a:b", "var:0", "x" * 201, "ä", None, 3, ".a"):
        assert not is_valid_name(bad)
        with pytest.raises(ConfigurationError, match="field 'name'"):
            check_name(bad)


class Colour(enum.IntEnum):
    RED = 1


class Word(enum.StrEnum):
    HI = "hi"


def test_json_copy_normalises_and_refuses() -> None:
    source: dict[str, Any] = {"a": (1, [2, {"b": None}]), "c": Colour.RED, "w": Word.HI, "t": True}
    copied = json_copy(source)
    assert copied == {"a": [1, [2, {"b": None}]], "c": 1, "w": "hi", "t": True}
    assert type(copied["c"]) is int and type(copied["w"]) is str and copied["t"] is True
    assert copied["a"][1] is not source["a"][1]
    nested: list[Any] = []
    nested.append(nested)
    deep: Any = 0
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    for bad, where in (
        ({"x": [1, float("inf")]}, "['x'][1]: inf is not a finite number"),
        ({1: 2}, "key 1 is not a str"),
        ([{1, 2}], "[0]: a set is not JSON"),
        (nested, "contains itself"),
        (deep, f"nested deeper than {MAX_DEPTH}"),
        (b"bytes", "a bytes is not JSON"),
    ):
        with pytest.raises(NotJSON, match=where.replace("[", r"\[").replace("]", r"\]")):
            json_copy(bad)


@given(JSON)
def test_any_json_value_is_a_json_variable(value: Any) -> None:
    stored = validate("doc", "json", value, {})
    assert stored == value
    assert json.loads(json.dumps(stored)) == stored
    copied = copy_value("json", stored)
    assert copied == stored
    if isinstance(stored, list | dict):
        assert copied is not stored


@given(st.lists(st.integers(-5, 5), max_size=6))
def test_list_constraints_against_a_direct_check(items: list[int]) -> None:
    constraints = define("l", "list", {"min_length": 1, "max_length": 4, "item_type": "integer"})
    if 1 <= len(items) <= 4:
        assert validate("l", "list", tuple(items), constraints) == items
    else:
        with pytest.raises(InvalidValueError, match="_length"):
            validate("l", "list", items, constraints)


def test_scalars_are_not_copied() -> None:
    for type_name, value in (("float", 1.5), ("string", "s"), ("boolean", True)):
        assert copy_value(type_name, value) is value


# -- records ---------------------------------------------------------------------------------


def make_variable(**overrides: Any) -> Variable:
    record = new_record("x", "list", [1], {"max_length": 3}, {"tags": ["a"]}, "d", 10.0)
    return Variable(**{**record.to_dict(), **overrides})


def test_variable_is_frozen_with_read_only_dicts() -> None:
    variable = make_variable()
    with pytest.raises(FrozenInstanceError):
        variable.value = 2  # type: ignore[misc]
    for change in (
        lambda: variable.metadata.update(a=1),
        lambda: variable.metadata.__setitem__("a", 1),
        lambda: variable.metadata["tags"].append("b"),
        lambda: variable.metadata.pop("tags"),
        lambda: variable.constraints.clear(),
    ):
        with pytest.raises(TypeError, match="read-only"):
            change()
    assert variable.metadata == {"tags": ["a"]} and variable.constraints == {"max_length": 3}
    merged = variable.metadata | {"b": 1}
    assert type(merged) is dict and merged == {"tags": ["a"], "b": 1}


def test_frozen_containers_behave_as_plain_data() -> None:
    frozen = freeze({"a": [1, {"b": 2}]})
    assert isinstance(frozen, FrozenDict) and isinstance(frozen["a"], FrozenList)
    assert frozen == {"a": [1, {"b": 2}]}
    assert json.loads(json.dumps(frozen)) == frozen
    assert pickle.loads(pickle.dumps(frozen)) == frozen
    assert copy.deepcopy(frozen) is frozen and copy.copy(frozen) is frozen
    assert freeze(frozen) is frozen
    with pytest.raises(TypeError):
        frozen["a"] += [3]


def test_to_dict_and_from_dict_round_trip() -> None:
    variable = make_variable()
    data = variable.to_dict()
    assert type(data["metadata"]) is dict and type(data["metadata"]["tags"]) is list
    assert json.loads(json.dumps(data)) == data
    again = Variable.from_dict(json.loads(json.dumps(data)))
    assert again == variable and again.to_dict() == data


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("version", 0, "field 'version'"),
        ("version", True, "field 'version'"),
        ("created_at", "yesterday", "field 'created_at'"),
        ("description", None, "field 'description'"),
        ("id", "looks_like_a_name", "must not look like a name"),
        ("id", "", "field 'id'"),
        ("name", "bad name", "field 'name'"),
        ("value", [1, 2, 3, 4], "max_length 3"),
        ("constraints", {"min": 1}, "'min' not allowed"),
        ("metadata", {"a": {1: 2}}, "field 'metadata' is not JSON"),
        ("metadata", "m", "field 'metadata'"),
        ("type", "tuple", "unknown type 'tuple'"),
    ],
)
def test_from_dict_names_the_bad_field(field: str, value: Any, words: str) -> None:
    data = make_variable().to_dict()
    data[field] = value
    with pytest.raises(StateError, match=words.replace("(", r"\(")):
        Variable.from_dict(data)
    del data[field]
    with pytest.raises(StateError, match="missing field"):
        Variable.from_dict(data)


def test_next_version_merges_and_checks() -> None:
    old = make_variable()
    new = next_version(old, (1, 2), {"by": "me"}, 20.0)
    assert (new.value, new.version, new.created_at, new.updated_at) == ([1, 2], 2, 10.0, 20.0)
    assert new.metadata == {"tags": ["a"], "by": "me"}
    with pytest.raises(InvalidValueError):
        next_version(old, [1, 2, 3, 4], None, 30.0)


def test_changes_between_records() -> None:
    kept, gone = make_variable(), make_variable(id="var:gone", name="gone")
    renamed = make_variable(id="var:gone", name="renamed")
    changed = next_version(kept, [9], None, 11.0)
    changes = changes_between([kept, gone], [changed, renamed])
    assert [(c.kind, c.name, c.old_value, c.new_value) for c in changes] == [
        ("deleted", "gone", [1], None),
        ("updated", "x", [1], [9]),
        ("registered", "renamed", None, [1]),
    ]
    assert changes_between([kept], [kept]) == []


def test_parse_export_accepts_what_backends_write() -> None:
    with LocalState("src") as state:
        state.register_variable("a", "integer", 1)
        exported = state.export_state()
    parsed = parse_export(json.loads(json.dumps(exported)))
    assert parsed.session_id == "src"
    assert [r.name for r in parsed.records] == ["a"]
    assert parsed.metadata["backend"] == "LocalState"


# -- change delivery -------------------------------------------------------------------------


def change(n: int) -> VariableChange:
    return VariableChange("updated", f"v{n % 3}", f"var:{n}", n - 1, n, n, {})


@pytest.mark.parametrize("round_", range(20))
def test_concurrent_writers_deliver_every_change_once_in_commit_order(round_: int) -> None:
    """Writers queue under a store lock and then dispatch; whoever holds the dispatch lock
    drains. No change may be stranded in the queue when every writer has returned."""
    subscriptions = Subscriptions()
    delivered: list[int] = []
    subscriptions.subscribe("*", lambda c: delivered.append(c.new_value))
    store_lock = threading.Lock()
    counter = iter(range(10**9))
    threads, writes = 8, 100
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait(10)
        for _ in range(writes):
            with store_lock:
                subscriptions.enqueue([change(next(counter))])
            subscriptions.dispatch()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert delivered == list(range(threads * writes))


def test_a_change_queued_just_as_the_drainer_lets_go_is_still_delivered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race that the re-check closes: another writer queues a change and finds the
    dispatch lock taken, just before the draining thread releases it."""
    subscriptions = Subscriptions()
    seen: list[int] = []
    subscriptions.subscribe("*", lambda c: seen.append(c.new_value))
    real = subscriptions._dispatching
    armed = [True]

    class LateWriterLock:
        def acquire(self, blocking: bool = True) -> bool:
            return real.acquire(blocking)

        def release(self) -> None:
            if armed.pop() if armed else False:
                subscriptions.enqueue([change(2)])
                subscriptions.dispatch()  # the lock is still held: returns at once
                assert seen == [1]
            real.release()

    monkeypatch.setattr(subscriptions, "_dispatching", LateWriterLock())
    subscriptions.enqueue([change(1)])
    subscriptions.dispatch()
    assert seen == [1, 2]


def test_a_callback_that_queues_more_is_drained_after_it() -> None:
    subscriptions = Subscriptions()
    seen: list[int] = []

    def echo(c: VariableChange) -> None:
        seen.append(c.new_value)
        if c.new_value < 3:
            subscriptions.enqueue([change(c.new_value + 10)])
            subscriptions.dispatch()  # re-entrant: returns at once, the outer drain delivers
            seen.append(-c.new_value)

    subscriptions.subscribe("*", echo)
    subscriptions.enqueue([change(1), change(2)])
    subscriptions.dispatch()
    assert seen == [1, -1, 2, -2, 11, 12]


def test_unsubscribing_inside_a_drain_stops_delivery_at_once() -> None:
    subscriptions = Subscriptions()
    seen: list[str] = []
    ids: list[str] = []

    def first(c: VariableChange) -> None:
        seen.append("first")
        subscriptions.unsubscribe(ids[1])

    ids.append(subscriptions.subscribe("*", first))
    ids.append(subscriptions.subscribe("*", lambda c: seen.append("second")))
    subscriptions.enqueue([change(1), change(2)])
    subscriptions.dispatch()
    assert seen == ["first", "first"]


def test_subscribe_checks_its_arguments() -> None:
    subscriptions = Subscriptions()
    with pytest.raises(TypeError, match="pattern"):
        subscriptions.subscribe(3, print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        subscriptions.subscribe("*", "print")  # type: ignore[arg-type]
