"""One example of a candidate: run the program with the candidate's configuration as its
variables, score the result with the metric, and never let a failure escape."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from otpy.clock import Clock
from otpy.optimize._job import Metric
from otpy.optimize._trials import ExampleResult
from otpy.pipelines import Plan, ProviderDirectory, RunProgress, run_plan
from otpy.telemetry import redact_value

__all__ = ["cost_of", "evaluate_example", "examples_for"]


def examples_for(count: int, minibatch: int | None, seed: int, index: int) -> list[int]:
    """The trainset indexes candidate ``index`` is scored on: all of them, or a seeded
    minibatch (the same for the same seed and candidate, in any process)."""
    if minibatch is None or minibatch >= count:
        return list(range(count))
    return sorted(random.Random(f"{seed}:minibatch:{index}").sample(range(count), minibatch))


def cost_of(result: Any, prices: Mapping[str, tuple[float, float]]) -> float:
    """Dollars a run spent: per step, its provider's (input, output) price per million
    tokens times the tokens (providers without a price cost nothing)."""
    total = 0.0
    for outcome in getattr(result, "steps", ()):
        price = prices.get(outcome.provider or "")
        if price is not None:
            usage = outcome.usage
            total += (usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1e6
    return total


def _failure(exc: BaseException) -> str:
    return str(redact_value(f"{type(exc).__name__}: {exc}"))


def evaluate_example(
    plan: Plan,
    index: int,
    example: Mapping[str, Any],
    configuration: Mapping[str, Any],
    metric: Metric,
    *,
    providers: ProviderDirectory | None,
    clock: Clock,
    progress: RunProgress | None = None,
    prices: Mapping[str, tuple[float, float]] | None = None,
) -> tuple[ExampleResult, float]:
    """Run ``plan`` on trainset item ``index`` with ``configuration`` as its variables and
    score it; returns the ExampleResult and its cost. A failed run, a crashed step, a
    metric that raises or returns no finite number: all become a failed example
    (``score`` None, ``error`` says why); nothing is raised."""
    started = clock.monotonic()
    inputs = dict(example.get("inputs") or {})
    expected = example.get("expected")
    tokens, cost, output = 0, 0.0, None
    try:
        result = run_plan(
            plan,
            inputs,
            providers=providers,
            variables=configuration,
            clock=clock,
            progress=progress,
        )
        tokens, output = result.tokens, result.outputs
        cost = cost_of(result, prices or {})
        if result.status != "completed":
            where = f" at step {result.failed_step!r}" if result.failed_step else ""
            raise _RunFailed(f"the program {result.status}{where}: {result.error}")
        score = metric(example, result)
        if isinstance(score, bool):
            score = float(score)
        if not isinstance(score, int | float) or not math.isfinite(score):
            raise _RunFailed(f"the metric returned {score!r}, not a finite number")
        error = None
        value: float | None = float(score)
    except _RunFailed as exc:
        value, error = None, str(redact_value(str(exc)))
    except Exception as exc:  # a bad input, a step or metric bug: this example fails alone
        value, error = None, _failure(exc)
    duration = max(0.0, clock.monotonic() - started)
    # every field is made here (the score checked finite above): no validation per example
    record = ExampleResult.model_construct(
        example=index,
        score=value,
        error=error,
        inputs=inputs,
        expected=expected,
        output=output,
        tokens=tokens,
        duration=duration,
    )
    return record, cost


class _RunFailed(Exception):
    """The program did not complete, or the metric gave no number."""
