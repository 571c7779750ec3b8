"""What DSPy jobs in the tests (and in tests/dspy_job_worker.py's process) refer to by
``"module:attr"``: the program, the metric, and the simulated model's answers.

The model is right on even-numbered questions, and on every question when the
predictor's instructions are ones an optimizer proposed whose hash is even — so an
instruction optimizer (MIPROv2) has something to find, deterministically in any process.
"""

from __future__ import annotations

import hashlib
from typing import Any

import dspy

from otpy.providers import SimulatedProvider
from otpy.providers._prompt_formats import StructuredPrompt

DEFAULT = "Given the fields `question`, produce the fields `answer`."


def right_answer(question: str) -> str:
    return f"A{question.removeprefix('q')}"


def good_instructions(text: str) -> bool:
    """Whether instructions ``text`` make the model right on every question."""
    return text != DEFAULT and hashlib.sha256(text.encode()).digest()[0] % 2 == 0


def answer(prompt: StructuredPrompt) -> str:
    question = prompt.inputs.get("question", "")
    number = question.removeprefix("q")
    even = number.isdigit() and int(number) % 2 == 0
    return right_answer(question) if even or good_instructions(prompt.instructions) else "no idea"


def provider(name: str = "sim", **settings: Any) -> SimulatedProvider:
    """The simulated provider the DSPy job tests use (``answer`` fields by :func:`answer`)."""
    values = {"answer": answer, **settings.pop("field_values", {})}
    return SimulatedProvider(name, seed=settings.pop("seed", 1), field_values=values, **settings)


def program() -> Any:
    """The program: a fresh ``Predict`` (the reference names this factory)."""
    return dspy.Predict("question -> answer")


def exact(example: Any, prediction: Any, trace: Any = None) -> float:
    return float(prediction.answer == example.answer)


def examples(count: int, start: int = 0) -> list[Any]:
    return [
        dspy.Example(question=f"q{n}", answer=right_answer(f"q{n}")).with_inputs("question")
        for n in range(start, start + count)
    ]


MIPRO_JOB: dict[str, Any] = {
    "program": "dspy_job_fixtures:program",
    "optimizer": "MIPROv2",
    "metric": "dspy_job_fixtures:exact",
    "optimizer_options": {"auto": "light", "num_threads": 1},
    "compile_options": {"max_bootstrapped_demos": 1, "max_labeled_demos": 1},
    "threads": 1,
}
"""A single-threaded, seeded MIPROv2 job by references (about a hundred calls on
``examples(10)``): give it ``trainset`` and ``base_dir`` (this folder)."""
