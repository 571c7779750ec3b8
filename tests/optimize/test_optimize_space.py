"""The search space of optimization jobs: parsing, errors, sampling, grids, membership."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from otpy.errors import ConfigurationError
from otpy.optimize import Choice, Demos, FloatRange, IntRange, SearchSpace

POOL = tuple({"inputs": {"q": f"q{i}"}, "output": f"a{i}"} for i in range(5))


def full_space() -> SearchSpace:
    return SearchSpace.parse(
        {
            "instruction": ["Answer briefly.", "Think step by step."],
            "model": {"choices": ["small", {"name": "big", "tags": ["x"]}, None]},
            "temperature": {"low": 0.0, "high": 1.0, "step": 0.1},
            "top_p": {"low": 0.5, "high": 1.0},
            "lr": {"low": 1e-4, "high": 1.0, "log": True},
            "max_tokens": {"low": 16, "high": 1024, "log": True},
            "retries": {"low": 0, "high": 6, "step": 3},
            "demos": {"demos": list(POOL), "k": 3},
        }
    )


# --- parsing -----------------------------------------------------------------------------


def test_parse_reads_every_form() -> None:
    space = full_space()
    v = space.variables
    assert v["instruction"] == Choice(("Answer briefly.", "Think step by step."))
    assert v["model"] == Choice(("small", {"name": "big", "tags": ["x"]}, None))
    assert v["temperature"] == FloatRange(0.0, 1.0, step=0.1)
    assert v["top_p"] == FloatRange(0.5, 1.0)
    assert v["lr"] == FloatRange(1e-4, 1.0, log=True)
    assert v["max_tokens"] == IntRange(16, 1024, log=True)
    assert v["retries"] == IntRange(0, 6, step=3)
    assert v["demos"] == Demos(POOL, k=3)
    assert space.names == (
        "instruction", "model", "temperature", "top_p", "lr", "max_tokens", "retries", "demos",
    )  # fmt: skip


def test_parse_int_or_float_and_objects() -> None:
    space = SearchSpace.parse(
        {
            "a": {"low": 0, "high": 10},
            "b": {"low": 0, "high": 10, "type": "float"},
            "c": {"low": 0, "high": 10, "step": 0.5},
            "d": {"low": 0.0, "high": 10},
            "e": (1, 2),
            "f": IntRange(1, 3),
            "g": {"demos": []},
        }
    )
    v = space.variables
    assert type(v["a"]) is IntRange and v["a"] == IntRange(0, 10)
    b = v["b"]
    assert b == FloatRange(0.0, 10.0) and isinstance(b, FloatRange) and isinstance(b.low, float)
    assert v["c"] == FloatRange(0.0, 10.0, step=0.5)
    assert type(v["d"]) is FloatRange
    assert v["e"] == Choice((1, 2))
    assert v["f"] == IntRange(1, 3)
    assert v["g"] == Demos((), k=3)
    assert SearchSpace.parse(space) is space


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        (
            {"temperature": {"low": 2.0, "high": 1.0}},
            ["'temperature'", "low 2.0 is above high 1.0"],
        ),
        (
            {"t": {"low": 0.0, "high": 1.0, "stp": 0.1}},
            ["'t'", "unknown key 'stp'", "allowed: low, high, step, log, type"],
        ),
        ({"t": {"low": 0.0}}, ["'t'", "field 'high' is missing"]),
        ({"t": {"high": 1.0}}, ["'t'", "field 'low' is missing"]),
        ({"t": {"low": 0.0, "high": 1.0, "log": True}}, ["'t'", "log needs low > 0, got low 0.0"]),
        ({"t": {"low": 0, "high": 1, "step": 0.5, "type": "int"}}, ["'t'", "type 'int' needs int"]),
        (
            {"t": {"low": 0, "high": 1, "type": "str"}},
            ["'t'", "type 'str' is not 'float' or 'int'"],
        ),
        ({"t": {"low": "a", "high": 1}}, ["'t'", "low 'a' is not a number"]),
        ({"t": {"low": 0.0, "high": float("inf")}}, ["'t'", "high inf is not finite"]),
        ({"t": {"low": 0.0, "high": 1.0, "step": -0.1}}, ["'t'", "step -0.1 is not positive"]),
        ({"t": {"low": 0.1, "high": 1.0, "step": 0.1, "log": True}}, ["'t'", "step and log"]),
        ({"t": {"low": 0.1, "high": 1.0, "log": "yes"}}, ["'t'", "log 'yes' is not a bool"]),
        (
            {"n": {"low": 1, "high": 9, "step": 2, "log": True}},
            ["'n'", "log needs step 1, got step 2"],
        ),
        ({"n": {"low": 1, "high": 9, "step": 0}}, ["'n'", "step 0 is not positive"]),
        ({"n": {"low": 5, "high": 1}}, ["'n'", "low 5 is above high 1"]),
        ({"c": []}, ["'c'", "choices is empty"]),
        ({"c": {"choices": []}}, ["'c'", "choices is empty"]),
        ({"c": {"choices": "ab"}}, ["'c'", "choices must be a list"]),
        ({"c": ["a", "b", "a"]}, ["'c'", "choices[2] 'a' repeats choices[0]"]),
        ({"c": [object()]}, ["'c'", "choices[0]", "is not JSON"]),
        ({"c": [float("nan")]}, ["'c'", "choices[0] nan is not finite"]),
        ({"c": [{1: "x"}]}, ["'c'", "choices[0] has a key 1 that is not a string"]),
        ({"c": {"choices": ["a"], "k": 1}}, ["'c'", "unknown key 'k'; allowed: choices"]),
        ({"d": {"demos": [1]}}, ["'d'", "demos[0] 1 is not a mapping"]),
        ({"d": {"demos": [], "k": -1}}, ["'d'", "k -1 is negative"]),
        ({"d": {"demos": [], "k": 1.5}}, ["'d'", "k 1.5 is not an int"]),
        ({"d": {"demos": [], "low": 1}}, ["'d'", "unknown key 'low'; allowed: demos, k"]),
        ({"x": {"foo": 1}}, ["'x'", "unknown key(s) 'foo'", "choices | demos, k | low, high"]),
        ({"x": "abc"}, ["'x'", "'abc' is not a variable"]),
        ({"x": 3}, ["'x'", "3 is not a variable"]),
        ({"1x": [1]}, ["'1x'", "the name must match"]),
        ({"a-b": [1]}, ["'a-b'", "the name must match"]),
        ({}, ["the search space is empty"]),
    ],
)
def test_each_error_names_the_variable_and_the_field(
    spec: dict[str, Any], fragments: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        SearchSpace.parse(spec)
    message = str(info.value)
    if spec:
        assert message.startswith("space variable "), message
    for fragment in fragments:
        assert fragment in message, message


def test_variables_built_directly_validate_too() -> None:
    with pytest.raises(ConfigurationError, match=r"FloatRange: low 2.0 is above high 1.0"):
        FloatRange(2.0, 1.0)
    with pytest.raises(ConfigurationError, match=r"IntRange: low 1.5 is not an int"):
        IntRange(1.5, 3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"IntRange: low True is not an int"):
        IntRange(True, 3)
    with pytest.raises(ConfigurationError, match=r"Choice: choices is empty"):
        Choice(())
    with pytest.raises(ConfigurationError, match=r"space variable 'x': .* is not a Variable"):
        SearchSpace({"x": [1, 2]})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError, match="a search space is a mapping"):
        SearchSpace.parse([1, 2])  # type: ignore[arg-type]


# --- sampling ----------------------------------------------------------------------------


def test_samples_stay_in_the_space_for_many_seeds() -> None:
    space = full_space()
    temperature_grid = space.variables["temperature"].grid()
    assert temperature_grid is not None
    for seed in range(500):
        configuration = space.sample(random.Random(seed))
        assert list(configuration) == list(space.names)
        space.check(configuration)
        assert configuration["temperature"] in temperature_grid
        assert 1e-4 <= configuration["lr"] <= 1.0
        assert 16 <= configuration["max_tokens"] <= 1024
        assert configuration["retries"] in (0, 3, 6)


def test_sampling_is_a_function_of_the_rng() -> None:
    space = full_space()
    assert space.sample(random.Random(3)) == space.sample(random.Random(3))
    assert space.sample(random.Random(3)) != space.sample(random.Random(4))


def test_log_ranges_draw_log_uniformly() -> None:
    rng = random.Random(0)
    floats = [FloatRange(1e-4, 1.0, log=True).sample(rng) for _ in range(4000)]
    ints = [IntRange(1, 1000, log=True).sample(rng) for _ in range(4000)]
    plain = [FloatRange(1e-4, 1.0).sample(rng) for _ in range(4000)]
    # log-uniform: half of the mass below the geometric midpoint; uniform: almost none
    assert 0.45 < sum(x < 1e-2 for x in floats) / len(floats) < 0.55
    assert 0.45 < sum(x < 32 for x in ints) / len(ints) < 0.55
    assert sum(x < 1e-2 for x in plain) / len(plain) < 0.03
    assert min(floats) >= 1e-4 and max(floats) <= 1.0
    assert min(ints) >= 1 and max(ints) <= 1000
    small = {IntRange(1, 10, log=True).sample(rng) for _ in range(2000)}
    assert small == set(range(1, 11))  # both ends reachable


def test_samples_are_copies() -> None:
    choice = Choice(({"a": [1]},))
    value = choice.sample(random.Random(0))
    value["a"].append(2)
    assert choice.values == ({"a": [1]},)


def test_demos_sample_k_of_the_pool_in_pool_order() -> None:
    demos = Demos(POOL, k=3)
    subsets = set()
    for seed in range(200):
        value = demos.sample(random.Random(seed))
        assert len(value) == 3
        positions = [POOL.index(d) for d in value]
        assert positions == sorted(set(positions))
        subsets.add(tuple(positions))
    assert len(subsets) == 10  # every 3-subset of 5 is reachable
    assert Demos(POOL[:2], k=3).sample(random.Random(0)) == list(POOL[:2])
    assert Demos((), k=3).sample(random.Random(0)) == []
    assert Demos(POOL, k=0).sample(random.Random(0)) == []


# --- grids -------------------------------------------------------------------------------


def test_grid_is_the_product_first_variable_slowest() -> None:
    space = SearchSpace.parse({"a": ["x", "y"], "b": {"low": 0, "high": 4, "step": 2}})
    assert list(space.grid()) == [
        {"a": "x", "b": 0}, {"a": "x", "b": 2}, {"a": "x", "b": 4},
        {"a": "y", "b": 0}, {"a": "y", "b": 2}, {"a": "y", "b": 4},
    ]  # fmt: skip
    assert space.size == 6


def test_grid_values_are_rounded() -> None:
    assert FloatRange(0.0, 1.0, step=0.1).grid() == (
        0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
    )  # fmt: skip
    assert FloatRange(0.0, 0.95, step=0.1).grid() == (
        0.0,
        0.1,
        0.2,
        0.3,
        0.4,
        0.5,
        0.6,
        0.7,
        0.8,
        0.9,
    )
    assert FloatRange(1e-5, 5e-5, step=1e-5).grid() == (1e-05, 2e-05, 3e-05, 4e-05, 5e-05)
    assert FloatRange(0.25, 0.25, step=1.0).grid() == (0.25,)
    assert FloatRange(0.0, 1.0).grid() is None
    assert IntRange(1, 10, step=3).grid() == (1, 4, 7, 10)
    assert IntRange(0, 9, step=4).grid() == (0, 4, 8)
    assert Demos((), k=2).grid() == ([],)
    assert Demos(POOL, k=2).grid() is None


def test_grid_and_size_of_a_space_without_grid() -> None:
    space = full_space()
    assert space.size is None
    with pytest.raises(ConfigurationError) as info:
        space.grid()
    message = str(info.value)
    for name in ("top_p", "lr", "demos"):
        assert f"space variable {name!r}" in message
    for name in ("instruction", "temperature", "retries"):
        assert f"space variable {name!r}" not in message
    assert SearchSpace.parse({"d": {"demos": []}, "c": [1, 2]}).size == 2


# --- membership --------------------------------------------------------------------------


def test_contains_for_each_variable() -> None:
    choice = Choice((1, "a", [1, 2], {"k": None}))
    assert choice.contains(1) and choice.contains([1, 2]) and choice.contains((1, 2))
    assert choice.contains({"k": None})
    assert not choice.contains(True) and not choice.contains(1.0) and not choice.contains("b")
    assert not choice.contains(object())
    steps = FloatRange(0.0, 1.0, step=0.1)
    assert steps.contains(0.1 + 0.2) and steps.contains(1) and steps.contains(0.0)
    assert not steps.contains(0.15) and not steps.contains(1.1) and not steps.contains(True)
    assert not steps.contains(float("nan")) and not steps.contains("0.1")
    assert FloatRange(0.0, 1.0).contains(0.123)
    ints = IntRange(1, 10, step=3)
    assert ints.contains(7) and not ints.contains(8) and not ints.contains(7.0)
    assert not ints.contains(13) and not ints.contains(-2)
    demos = Demos(POOL, k=2)
    assert demos.contains([]) and demos.contains([{"inputs": {}, "output": 1}])
    assert not demos.contains(list(POOL[:3])) and not demos.contains(["text"])
    assert not demos.contains("[]") and not demos.contains([{"x": object()}])


def test_check_names_the_variable() -> None:
    space = SearchSpace.parse({"t": {"low": 0.0, "high": 1.0}, "c": ["a", "b"]})
    space.check({"t": 0.5, "c": "a"})
    assert space.contains({"t": 0.5, "c": "a"})
    cases = [
        ({"t": 0.5}, "space variable 'c': missing from the configuration"),
        ({"t": 0.5, "c": "a", "x": 1}, "space variable 'x': unknown (the space has t, c)"),
        ({"t": 1.5, "c": "a"}, "space variable 't': value 1.5 is not in float in [0.0, 1.0]"),
        ({"t": 0.5, "c": "z"}, "space variable 'c': value 'z' is not in one of ['a', 'b']"),
        ([0.5, "a"], "a configuration is a mapping"),
    ]
    for configuration, message in cases:
        with pytest.raises(ConfigurationError) as info:
            space.check(configuration)  # type: ignore[arg-type]
        assert message in str(info.value)
        assert not space.contains(configuration)  # type: ignore[arg-type]


# --- serialization -----------------------------------------------------------------------


def test_to_dict_round_trips_through_json() -> None:
    space = full_space()
    data = json.loads(json.dumps(space.to_dict()))
    again = SearchSpace.from_dict(data)
    assert again == space
    assert again.names == space.names
    assert again.to_dict() == space.to_dict()
    # an int-bounded float range stays a float range; tuples inside choices become lists
    odd = SearchSpace.parse({"f": FloatRange(0, 10), "c": [(1, 2), "x"]})
    assert SearchSpace.from_dict(json.loads(json.dumps(odd.to_dict()))) == odd
    assert type(SearchSpace.from_dict(odd.to_dict()).variables["f"]) is FloatRange


def test_describe() -> None:
    assert FloatRange(0.0, 1.0, step=0.1).describe() == "float in [0.0, 1.0] step 0.1"
    assert FloatRange(0.1, 1.0, log=True).describe() == "float in [0.1, 1.0] (log)"
    assert IntRange(1, 9, step=2).describe() == "int in [1, 9] step 2"
    assert Choice(("a", 1)).describe() == "one of ['a', 1]"
    assert Demos(POOL, k=2).describe() == "up to 2 demos from a pool of 5"
    assert len(Choice(tuple("x" * 30 + str(i) for i in range(9))).describe()) < 100
