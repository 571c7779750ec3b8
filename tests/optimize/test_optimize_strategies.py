"""Optimization strategies: determinism, random/grid/bootstrap/TPE behaviour, the registry."""

from __future__ import annotations

import importlib.metadata
import json
import random
import statistics
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

import otpy.optimize
from otpy.errors import ConfigurationError
from otpy.optimize import (
    BootstrapFewShot,
    Demos,
    ExampleResult,
    GridSearch,
    RandomSearch,
    SearchSpace,
    Strategy,
    TPEStrategy,
    Trial,
    _strategy,
    load_strategy_plugins,
    make_strategy,
    register_strategy,
    strategy_names,
)
from otpy.optimize._strategies import permute

FINITE = {"a": ["x", "y", "z"], "b": {"low": 0, "high": 3}, "c": {"low": 0.0, "high": 0.2, "step": 0.1}}  # fmt: skip  # noqa: E501
INFINITE = {"t": {"low": 0.0, "high": 1.0}, "c": ["x", "y"], "n": {"low": 1, "high": 100, "log": True}}  # fmt: skip  # noqa: E501
POOL = [{"inputs": {"q": f"p{i}"}, "output": f"P{i}"} for i in range(4)]
DEMOS = {"demos": {"demos": POOL, "k": 3}, "temperature": [0.0, 0.5, 1.0]}
TPE_SPACE = {
    "x": {"low": -5.0, "high": 5.0},
    "step": {"low": 0.0, "high": 1.0, "step": 0.25},
    "lr": {"low": 1e-3, "high": 1.0, "log": True},
    "n": {"low": 1, "high": 64, "log": True},
    "k": {"low": 0, "high": 10, "step": 5},
    "c": ["a", 1, 2.5, None, True],
    "o": [{"role": "x"}, [1, 2]],
}


