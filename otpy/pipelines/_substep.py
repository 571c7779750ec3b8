"""The ``pipeline`` step type: run another pipeline as one step (a sub-pipeline, or the
fallback pipeline of ``fallback: {pipeline: ...}``).

::

    - name: summary
      type: pipeline
      pipeline: summarise.yaml          # relative to this pipeline's file; or inline
      inputs: {text: "{{ steps.fetch.output }}"}

Its output is the sub-pipeline's ``outputs``; its tokens are all of the sub-run's. A
failed sub-run is a failure of this step (a ``PipelineError``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otpy.errors import PipelineError, StepValidationError
from otpy.pipelines._result import PipelineResult
from otpy.steps import Step, StepContext, StepMetadata, StepResult

__all__ = ["PipelineStepType"]


class PipelineStepType(Step):
    """Runs the pipeline in ``pipeline`` (a path, YAML text or a mapping) with ``inputs``
    (templates filled from this run) inside this run, in the same trace."""

    metadata = StepMetadata(
        description="Run another pipeline as one step; its outputs are this step's output.",
        required_fields=("pipeline",),
        optional_fields=("inputs",),
        version="1.0.0",
    )

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        label = str(checked.get("name") or "pipeline")
        source = checked["pipeline"]
        if not isinstance(source, str | Mapping) or not source:
            raise StepValidationError(
                f"must be a path, YAML text or a mapping, got {type(source).__name__}",
                step=label,
                field="pipeline",
            )
        inputs = checked.get("inputs")
        if inputs is not None and not isinstance(inputs, Mapping):
            raise StepValidationError(
                f"must be a mapping of input name to value, got {type(inputs).__name__}",
                step=label,
                field="inputs",
            )
        return checked

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        if context.run_pipeline is None:
            raise PipelineError("a 'pipeline' step runs only inside a pipeline run")
        result = context.run_pipeline(step["pipeline"], dict(step.get("inputs") or {}))
        if not isinstance(result, PipelineResult):  # pragma: no cover - the executor's own
            raise TypeError(f"run_pipeline returned {type(result).__name__}")
        result.raise_for_status()
        return StepResult(
            output=result.outputs,
            usage=result.usage,
            metadata={"pipeline": result.pipeline, "steps": len(result.steps)},
        )
