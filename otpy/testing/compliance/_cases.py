"""The data and helpers of the compliance suite (:mod:`otpy.testing.compliance`)."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest

from otpy.clock import Clock
from otpy.state import LocalState, StateProvider
from otpy.testing import FakeClock

__all__ = [
    "BAD",
    "BAD_DEFINITIONS",
    "GOOD",
    "NAN",
    "Reopen",
    "StateFactory",
    "TYPE_CASES",
    "close_calls",
    "malformed_cases",
    "names",
    "populate",
    "records",
    "run_threads",
]

NAN, INF = float("nan"), float("inf")

# (type, constraints, [(given, stored), ...], [(bad value, rule), ...])
TYPE_CASES: list[tuple[str, dict[str, Any], list[tuple[Any, Any]], list[tuple[Any, str]]]] = [
    ("float", {}, [(0.5, 0.5), (2, 2.0), (-1e300, -1e300)],
     [("1", "type float"), (True, "type float"), (None, "type float"), (NAN, "type float"),
      (INF, "type float")]),
    ("float", {"min": 0.0, "max": 2.0}, [(0.0, 0.0), (2, 2.0), (1.5, 1.5)],
     [(3.5, "max 2.0"), (-0.1, "min 0.0")]),
    ("float", {"choices": [0.5, 1]}, [(1, 1.0), (0.5, 0.5)], [(0.7, "choices [0.5, 1.0]")]),
    ("integer", {}, [(3, 3), (-(2**62), -(2**62)), (0, 0)],
     [(2.0, "type integer"), (True, "type integer"), ("3", "type integer")]),
    ("integer", {"min": 1, "max": 10}, [(1, 1), (10, 10)], [(0, "min 1"), (11, "max 10")]),
    ("integer", {"choices": [1, 2]}, [(2, 2)], [(3, "choices [1, 2]")]),
    ("string", {}, [("", ""), ("héllo\n", "héllo\n")],
     [(1, "type string"), (None, "type string"), (b"x", "type string")]),
    ("string", {"min_length": 1, "max_length": 5}, [("a", "a"), ("abcde", "abcde")],
     [("", "min_length 1"), ("abcdef", "max_length 5")]),
    ("string", {"pattern": "^[a-z]+$"}, [("abc", "abc")],
     [("Abc", "pattern ^[a-z]+$"), ("abc\n", "pattern ^[a-z]+$")]),
    ("string", {"choices": ["a", "b"]}, [("b", "b")], [("c", "choices ['a', 'b']")]),
    ("boolean", {}, [(True, True), (False, False)],
     [(1, "type boolean"), ("true", "type boolean"), (None, "type boolean")]),
    ("choice", {"choices": ["fast", 2, None, True]},
     [("fast", "fast"), (2, 2), (None, None), (True, True)],
     [("slow", "choices ['fast', 2, None, True]"), (1, "choices ['fast', 2, None, True]"),
      ([], "type choice")]),
    ("list", {}, [([1, "a", None], [1, "a", None]), ((1, 2), [1, 2]), ([], [])],
     [("ab", "type list"), ({"a": 1}, "type list"), ([NAN], "type list"),
      ([{1: 2}], "type list")]),
    ("list", {"min_length": 1, "max_length": 2, "item_type": "integer"},
     [([1], [1]), ((1, 2), [1, 2])],
     [([], "min_length 1"), ([1, 2, 3], "max_length 2"), ([1, "x"], "item_type integer"),
      ([1, 2.0], "item_type integer")]),
    ("json", {}, [({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}), ("s", "s"), (None, None),
                  ((1, (2,)), [1, [2]]), (1.5, 1.5)],
     [({1: "a"}, "type json"), ({"a": INF}, "type json"), ({"a": {1, 2}}, "type json"),
      (object(), "type json")]),
]  # fmt: skip

GOOD = [
    pytest.param(t, c, given, stored, id=f"{t}{sorted(c)}-{given!r}")
    for t, c, goods, _ in TYPE_CASES
    for given, stored in goods
]


def _shown(value: Any) -> str:
    """A test id for ``value`` that is the same in every process (no memory addresses)."""
    return f"<{type(value).__name__}>" if type(value) is object else repr(value)


BAD = [
    pytest.param(t, c, goods[0][0], bad, rule, id=f"{t}{sorted(c)}-{_shown(bad)}")
    for t, c, goods, bads in TYPE_CASES
    for bad, rule in bads
]

BAD_DEFINITIONS: list[tuple[str, Any, Any, list[str]]] = [
    # (type, value, constraints, words the ConfigurationError names)
    ("flot", 1.0, None, ["'flot'", "type", "float", "integer", "json"]),
    ("float", 1.0, {"pattern": "x"}, ["'pattern'", "float", "min", "max", "choices"]),
    ("float", 1.0, {"min": 2.0, "max": 1.0}, ["'min'", "max"]),
    ("float", 1.0, {"min": "low"}, ["'min'", "'low'"]),
    ("integer", 1, {"max": 1.5}, ["'max'", "1.5"]),
    ("string", "a", {"pattern": "(["}, ["'pattern'", "regular expression"]),
    ("string", "a", {"min_length": -1}, ["'min_length'"]),
    ("string", "a", {"choices": ["a", 1]}, ["'choices'", "type string"]),
    ("choice", "a", None, ["'choices'", "required"]),
    ("choice", "a", {"choices": []}, ["'choices'", "non-empty"]),
    ("choice", "a", {"choices": [[1]]}, ["'choices'"]),
    ("list", [], {"choices": [[1]]}, ["'choices'", "min_length", "item_type"]),
    ("list", [], {"item_type": "list"}, ["'item_type'", "boolean", "string"]),
    ("boolean", True, {"min": 0}, ["'min'", "none"]),
    ("float", 1.0, {"choices": [5.0], "max": 2.0}, ["'choices'", "max 2.0"]),
    ("float", 1.0, "min=0", ["'constraints'", "dict"]),
]


@contextlib.contextmanager
def frequent_thread_switches() -> Iterator[None]:
    """Let the interpreter switch threads every microsecond, so races show up."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def run_threads(count: int, work: Callable[[int], None], timeout: float = 30.0) -> None:
    """Run ``work(i)`` in ``count`` threads switching often; re-raise the first error."""
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), name=f"state-{i}") for i in range(count)]
    with frequent_thread_switches():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a writer thread hung"
    if errors:
        raise errors[0]


