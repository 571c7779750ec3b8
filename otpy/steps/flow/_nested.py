"""The ``pipeline`` step type: run another pipeline as one step (pipeline_ex's nested
pipelines, and the fallback pipeline of ``fallback: {pipeline: ...}``).

::

    - name: summary
      type: pipeline
      pipeline_file: ./components/summarise.yaml    # or pipeline: {inline} or a path
      inputs:
        text: "{{ steps.fetch.output }}"            # one placeholder keeps the type
        depth: 3
      outputs:                                       # default: every step's output
        - summary                                    # that step's output
        - {path: analysis.metrics.accuracy, as: accuracy}
      config:
        inherit_context: true       # the child sees this run's global_vars (and its
                                    # inputs, when none are given)
        max_depth: 5                # how deep pipelines may nest below the top (default 10)
        workspace_dir: ./nested     # the child's workspace

The child runs in this run (same thread, same trace) with its own results and variables:
it reads only what ``inputs`` gives it (and ``global_vars`` with ``inherit_context``).
Relative paths are relative to this pipeline's file. Its output is the extracted outputs;
its tokens are all of the child's. A failed child is a failure of this step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from otpy.errors import PipelineError, StepValidationError
from otpy.steps._base import Step, StepContext, StepMetadata, StepResult

__all__ = ["CONFIG_FIELDS", "DEFAULT_MAX_DEPTH", "PipelineStepType"]

DEFAULT_MAX_DEPTH: Final = 10
"""How deep pipelines nest below the top one unless ``config.max_depth`` says."""
CONFIG_FIELDS: Final = {
    "inherit_context": bool,
    "max_depth": int,
    "workspace_dir": str,
}
"""The ``config`` keys otpy honours, with their types (``otpy.compat`` names the others)."""


def _label(config: Mapping[str, Any]) -> str:
    return str(config.get("name") or "pipeline")


def _check_outputs(outputs: Any, label: str) -> None:
    if not isinstance(outputs, list):
        raise StepValidationError(
            "must be a list of step names or {path: ..., as: ...} mappings",
            step=label,
            field="outputs",
        )
    for index, item in enumerate(outputs):
        where = f"outputs[{index}]"
        if isinstance(item, str) and item:
            continue
        if isinstance(item, Mapping) and isinstance(item.get("path"), str) and item["path"]:
            if "as" in item and not (isinstance(item["as"], str) and item["as"]):
                raise StepValidationError("'as' must be a name", step=label, field=f"{where}.as")
            unknown = sorted(set(item) - {"path", "as"})
            if unknown:
                raise StepValidationError(
                    f"unknown key {unknown[0]!r} (keys: path, as)", step=label, field=where
                )
            continue
        raise StepValidationError(
            f"must be a step name or {{path: step.field, as: name}}, got {item!r}",
            step=label,
            field=where,
        )


class PipelineStepType(Step):
    """Runs the pipeline in ``pipeline_file`` (a path) or ``pipeline`` (a path, YAML text
    or an inline mapping) with ``inputs``; see the module docstring."""

    metadata = StepMetadata(
        description="Run another pipeline as one step (a file or inline), with input "
        "mapping and output extraction; its outputs are this step's output.",
        optional_fields=(
            "pipeline", "pipeline_file", "pipeline_ref", "inputs", "outputs", "config",
        ),
    )  # fmt: skip

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        label = _label(checked)
        if checked.get("pipeline_ref") is not None:
            raise StepValidationError(
                "pipeline registries do not exist (pipeline_ex lists them as future too): "
                "name the file with pipeline_file or write the pipeline inline",
                step=label,
                field="pipeline_ref",
            )
        given = [key for key in ("pipeline", "pipeline_file") if checked.get(key) is not None]
        if len(given) != 1:
            raise StepValidationError(
                "give exactly one of pipeline_file (a path) or pipeline (inline)",
                step=label,
                field="pipeline_file" if not given else given[1],
            )
        source = checked[given[0]]
        if not isinstance(source, str | Mapping) or not source:
            raise StepValidationError(
                f"must be a path, YAML text or a mapping, got {type(source).__name__}",
                step=label,
                field=given[0],
            )
        inputs = checked.get("inputs")
        if inputs is not None and not isinstance(inputs, Mapping):
            raise StepValidationError(
                f"must be a mapping of input name to value, got {type(inputs).__name__}",
                step=label,
                field="inputs",
            )
        if checked.get("outputs") is not None:
            _check_outputs(checked["outputs"], label)
        options = checked.get("config")
        if options is not None and not isinstance(options, Mapping):
            raise StepValidationError("must be a mapping", step=label, field="config")
        for key, kind in CONFIG_FIELDS.items():
            value: Any = (options or {}).get(key)
            bad = value is not None and not isinstance(value, kind)
            if kind is int and isinstance(value, int):
                bad = isinstance(value, bool) or value < 1
            if bad:
                wanted = {bool: "true or false", int: "an integer >= 1", str: "a path"}[kind]
                raise StepValidationError(
                    f"must be {wanted}, got {value!r}", step=label, field=f"config.{key}"
                )
        return checked

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        if context.run_pipeline is None:
            raise PipelineError("a 'pipeline' step runs only inside a pipeline run")
        source = step.get("pipeline_file") or step["pipeline"]
        result = context.run_pipeline(
            source,
            dict(step.get("inputs") or {}),
            outputs=step.get("outputs"),
            config=dict(step.get("config") or {}),
        )
        result.raise_for_status()
        return StepResult(
            output=result.outputs,
            usage=result.usage,
            metadata={"pipeline": result.pipeline, "steps": len(result.steps)},
        )
