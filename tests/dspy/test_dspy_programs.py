"""DSPy's modules and optimizers run offline through otpy.dspy.lm on the simulated provider:
ReAct with a Python tool, Evaluate on 8 threads, BootstrapFewShotWithRandomSearch and
MIPROv2 (auto="light"); every call they make is one the gate counted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dspy
from dspy_support import exact, examples, runtime, searching, simulated

import otpy.dspy
from otpy.calls import CallGate


def test_react_calls_a_python_tool_then_finishes() -> None:
    sim = searching()
    queries: list[str] = []

    def search(query: str) -> str:
        """Look the question up."""
        queries.append(query)
        return f"the answer to {query} is A2"

    with runtime(sim) as rt, dspy.context(lm=otpy.dspy.lm(rt)):
        result = dspy.ReAct("question -> answer", tools=[search])(question="q2")
    assert queries == ["q2"] and result.answer == "A2"
    assert result.trajectory["observation_0"] == "the answer to q2 is A2"
    assert sim.calls == 3  # search, finish, extract


def test_evaluate_on_eight_threads_scores_every_example() -> None:
    sim = simulated(latency=0.002)
    gate = CallGate()
    with runtime(sim) as rt:
        evaluate = dspy.Evaluate(devset=examples(24), metric=exact, num_threads=8)
        with dspy.context(lm=otpy.dspy.lm(rt)), otpy.dspy.call_scope(gate=gate):
            result = evaluate(dspy.ChainOfThought("question -> answer"))
    assert result.score == 50.0 and len(result.results) == 24
    assert sim.calls == gate.totals().calls == 24


def _optimized(make: Callable[[], Any], **compile_args: Any) -> tuple[Any, int, int]:
    """The program ``make()``'s optimizer compiles, the calls it made, its score."""
    sim = simulated()
    gate = CallGate()
    with runtime(sim) as rt, dspy.context(lm=otpy.dspy.lm(rt)):
        with otpy.dspy.call_scope(gate=gate):
            program = make().compile(dspy.Predict("question -> answer"), **compile_args)
        score = dspy.Evaluate(devset=examples(4, start=20), metric=exact)(program).score
    assert sim.calls == gate.totals().calls + 4 and gate.totals().failed == 0
    return program, gate.totals().calls, int(score)


def test_bootstrap_few_shot_with_random_search_finds_demos_offline() -> None:
    def optimizer() -> Any:
        return dspy.BootstrapFewShotWithRandomSearch(
            metric=exact, max_bootstrapped_demos=2, max_labeled_demos=1, num_candidate_programs=2
        )

    program, calls, score = _optimized(optimizer, trainset=examples(6), valset=examples(4, 6))
    demos = [d for c in program.candidate_programs for d in c["program"].demos]
    bootstrapped = [d for d in demos if d.get("augmented")]
    assert calls > 0 and bootstrapped and all(d.answer == f"A{d.question[1:]}" for d in demos)
    assert all(int(d.question[1:]) % 2 == 0 for d in bootstrapped)  # what the metric passed
    assert score == 50  # the simulated model is right on even questions


def test_mipro_v2_light_runs_offline() -> None:
    def optimizer() -> Any:
        return dspy.MIPROv2(metric=exact, auto="light", num_threads=1, seed=0)

    program, calls, _ = _optimized(
        optimizer, trainset=examples(10), max_bootstrapped_demos=1, max_labeled_demos=1
    )
    assert calls > 50 and program.signature.instructions
