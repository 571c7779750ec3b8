"""``PipelineModule``: an otpy YAML pipeline as a DSPy program whose one-prompt steps are
named predictors, so that any DSPy optimizer tunes their instructions and demos.

A call runs the pipeline with otpy's own executor (inputs, templates, ``when``,
``on_error``, fallbacks, the steps that are not tuned, the outputs), in the calling
thread; each tuned step runs as a ``dspy.predict`` step whose input fields the executor
renders and whose predictor answers through the DSPy LM in force (the step's own provider,
through ``otpy.dspy.lm``, when it names one and a runtime was given). DSPy sees the
predictor calls (traces, demos) as in any program. ``otpy.dspy.save_pipeline`` writes the
tuned pipeline back as YAML.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any, ClassVar, Protocol

import dspy  # type: ignore[import-untyped]

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.dspy._lm import lm as make_lm
from otpy.dspy._pipeline_steps import PREDICT_TYPE, TunedStep, predict_document, tuned_steps
from otpy.errors import ConfigurationError, PipelineError, StepValidationError
from otpy.pipelines import (
    Pipeline,
    PipelineSource,
    PipelineStepType,
    Plan,
    ProviderDirectory,
    RunProgress,
    compile_pipeline,
    run_plan,
)
from otpy.steps import Step, StepContext, StepEntry, StepMetadata, StepResult, StepTable
from otpy.steps.llm import builtin_step_types

__all__ = ["PipelineModule"]

_ACTIVE: ContextVar[PipelineModule | None] = ContextVar("otpy_dspy_pipeline", default=None)


class _Steps(Protocol):
    @property
    def table(self) -> StepTable: ...


class PipelineRuntime(Protocol):
    """What a PipelineModule uses of a runtime: its step types, providers and clock."""

    @property
    def steps(self) -> _Steps: ...

    @property
    def providers(self) -> ProviderDirectory: ...

    @property
    def clock(self) -> Clock: ...


class _Shared:
    """What every copy of a module shares (DSPy deep-copies modules; plans stay one)."""

    def __init__(
        self,
        plan: Plan,
        predict_plan: Plan,
        tuned: tuple[TunedStep, ...],
        runtime: PipelineRuntime | None,
        variables: Mapping[str, Any],
    ) -> None:
        self.plan = plan
        self.predict_plan = predict_plan
        self.tuned = tuned
        self.runtime = runtime
        self.variables = dict(variables)
        self.lms: dict[tuple[str, str | None], Any] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> _Shared:
        return self


class PipelineModule(dspy.Module):  # type: ignore[misc]
    """``pipeline`` (a path, YAML text, a mapping, a Pipeline or a compiled Plan) as a
    DSPy module: ``step_predictors`` maps each tuned step's name to its ``dspy.Predict``
    (``named_predictors()`` lists them by step name); calling it with the pipeline's
    inputs returns a ``dspy.Prediction`` of the pipeline's outputs.

    ``runtime`` gives the step types (else the built-in ones) and the providers of the
    steps that are not tuned and of tuned steps that name a provider; ``tune`` names the
    steps to tune (default: every one-prompt step); ``variables`` are the run's ``vars``.
    Raises ConfigurationError or the pipeline's own errors (StepValidationError, ...) at
    construction. A call runs in the caller's thread; a run that does not complete raises
    the step's crash, or PipelineError carrying the result.
    """

    def __init__(
        self,
        pipeline: PipelineSource | Plan,
        *,
        runtime: PipelineRuntime | None = None,
        tune: Iterable[str] | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        table = _table(runtime)
        plan = pipeline if isinstance(pipeline, Plan) else compile_pipeline(pipeline, table)
        reserved = frozenset(name for name in dir(dspy.Signature) if not name.startswith("__"))
        tuned = tuned_steps(plan, None if tune is None else list(tune), reserved=reserved)
        if not tuned:
            raise ConfigurationError(
                f"pipeline {plan.name!r} has no one-prompt step (claude, gemini, claude_smart) "
                "to tune"
            )
        entry = StepEntry(PREDICT_TYPE, _PredictStep, None, _PredictStep.metadata, 0.0)
        predict_plan = compile_pipeline(
            predict_document(plan.pipeline, tuned),
            plan.table.with_entry(entry, replace=True),
            base_dir=plan.base_dir,
        )
        self._shared = _Shared(plan, predict_plan, tuned, runtime, variables or {})
        self.step_predictors: dict[str, Any] = {
            step.name: dspy.Predict(_signature(step)) for step in tuned
        }

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline as it was given (untuned)."""
        return self._shared.plan.pipeline

    @property
    def plan(self) -> Plan:
        return self._shared.plan

    @property
    def tuned(self) -> tuple[TunedStep, ...]:
        """The tuned steps: their fields, output and initial instructions."""
        return self._shared.tuned

    def named_parameters(self) -> list[tuple[str, Any]]:
        """The predictors by step name (what DSPy's optimizers tune and save)."""
        return list(self.step_predictors.items())

    def forward(self, **inputs: Any) -> Any:
        """Run the pipeline on ``inputs``; a ``dspy.Prediction`` of its outputs."""
        shared = self._shared
        runtime = shared.runtime
        progress = RunProgress()
        token = _ACTIVE.set(self)
        try:
            result = run_plan(
                shared.predict_plan,
                inputs,
                providers=runtime.providers if runtime is not None else None,
                variables=shared.variables,
                clock=runtime.clock if runtime is not None else SYSTEM_CLOCK,
                progress=progress,
            )
        finally:
            _ACTIVE.reset(token)
        if progress.crash is not None:
            raise progress.crash
        if result.status != "completed":
            where = f" at step {result.failed_step!r}" if result.failed_step else ""
            raise PipelineError(
                f"pipeline {result.pipeline!r} {result.status}{where}: {result.error}",
                result=result,
                step=result.failed_step,
            )
        return dspy.Prediction(**result.outputs)

    def predict_step(self, step: Mapping[str, Any]) -> StepResult:
        """Answer the rendered ``dspy.predict`` step ``step`` with its predictor."""
        name = step["name"]
        predictor = self.step_predictors.get(name)
        if predictor is None:
            raise ConfigurationError(f"this PipelineModule has no predictor for step {name!r}")
        fields = {key: _text(value) for key, value in step["fields"].items()}
        config = {key: step[key] for key in ("temperature", "max_tokens") if step.get(key)}
        if step.get("stop"):
            config["stop"] = list(step["stop"])
        extra: dict[str, Any] = {"config": config}
        if step.get("provider") and self._shared.runtime is not None:
            extra["lm"] = self._lm(step["provider"], step.get("model"))
        prediction = predictor(**fields, **extra)
        output_name = next(t.output for t in self._shared.tuned if t.name == name)
        output = prediction[output_name]
        return StepResult(output=output, text=_text(output), metadata={"predictor": name})

    def _lm(self, provider: str, model: str | None) -> Any:
        shared = self._shared
        key = (provider, model)
        found = shared.lms.get(key)
        if found is None:
            assert shared.runtime is not None
            if model is None:
                made = make_lm(shared.runtime, provider)
            else:
                made = make_lm(shared.runtime, provider, model=model)
            found = shared.lms.setdefault(key, made)
        return found