def records(state: StateProvider) -> list[dict[str, Any]]:
    return [variable.to_dict() for variable in state.list_variables()]


def populate(state: StateProvider, clock: FakeClock) -> None:
    """One variable of every type, some changed, with metadata."""
    state.register_variable(
        "temperature", "float", 0.7, {"min": 0.0, "max": 2.0}, {"owner": "job-1"}, "sampling"
    )
    state.register_variable("steps", "integer", 3, {"min": 1})
    state.register_variable("prompt", "string", "Answer.", {"max_length": 50})
    state.register_variable("verbose", "boolean", False)
    state.register_variable("mode", "choice", "fast", {"choices": ["fast", "slow", 3]})
    state.register_variable("tags", "list", ["a"], {"item_type": "string"})
    state.register_variable("config", "json", {"layers": [1, 2], "name": None})
    clock.advance(1.5)
    state.set_variable("temperature", 1.2, metadata={"by": "optimizer"})
    state.update_variables({"steps": 4, "tags": ["a", "b"], "config": {"x": [1.5]}})


def close_calls() -> list[tuple[str, Callable[[StateProvider], object]]]:
    return [
        ("register_variable", lambda s: s.register_variable("y", "integer", 1)),
        ("get_variable", lambda s: s.get_variable("x")),
        ("set_variable", lambda s: s.set_variable("x", 2)),
        ("get_variables", lambda s: s.get_variables(["x"])),
        ("update_variables", lambda s: s.update_variables({"x": 2})),
        ("delete_variable", lambda s: s.delete_variable("x")),
        ("list_variables", lambda s: s.list_variables()),
        ("export_state", lambda s: s.export_state()),
        ("import_state", lambda s: s.import_state(LocalState().export_state())),
        ("capabilities", lambda s: s.capabilities()),
        ("subscribe", lambda s: s.subscribe("*", print)),
        ("unsubscribe", lambda s: s.unsubscribe("sub:x")),
    ]


