"""Control-flow step types: ``for_loop``, ``while_loop`` and ``pipeline`` (nested pipelines).

They run the steps the executor compiled for them, through ``context.host`` (loops) and
``context.run_pipeline`` (nested pipelines); see each module's docstring.
"""

from __future__ import annotations

from otpy.steps._base import Step
from otpy.steps.flow._loops import (
    DEFAULT_MAX_PARALLEL,
    DEFAULT_WHILE_ITERATIONS,
    ForLoopStep,
    WhileLoopStep,
)
from otpy.steps.flow._nested import CONFIG_FIELDS, DEFAULT_MAX_DEPTH, PipelineStepType

__all__ = [
    "CONFIG_FIELDS",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_PARALLEL",
    "DEFAULT_WHILE_ITERATIONS",
    "FLOW_STEPS",
    "LOOP_TYPES",
    "ForLoopStep",
    "PipelineStepType",
    "WhileLoopStep",
]

FLOW_STEPS: dict[str, type[Step]] = {
    "for_loop": ForLoopStep,
    "while_loop": WhileLoopStep,
    "pipeline": PipelineStepType,
}
"""The control-flow step types by name."""
LOOP_TYPES: frozenset[str] = frozenset({"for_loop", "while_loop"})
"""Step types whose ``steps`` field is a list of steps the executor compiles and runs."""