@pytest.fixture(autouse=True)
def _own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test registers into a copy of the registry; the built-ins stay for the next."""
    monkeypatch.setattr(_strategy, "_REGISTRY", dict(_strategy._REGISTRY))


def evaluate(index: int, round_: int, configuration: dict[str, Any]) -> Trial:
    """A deterministic fake evaluation: 3 examples whose scores depend on the config."""
    seed = json.dumps(configuration, sort_keys=True) + str(index)
    rng = random.Random(seed)
    examples = tuple(
        ExampleResult(example=j, score=rng.choice([0.0, 1.0, None]), inputs={"q": f"q{j}"},
                      output=f"o{j}-{index}")
        for j in range(3)
    )  # fmt: skip
    score = statistics.fmean(e.score or 0.0 for e in examples)
    return Trial(index=index, round=round_, configuration=configuration, status="completed",
                 score=score, examples=examples)  # fmt: skip


def run(
    strategy: Strategy, rounds: int, n: int, score: Callable[[int, int, dict[str, Any]], Trial]
) -> tuple[list[list[dict[str, Any]]], list[Trial]]:
    """What the runner does: propose a round, evaluate all of it, pass the history on."""
    proposals: list[list[dict[str, Any]]] = []
    history: list[Trial] = []
    for r in range(rounds):
        batch = strategy.propose(list(history), n, start=len(history), round=r)
        proposals.append(batch)
        history.extend(score(len(history) + i, r, c) for i, c in enumerate(batch))
    return proposals, history


CASES = [
    ("random_search", FINITE, {}),
    ("random_search", FINITE, {"unique": False}),
    ("random_search", INFINITE, {}),
    ("grid", FINITE, {}),
    ("grid", FINITE, {"shuffle": True}),
    ("bootstrap_fewshot", DEMOS, {"max_demos": 2, "threshold": 0.5}),
    ("tpe", TPE_SPACE, {"startup": 4}),
]


@pytest.mark.parametrize(("name", "space", "options"), CASES)
def test_proposals_are_a_pure_function_of_the_arguments(
    name: str, space: dict[str, Any], options: dict[str, Any]
) -> None:
    random.seed(1)
    first, history = run(make_strategy(name, space, seed=7, **options), 5, 4, evaluate)
    random.seed(2)  # the global random state plays no part
    again, _ = run(make_strategy(name, space, seed=7, **options), 5, 4, evaluate)
    assert again == first
    assert any(first)
    other, _ = run(make_strategy(name, space, seed=8, **options), 5, 4, evaluate)
    if options != {} or name != "grid":
        assert other != first  # the seed matters (plain grid order has no randomness)
    # a "restarted" runner: a brand-new object given the history so far proposes the same
    parsed = SearchSpace.parse(space)
    for r, batch in enumerate(first):
        before = [t for t in history if t.round < r]
        fresh = make_strategy(name, parsed, seed=7, **options)
        assert fresh.propose(before, 4, start=len(before), round=r) == batch
        for configuration in batch:
            parsed.check(configuration)


# --- random search -----------------------------------------------------------------------


def test_random_search_on_a_finite_space_is_a_permutation_then_exhausted() -> None:
    space = SearchSpace.parse(FINITE)
    assert space.size == 36
    strategy = RandomSearch(space, seed=3)
    every = strategy.propose([], 100, start=0, round=0)
    assert len(every) == 36
    assert sorted(map(json.dumps, every)) == sorted(map(json.dumps, space.grid()))
    assert every != list(space.grid())
    assert strategy.propose([], 5, start=36, round=1) == []
    chunked = [c for s in range(0, 36, 5) for c in strategy.propose([], 5, start=s, round=s)]
    assert chunked == every
    assert RandomSearch(space, seed=4).propose([], 36, start=0, round=0) != every


def test_random_search_without_unique_samples_per_index() -> None:
    space = SearchSpace.parse({"a": [1, 2]})
    strategy = RandomSearch(space, seed=5, unique=False)
    proposals = strategy.propose([], 20, start=0, round=0)
    assert len(proposals) == 20 and len({p["a"] for p in proposals}) == 2
    assert proposals == [space.sample(random.Random(f"5:{i}")) for i in range(20)]


def test_random_search_on_an_infinite_space_is_independent_of_chunking() -> None:
    space = SearchSpace.parse(INFINITE)
    strategy = RandomSearch(space, seed=11)
    five = strategy.propose([], 5, start=0, round=0)
    assert five == strategy.propose([], 2, start=0, round=0) + strategy.propose(
        [], 3, start=2, round=1
    )
    assert five == [space.sample(random.Random(f"11:{i}")) for i in range(5)]
    assert len({json.dumps(c) for c in five}) == 5
    assert strategy.propose([], 0, start=5, round=2) == []


def test_permute_is_a_bijection() -> None:
    for size in [*range(1, 70), 1000, 4097]:
        for key in ("a", "b"):
            assert sorted(permute(i, size, key) for i in range(size)) == list(range(size))
    assert [permute(i, 1000, "a") for i in range(10)] != [permute(i, 1000, "b") for i in range(10)]


# --- grid --------------------------------------------------------------------------------


def test_grid_search_visits_the_product_in_order_then_stops() -> None:
    space = SearchSpace.parse(FINITE)
    strategy = GridSearch(space)
    first = strategy.propose([], 10, start=0, round=0)
    rest = strategy.propose([], 100, start=10, round=1)
    assert first + rest == list(space.grid())
    assert first[:2] == [{"a": "x", "b": 0, "c": 0.0}, {"a": "x", "b": 0, "c": 0.1}]
    assert strategy.propose([], 10, start=36, round=2) == []


def test_grid_search_shuffle_is_seeded() -> None:
    space = SearchSpace.parse(FINITE)
    order = GridSearch(space, seed=1, shuffle=True).propose([], 50, start=0, round=0)
    assert order == GridSearch(space, seed=1, shuffle=True).propose([], 50, start=0, round=0)
    assert order != GridSearch(space, seed=2, shuffle=True).propose([], 50, start=0, round=0)
    assert order != list(space.grid())
    assert sorted(map(json.dumps, order)) == sorted(map(json.dumps, space.grid()))


def test_grid_search_needs_an_enumerable_space() -> None:
    with pytest.raises(ConfigurationError, match=r"space variable 't' \(float in \[0.0, 1.0\]\)"):
        GridSearch(SearchSpace.parse(INFINITE))
    with pytest.raises(ConfigurationError, match=r"option shuffle 'yes' is not a bool"):
        GridSearch(SearchSpace.parse(FINITE), shuffle="yes")


# --- bootstrap few-shot ------------------------------------------------------------------


def example(j: int, score: float | None, output: str, q: str | None = None) -> ExampleResult:
    return ExampleResult(example=j, score=score, inputs={"q": q or f"q{j}"}, output=output)


def history_with_traces() -> list[Trial]:
    return [
        Trial(index=0, round=0, configuration={"demos": [], "temperature": 0.0},
              status="completed", score=0.5,
              examples=(example(0, 1.0, "A0"), example(1, 0.0, "A1"), example(2, None, "A2"))),
        Trial(index=1, round=0, configuration={"demos": [], "temperature": 1.0},
              status="completed", score=0.75,
              examples=(example(3, 1.0, "B3"), example(0, 1.0, "B0"), example(1, 0.5, "B1"))),
        Trial(index=2, round=0, configuration={"demos": [], "temperature": 0.5},
              status="aborted", score=None, examples=(example(4, 1.0, "C4"),)),
        Trial(index=3, round=0, configuration={"demos": [], "temperature": 0.5},
              status="completed", score=0.75, examples=()),
    ]  # fmt: skip


def demo(q: str, output: str) -> dict[str, Any]:
    return {"inputs": {"q": q}, "output": output}


def test_bootstrap_round_zero_is_zero_shot_without_a_pool() -> None:
    space = {"demos": {"demos": [], "k": 3}, "temperature": [0.0, 0.5, 1.0]}
    proposals = BootstrapFewShot(space, seed=1).propose([], 5, start=0, round=0)
    assert sorted(p["temperature"] for p in proposals) == [0.0, 0.5, 1.0]  # no repeats
    assert all(p["demos"] == [] for p in proposals)


def test_bootstrap_round_zero_draws_from_the_labeled_pool() -> None:
    proposals = BootstrapFewShot(DEMOS, seed=1, max_demos=2).propose([], 6, start=0, round=0)
    assert len(proposals) == 6
    for p in proposals:
        assert len(p["demos"]) == 2 and all(d in POOL for d in p["demos"])
    assert all(
        len(p["demos"]) == 3 for p in BootstrapFewShot(DEMOS).propose([], 3, start=0, round=0)
    )


def test_bootstrap_source_is_the_passing_traces_then_the_pool() -> None:
    space = {"demos": {"demos": [demo("q0", "label0"), demo("q9", "label9")], "k": 3}, "t": [1]}
    strict = BootstrapFewShot(space).demo_source(history_with_traces())
    # q0 passes twice: trial 0's trace is kept (trial, example order); q1 scored 0.0 and 0.5
    assert strict == [demo("q0", "A0"), demo("q3", "B3"), demo("q4", "C4"), demo("q9", "label9")]
    loose = BootstrapFewShot(space, threshold=0.5).demo_source(history_with_traces())
    assert loose == [demo("q0", "A0"), demo("q1", "B1"), demo("q3", "B3"), demo("q4", "C4"),
                     demo("q9", "label9")]  # fmt: skip


def test_bootstrap_later_rounds_use_passing_traces_and_the_best_trial() -> None:
    space = {"demos": {"demos": [], "k": 3}, "temperature": [0.0, 0.5, 1.0]}
    strategy = BootstrapFewShot(space, seed=4, max_demos=2)
    history = history_with_traces()
    proposals = strategy.propose(history, 10, start=4, round=1)
    passing = [demo("q0", "A0"), demo("q3", "B3"), demo("q4", "C4")]
    assert len(proposals) == 3  # every 2-subset of 3 traces once, then nothing new
    for p in proposals:
        assert p["temperature"] == 1.0  # trial 1: best score, lower index than trial 3
        assert len(p["demos"]) == 2 and all(d in passing for d in p["demos"])
    assert len({json.dumps(p) for p in proposals}) == 3
    loose = BootstrapFewShot(space, seed=4, max_demos=3, threshold=0.0)
    for p in loose.propose(history, 5, start=4, round=1):
        assert len(p["demos"]) == 3
        assert {d["output"] for d in p["demos"]} <= {"A0", "A1", "B3", "B1", "C4"}
    # nothing passed and nothing completed: demos stay empty, the rest is sampled
    failed = [Trial(index=0, round=0, configuration={"demos": [], "temperature": 0.0},
                    status="aborted", score=None, examples=(example(0, 0.0, "x"),))]  # fmt: skip
    again = strategy.propose(failed, 5, start=1, round=1)
    assert {p["temperature"] for p in again} == {0.5, 1.0}
    assert all(p["demos"] == [] for p in again)


def test_bootstrap_options() -> None:
    with pytest.raises(ConfigurationError, match="exactly one Demos variable, found none"):
        BootstrapFewShot({"t": [1, 2]})
    two = {"a": {"demos": []}, "b": {"demos": [], "k": 1}, "t": [1]}
    with pytest.raises(ConfigurationError, match="found 'a', 'b'; name it with the option demos"):
        BootstrapFewShot(two)
    assert BootstrapFewShot(two, demos="b").max_demos == 1
    with pytest.raises(ConfigurationError, match=r"option demos 't' is not a Demos variable"):
        BootstrapFewShot(two, demos="t")
    with pytest.raises(ConfigurationError, match=r"option max_demos 4 is not at most k 3"):
        BootstrapFewShot(DEMOS, max_demos=4)
    with pytest.raises(ConfigurationError, match=r"option max_demos -1 is not an int >= 0"):
        BootstrapFewShot(DEMOS, max_demos=-1)
    with pytest.raises(ConfigurationError, match=r"option threshold 'high' is not a number"):
        BootstrapFewShot(DEMOS, threshold="high")


# --- TPE ---------------------------------------------------------------------------------


def test_tpe_proposals_stay_in_the_space() -> None:
    space = SearchSpace.parse(TPE_SPACE)
    proposals, _ = run(TPEStrategy(space, seed=2, startup=3), 4, 5, evaluate)
    assert sum(map(len, proposals)) == 20
    for batch in proposals:
        for configuration in batch:
            space.check(configuration)
            assert configuration["step"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert {type(c["o"]) for batch in proposals for c in batch} <= {dict, list}


def test_tpe_depends_on_seed_round_and_history() -> None:
    space = SearchSpace.parse(TPE_SPACE)
    _, history = run(TPEStrategy(space, seed=2, startup=3), 3, 5, evaluate)
    first = TPEStrategy(space, seed=2, startup=3).propose(history, 4, start=15, round=3)
    assert TPEStrategy(space, seed=2, startup=3).propose(history, 4, start=15, round=3) == first
    assert TPEStrategy(space, seed=2, startup=3).propose(history, 4, start=15, round=4) != first
    assert TPEStrategy(space, seed=3, startup=3).propose(history, 4, start=15, round=3) != first
    assert (
        TPEStrategy(space, seed=2, startup=3).propose(history[:-2], 4, start=15, round=3) != first
    )
    # an aborted trial is skipped: the proposals are those of the history without it
    aborted = Trial(index=15, round=2, configuration=history[0].configuration,
                    status="aborted", score=None)  # fmt: skip
    assert (
        TPEStrategy(space, seed=2, startup=3).propose([*history, aborted], 4, start=16, round=3)
        == first
    )


def quadratic(index: int, round_: int, configuration: dict[str, Any]) -> Trial:
    return Trial(index=index, round=round_, configuration=configuration, status="completed",
                 score=-((configuration["x"] - 1.3) ** 2))  # fmt: skip


def late_distance(name: str, seed: int, **options: Any) -> float:
    strategy = make_strategy(name, {"x": {"low": -5.0, "high": 5.0}}, seed=seed, **options)
    proposals, _ = run(strategy, 8, 4, quadratic)
    return statistics.fmean(abs(c["x"] - 1.3) for batch in proposals[-3:] for c in batch)


def test_tpe_moves_toward_the_optimum_more_than_random_search() -> None:
    tpe = statistics.fmean(late_distance("tpe", seed, startup=8) for seed in range(8))
    rnd = statistics.fmean(late_distance("random_search", seed) for seed in range(8))
    assert tpe < 0.75 * rnd, (tpe, rnd)  # about 1.4 against 2.5


def test_tpe_refuses_demos_and_bad_options() -> None:
    with pytest.raises(
        ConfigurationError, match=r"space variable 'shots' is a Demos variable.*bootstrap_fewshot"
    ):
        TPEStrategy({"shots": Demos(), "t": [1]})
    with pytest.raises(ConfigurationError, match=r"strategy 'tpe': option startup -1"):
        TPEStrategy({"t": [1]}, startup=-1)


def test_tpe_without_optuna(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    with pytest.raises(ConfigurationError) as info:
        make_strategy("tpe", {"t": [1]})
    assert str(info.value) == "strategy 'tpe' needs optuna: pip install 'otpy[optuna]'"
    assert "tpe" in strategy_names()


# --- trials ------------------------------------------------------------------------------


def test_trials_round_trip_through_json() -> None:
    trial = history_with_traces()[1].model_copy(update={"errors": 1, "tokens": 12, "duration": 0.5})
    data = json.loads(json.dumps(trial.model_dump(mode="json")))
    assert Trial.model_validate(data) == trial
    with pytest.raises(ValidationError):
        Trial.model_validate({**data, "extra": 1})
    with pytest.raises(ValidationError):
        Trial.model_validate({**data, "status": "running"})
    with pytest.raises(ValidationError):
        ExampleResult(example=0, score=float("nan"))
    with pytest.raises(ValidationError):
        trial.score = 1.0


# --- registry ----------------------------------------------------------------------------


class FirstN(Strategy):
    """Grid order from an offset: a user-defined strategy."""

    name = "first_n"
    option_defaults: ClassVar[Mapping[str, Any]] = {"offset": 0}

    def propose(
        self, history: Sequence[Trial], n: int, *, start: int, round: int
    ) -> list[dict[str, Any]]:
        grid = list(self.space.grid())[self.options["offset"] :]
        return grid[start : start + n]


class NotAStrategy:
    pass


def register_more() -> None:
    register_strategy("first_n_too", FirstN)


def test_built_ins_are_registered() -> None:
    assert {"random_search", "grid", "bootstrap_fewshot", "tpe"} <= set(strategy_names())
    assert strategy_names() == sorted(strategy_names())
    assert isinstance(make_strategy("grid", FINITE), GridSearch)
    assert not GridSearch.adaptive and not RandomSearch.adaptive
    assert BootstrapFewShot.adaptive and TPEStrategy.adaptive


def test_unknown_strategy_names_the_closest_match() -> None:
    with pytest.raises(ConfigurationError) as info:
        make_strategy("random_serach", FINITE)
    message = str(info.value)
    assert "unknown strategy 'random_serach'; did you mean 'random_search'?" in message
    assert "registered: bootstrap_fewshot, grid, random_search, tpe" in message
    with pytest.raises(
        ConfigurationError, match=r"strategy 'grid': unknown option 'shufle'; allowed: shuffle"
    ):
        make_strategy("grid", FINITE, shufle=True)
    with pytest.raises(ConfigurationError, match="a registered name, a Strategy subclass"):
        make_strategy(42, FINITE)  # type: ignore[arg-type]


def test_register_and_make_a_user_strategy() -> None:
    register_strategy("first_n", FirstN)
    register_strategy("first_n", FirstN)  # the same class again: nothing changes
    strategy = make_strategy("first_n", FINITE, seed=1, offset=2)
    assert isinstance(strategy, FirstN) and strategy.seed == 1
    assert strategy.propose([], 2, start=0, round=0) == list(SearchSpace.parse(FINITE).grid())[2:4]
    assert make_strategy(strategy, FINITE) is strategy
    assert isinstance(make_strategy(FirstN, FINITE), FirstN)
    with pytest.raises(ConfigurationError, match="cannot be given with a Strategy instance"):
        make_strategy(strategy, FINITE, offset=1)
    with pytest.raises(ConfigurationError, match="built for another search space"):
        make_strategy(strategy, INFINITE)
    with pytest.raises(ConfigurationError, match=r"'first_n' is already registered .*replace=True"):
        register_strategy("first_n", GridSearch)
    register_strategy("first_n", GridSearch, replace=True)
    assert isinstance(make_strategy("first_n", FINITE), GridSearch)
    with pytest.raises(ConfigurationError, match=r"is not a subclass of otpy\.optimize\.Strategy"):
        register_strategy("bad", NotAStrategy)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="Strategy is abstract"):
        register_strategy("bad", Strategy)  # type: ignore[type-abstract]
    assert "bad" not in strategy_names()


def entry_points() -> Iterator[importlib.metadata.EntryPoint]:
    group = otpy.optimize.STRATEGY_PLUGIN_GROUP
    yield importlib.metadata.EntryPoint("first_n", "test_optimize_strategies:FirstN", group)
    yield importlib.metadata.EntryPoint("more", "test_optimize_strategies:register_more", group)
    yield importlib.metadata.EntryPoint("missing", "no_such_module_xyz:thing", group)
    yield importlib.metadata.EntryPoint("odd", "test_optimize_strategies:NotAStrategy", group)
    yield importlib.metadata.EntryPoint("grid", "test_optimize_strategies:FirstN", group)
    yield importlib.metadata.EntryPoint("step", "test_optimize_strategies:FirstN", "otpy.steps")


def test_plugins_register_and_failures_are_reported() -> None:
    reports = load_strategy_plugins(list(entry_points()))
    assert [(r.name, r.loaded) for r in reports] == [
        ("first_n", True), ("more", True), ("missing", False), ("odd", False), ("grid", False),
    ]  # fmt: skip
    errors = {r.name: r.error or "" for r in reports}
    assert "ModuleNotFoundError" in errors["missing"]
    assert "not a subclass of otpy.optimize.Strategy" in errors["odd"]
    assert "'grid' is already registered" in errors["grid"]
    assert {"first_n", "first_n_too"} <= set(strategy_names())
    assert isinstance(make_strategy("grid", FINITE), GridSearch)
    assert load_strategy_plugins(lambda group: []) == []