def names(state: StateProvider) -> list[str]:
    return [variable.name for variable in state.list_variables()]


def _first_id(exported: dict[str, Any]) -> str:
    return str(next(iter(exported["variables"])))


def _set_var(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(exported: dict[str, Any]) -> None:
        exported["variables"][_first_id(exported)][field] = value

    return change


def _drop_var_field(field: str) -> Callable[[dict[str, Any]], None]:
    def change(exported: dict[str, Any]) -> None:
        del exported["variables"][_first_id(exported)][field]

    return change


def _drop(mapping: dict[str, Any], key: str) -> None:
    del mapping[key]


def _without(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda exported: _drop(exported, key)


def _rekey(exported: dict[str, Any]) -> None:
    var_id = _first_id(exported)
    data = exported["variables"].pop(var_id)
    exported["variables"]["var:other"] = data
    exported["variable_index"][data["name"]] = "var:other"


def _same_name(exported: dict[str, Any]) -> None:
    first, second = list(exported["variables"].values())[:2]
    second["name"] = first["name"]


def malformed_cases() -> list[Any]:
    cases: list[tuple[str, Callable[[dict[str, Any]], Any], list[str]]] = [
        ("not-a-dict", lambda e: [e], ["dict"]),
        ("wrong-format", lambda e: e.update(format="otpy.state/99"), ["'format'", "otpy.state/1"]),
        ("variables-not-dict", lambda e: e.update(variables=[]), ["'variables'"]),
        ("index-not-dict", lambda e: e.update(variable_index="x"), ["'variable_index'"]),
        ("metadata-not-dict", lambda e: e.update(metadata="x"), ["'metadata'"]),
        ("session-id", lambda e: e.update(session_id=7), ["'session_id'"]),
        ("index-wrong-id", lambda e: e["variable_index"].update(temperature="var:x"),
         ["'variable_index'", "'temperature'"]),
        ("index-extra-name", lambda e: e["variable_index"].update(ghost="var:x"), ["'ghost'"]),
        ("index-missing-name", lambda e: _drop(e["variable_index"], "steps"), ["'steps'"]),
        ("key-is-not-id", _rekey, ["'var:other'", "'id'"]),
        ("duplicate-names", _same_name, ["same name"]),
        ("value-breaks-constraint", _set_var("value", 99.0), ["'temperature'", "max 2.0"]),
        ("value-breaks-type", _set_var("value", "hot"), ["'temperature'", "type float"]),
        ("unknown-type", _set_var("type", "complex"), ["'temperature'", "'complex'"]),
        ("bad-constraint", _set_var("constraints", {"colour": 1}), ["'colour'"]),
        ("version-not-int", _set_var("version", "2"), ["'version'"]),
        ("version-zero", _set_var("version", 0), ["'version'"]),
        ("bad-timestamp", _set_var("updated_at", None), ["'updated_at'"]),
        ("bad-name", _set_var("name", "no spaces"), ["'no spaces'", "'name'"]),
        ("id-like-a-name", _set_var("id", "plain"), ["'id'"]),
        ("var-metadata", _set_var("metadata", [1]), ["'metadata'"]),
        ("no-variable-version", _drop_var_field("version"), ["version"]),
    ]  # fmt: skip
    for key in ("format", "session_id", "variables", "variable_index", "metadata"):
        cases.append((f"missing-{key}", _without(key), [key]))
    return [pytest.param(case, fn, words, id=case) for case, fn, words in cases]


class StateFactory(Protocol):
    """``state_factory``: a fresh, empty, open store on every call."""

    def __call__(
        self, session_id: str | None = None, clock: Clock | None = None
    ) -> StateProvider: ...


Reopen = Callable[[StateProvider], StateProvider]