class _PredictStep(Step):
    """``dspy.predict``: a tuned step inside a PipelineModule's run (its predictor answers
    with the rendered ``fields``); it runs nowhere else."""

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="A step tuned by DSPy: the PipelineModule's predictor answers.",
        required_fields=("fields",),
        optional_fields=("temperature", "max_tokens", "stop"),
        capabilities=("text",),
    )

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        if not isinstance(checked.get("fields"), Mapping):
            raise StepValidationError(
                "must map input field names to templates", step=checked.get("name"), field="fields"
            )
        return checked

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        module = _ACTIVE.get()
        if module is None:
            raise ConfigurationError(f"a {PREDICT_TYPE} step runs only inside a PipelineModule")
        return module.predict_step(step)


def _signature(step: TunedStep) -> Any:
    fields: dict[str, Any] = {
        field.name: (str, dspy.InputField(desc=f"{{{{ {field.path} }}}}")) for field in step.inputs
    }
    fields[step.output] = (str, dspy.OutputField(desc=f"the output of step {step.name!r}"))
    return dspy.make_signature(fields, step.instructions or f"Do what step {step.name!r} does.")


def _table(runtime: PipelineRuntime | None) -> StepTable:
    if runtime is not None:
        return runtime.steps.table
    types: dict[str, type[Step]] = {**builtin_step_types(), "pipeline": PipelineStepType}
    return StepTable(
        {name: StepEntry(name, cls, None, cls.metadata, 0.0) for name, cls in types.items()}
    )


def _text(value: Any) -> str:
    """A value as text, the way a template writes it into a prompt."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)
