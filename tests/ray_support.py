"""What the Ray executor tests share: a program on built-in steps only, a metric the Ray
workers import by reference (``ray_support:score``: this folder is on their PYTHONPATH),
the runtime configs, and the view of a job's trials two runs are compared by.

The simulated provider's answer is a pure function of the request and its seed, and the
metric a pure function of the answer: a candidate scores the same in any process, so a
job run on threads and on Ray with the same seed must checkpoint the same trials.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from job_support import PLAIN_QA

import otpy
from otpy.optimize import register_metric

TESTS = str(Path(__file__).resolve().parent)

PROGRAM = PLAIN_QA
"""A program of one provider call, on built-in step types only."""

SLOW_STEPS = 10
_CALL = (
    '  - name: s{i}\n    type: claude\n    prompt: "{{{{ vars.instruction }}}} {i} '
    '{{{{ inputs.q }}}}"\n'
)
SLOW = "name: slow\ninputs:\n  q: {type: string}\nsteps:\n" + "".join(
    _CALL.format(i=i) for i in range(SLOW_STEPS)
)
"""A program of ten provider calls in a row: cancel stops it between two of them."""

SPACE: dict[str, Any] = {
    "temperature": {"low": 0.0, "high": 1.0},
    "instruction": ["Answer briefly.", "Think step by step.", "Show the sum.", "Be careful."],
}
TRAINSET = [{"inputs": {"q": f"{i}+{i}"}, "expected": str(2 * i)} for i in range(4)]


def score(example: Any, result: Any) -> float:
    """A score in [0, 1] drawn from the answer's text (the same in every process)."""
    text = str(result.outputs.get("answer", result.text))
    return int(hashlib.sha256(text.encode()).hexdigest()[:4], 16) / 0xFFFF


register_metric("ray_score", score, replace=True)
"""By name, for job files (a worker gets it by reference: ``ray_support:score``)."""


def job_file(**options: Any) -> str:
    """A job file of :data:`PROGRAM` with metric ``ray_score`` and ``options``."""
    fields = {
        "program": yaml.safe_load(PROGRAM), "space": SPACE, "trainset": TRAINSET,
        "metric": "ray_score", **options,
    }  # fmt: skip
    return yaml.safe_dump(fields, sort_keys=False)


def config(name: str, executor: str = "ray", **providers: Any) -> dict[str, Any]:
    """A runtime whose jobs run on ``executor`` by default, on the providers given (by
    default one simulated provider ``simulated``)."""
    return {
        "name": name,
        "plugins": False,
        "jobs_store": ":memory:",
        "jobs": {"executor": {"type": executor, "threads": 16}},
        "providers": providers or {"simulated": {"options": {"seed": 3}}},
    }


def trials(rt: otpy.Runtime, job_id: str) -> list[tuple[Any, ...]]:
    """A job's checkpointed trials as comparable tuples (per-example scores included)."""
    return [
        (
            t.index, t.status, sorted(t.configuration.items()), t.score, t.tokens, t.errors,
            [(e.example, e.score, e.tokens) for e in t.examples],
        )
        for t in rt.jobs.trials(job_id)
    ]  # fmt: skip
