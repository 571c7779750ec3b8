"""The DSPy program and metric of dspy_qa.yaml (``otpy optimize examples/jobs/dspy_qa.yaml``),
imported by reference (``dspy_qa_program:program``) from beside the job file."""

from __future__ import annotations

from typing import Any

import dspy

program = dspy.ChainOfThought("question -> answer")


def mentions(example: Any, prediction: Any, trace: Any = None) -> float:
    """1.0 when the answer says the expected word."""
    return float(example.answer.lower() in str(prediction.answer).lower())
