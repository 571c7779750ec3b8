"""What the otpy.dspy tests share: a runtime with simulated providers we hold, a small QA
dataset and a simulated model that answers half of it right (so metrics and optimizers
have something to find), all offline."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dspy

import otpy
from otpy import Runtime
from otpy.clock import Clock
from otpy.providers import SimulatedProvider
from otpy.providers._prompt_formats import StructuredPrompt


def right_answer(question: str) -> str:
    """What the questions ``q<n>`` of :func:`examples` expect."""
    return f"A{question.removeprefix('q')}"


def half_right(prompt: StructuredPrompt) -> str:
    """The model: right on even-numbered questions, wrong on the others."""
    question = prompt.inputs.get("question", "")
    number = question.removeprefix("q")
    return right_answer(question) if number.isdigit() and int(number) % 2 == 0 else "no idea"


def simulated(name: str = "sim", **settings: Any) -> SimulatedProvider:
    """A simulated provider answering ``answer`` fields with :func:`half_right`."""
    values: Mapping[str, Any] = settings.pop("field_values", {"answer": half_right})
    return SimulatedProvider(name, seed=settings.pop("seed", 1), field_values=values, **settings)


@contextmanager
def runtime(
    *providers: SimulatedProvider,
    clock: Clock | None = None,
    limits: Mapping[str, Any] | None = None,
    store: str = ":memory:",
) -> Iterator[Runtime]:
    """A runtime (unique name, no plugins, no default provider, jobs in ``store``) with
    ``providers`` registered under their names (no timeout, plus ``limits``); stopped on
    exit."""
    config = {
        "name": f"dspy-{uuid.uuid4().hex[:8]}",
        "plugins": False,
        "providers": {},
        "jobs_store": store,
    }
    rt = otpy.start(config, clock=clock) if clock is not None else otpy.start(config)
    with rt:
        for provider in providers:
            rt.providers.register_provider(
                provider.name, provider, limits={"timeout": None, **(limits or {})}
            )
        yield rt


def examples(count: int, start: int = 0) -> list[Any]:
    """``q<n>`` -> ``A<n>`` examples with ``question`` as input."""
    return [
        dspy.Example(question=f"q{n}", answer=right_answer(f"q{n}")).with_inputs("question")
        for n in range(start, start + count)
    ]


def exact(example: Any, prediction: Any, trace: Any = None) -> float:
    """The metric: 1.0 when the answer is the expected one."""
    return float(prediction.answer == example.answer)


def searching() -> SimulatedProvider:
    """A simulated provider playing ReAct: it calls the ``search`` tool with the question,
    then finishes (answers by :func:`half_right`)."""

    def searched(prompt: StructuredPrompt) -> bool:
        return "observation_0" in prompt.inputs.get("trajectory", "")

    return simulated(
        field_values={
            "next_tool_name": lambda p: "finish" if searched(p) else "search",
            "next_tool_args": lambda p: {} if searched(p) else {"query": p.inputs["question"]},
            "answer": half_right,
        }
    )
