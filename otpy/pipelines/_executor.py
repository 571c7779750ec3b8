"""Running a compiled pipeline in the calling thread: :func:`run_plan`.

Everything is checked before the first step runs (the inputs, and every step config as far
as the inputs and variables make it known). Then each step in order: its ``when`` decides
whether it runs, its templates are filled from the run so far, its config is validated
again with the real values, and its type's ``execute`` runs with a :class:`StepGateway`
that accounts for tokens and retries and fails over between providers. A failure (an
``OtpyError``) is handled as the step's ``on_error`` says; a crash (any other exception)
ends the run at once, is recorded, and is left in ``progress.crash`` for the caller (a
supervised worker re-raises it, so its supervisor sees the crash).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from otpy.agent import ToolRegistry
from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import OtpyError, PipelineError
from otpy.pipelines._gateway import ProviderDirectory, StepGateway
from otpy.pipelines._plan import Plan, PlannedStep
from otpy.pipelines._progress import RunProgress, StepEvent
from otpy.pipelines._result import PipelineResult, StepError, StepOutcome, StepStatus
from otpy.pipelines._templates import render, step_record
from otpy.providers import Usage
from otpy.steps import StepContext, StepResult, validate_step
from otpy.telemetry import (
    Telemetry,
    correlation,
    current_context,
    get_telemetry,
    redact_value,
)
from otpy.workspace import Workspace

__all__ = ["MAX_DEPTH", "RunProgress", "StepEvent", "run_plan"]

logger = logging.getLogger("otpy.pipelines")

MAX_DEPTH = 8
"""How deep pipelines may nest (a ``pipeline`` step runs another pipeline)."""


def _error(exc: BaseException, *, crash: bool = False) -> StepError:
    message = str(exc)
    notes = getattr(exc, "__notes__", None)
    if notes:
        message = "; ".join([message, *map(str, notes)])
    return StepError(type=type(exc).__name__, message=str(redact_value(message)), crash=crash)


class _Run:
    """One run of a plan (the state :func:`run_plan` works on)."""

    def __init__(
        self,
        plan: Plan,
        inputs: dict[str, Any],
        providers: ProviderDirectory | None,
        variables: dict[str, Any],
        clock: Clock,
        telemetry: Telemetry,
        progress: RunProgress,
        depth: int,
        tools: ToolRegistry | None = None,
        workspace: Workspace | None = None,
    ) -> None:
        self.plan = plan
        self.inputs = inputs
        self.providers = providers
        self.clock = clock
        self.telemetry = telemetry
        self.progress = progress
        self.depth = depth
        self.records: dict[str, Any] = {}
        self.context = StepContext(
            inputs=inputs,
            variables=variables,
            clock=clock,
            run_id=progress.run_id,
            run_pipeline=self.subrun,
            tools=tools,
            workspace=workspace,
        )
        self.started = clock.monotonic()
        self.spent: StepGateway | None = None

    @property
    def scope(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "steps": self.records, "vars": self.context.variables}

    def subrun(self, source: Any, inputs: Mapping[str, Any]) -> PipelineResult:
        """Run another pipeline inside this run's step (same thread, same trace);
        relative paths are relative to this pipeline's file."""
        if self.depth + 1 >= MAX_DEPTH:
            raise PipelineError(f"pipelines nest deeper than {MAX_DEPTH} levels")
        base = self.plan.base_dir
        if isinstance(source, str) and base is not None and "\n" not in source:
            candidate = base / source
            if candidate.exists():
                source = candidate
        from otpy.pipelines._plan import compile_pipeline

        plan = compile_pipeline(source, self.plan.table)
        progress = RunProgress(run_id=self.progress.run_id, cancel=self.progress.cancel)
        result = run_plan(
            plan,
            inputs,
            providers=self.providers,
            clock=self.clock,
            telemetry=self.telemetry,
            progress=progress,
            depth=self.depth + 1,
            tools=self.context.tools,
            workspace=self.context.workspace,
        )
        if progress.crash is not None:
            raise progress.crash  # a crash inside stays a crash of this run
        return result

    def outcome(self, planned: PlannedStep, status: StepStatus, **more: Any) -> StepOutcome:
        return StepOutcome(name=planned.name, type=planned.spec.type, status=status, **more)

    def execute(
        self, planned: PlannedStep, config: dict[str, Any]
    ) -> tuple[StepResult, StepGateway]:
        """Validate ``config`` with its real values and run the step type on it."""
        gateway = StepGateway(
            self.providers,
            clock=self.clock,
            capabilities=planned.entry.metadata.capabilities,
            failover=self.plan.pipeline.defaults.failover,
            step=planned.name,
        )
        self.context.providers = gateway if self.providers is not None else None
        self.spent = gateway  # what the step spent, also when it raises
        try:
            validated = validate_step(self.plan.table, config)
            result = planned.entry.step_cls().execute(validated, self.context)
        finally:
            self.context.providers = None
        if not isinstance(result, StepResult):
            raise TypeError(
                f"step type {planned.spec.type!r} returned {type(result).__name__}, not a "
                "StepResult"
            )
        return result, gateway

    def attempt(self, planned: PlannedStep, config: dict[str, Any]) -> dict[str, Any]:
        """Run ``planned`` with ``config``: the outcome fields, or raises what it raised
        (``spending()`` then tells what it spent)."""
        result, gateway = self.execute(planned, config)
        self.spent = None
        usage = gateway.usage if gateway.calls else result.usage
        return {
            "output": result.output,
            "text": result.text,
            "usage": usage,
            "provider": result.provider or gateway.provider,
            "model": result.model or gateway.model,
            "retries": result.retries + gateway.retries,
            "providers_tried": tuple(gateway.failed),
            "metadata": dict(result.metadata),
            "_record": step_record(result.model_copy(update={"usage": usage})),
        }

    def step(self, planned: PlannedStep) -> tuple[StepOutcome, Any]:
        """Run one step with its ``on_error``; returns its outcome and its record."""
        spec = planned.spec
        began = self.clock.monotonic()
        at = max(0.0, began - self.started)

        def done(status: StepStatus, fields: dict[str, Any]) -> StepOutcome:
            duration = max(0.0, self.clock.monotonic() - began)
            return self.outcome(planned, status, started=at, duration=duration, **fields)

        try:
            fields = self.attempt(planned, planned.render(self.scope))
        except OtpyError as exc:
            primary = _error(exc)
            spent = self.spending()
            if spec.on_error == "fallback" and spec.fallback is not None:
                return self.fallback(planned, primary, spent, done)
            return done("failed", {"error": primary, **spent}), _empty_record()
        record = fields.pop("_record")
        return done("ok", fields), record

    def spending(self) -> dict[str, Any]:
        """What the step that just failed spent (tokens, retries, providers that failed)."""
        gateway = self.spent
        if gateway is None:
            return {}
        self.spent = None
        return {
            "usage": gateway.usage,
            "retries": gateway.retries,
            "providers_tried": tuple(gateway.failed),
        }

    def fallback(
        self,
        planned: PlannedStep,
        primary: StepError,
        spent: dict[str, Any],
        done: Callable[[StepStatus, dict[str, Any]], StepOutcome],
    ) -> tuple[StepOutcome, Any]:
        spec = planned.spec
        assert spec.fallback is not None
        if spec.fallback.provider is not None:
            label = f"provider:{spec.fallback.provider}"
            target = planned
            config = planned.render(self.scope)
            config["provider"] = spec.fallback.provider
            config.pop("model", None)  # the fallback provider's own default model
        else:
            assert planned.fallback is not None
            target = planned.fallback
            label = target.name
            config = target.render(self.scope)
        self.telemetry.emit(
            "pipeline.step.fallback",
            metadata={"step": spec.name, "fallback": label, "error": primary.type},
        )
        try:
            fields = self.attempt(target, config)
        except OtpyError as exc:
            failed = _error(exc)
            message = f"{failed.message} (after the step itself failed: {primary})"
            error = StepError(type=failed.type, message=message)
            total = _add(spent, self.spending())
            return done("failed", {"error": error, "fallback": label, **total}), _empty_record()
        record = fields.pop("_record")
        fields.update(_add(spent, fields))
        return done("ok", {**fields, "fallback": label, "error": primary}), record

    def when(self, planned: PlannedStep) -> bool:
        condition = planned.spec.when
        if condition is None or isinstance(condition, bool):
            return condition is not False
        return bool(render(condition, self.scope, step=planned.name, field="when"))


def _add(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two steps' spending together (usage, retries, providers_tried)."""
    if not first:
        return {k: second[k] for k in ("usage", "retries", "providers_tried") if k in second}
    return {
        "usage": first["usage"] + second.get("usage", Usage()),
        "retries": first["retries"] + second.get("retries", 0),
        "providers_tried": (*first["providers_tried"], *second.get("providers_tried", ())),
    }


def _empty_record() -> dict[str, Any]:
    return step_record(StepResult())


def run_plan(
    plan: Plan,
    inputs: Mapping[str, Any] | None = None,
    *,
    providers: ProviderDirectory | None = None,
    variables: Mapping[str, Any] | None = None,
    clock: Clock = SYSTEM_CLOCK,
    telemetry: Telemetry | None = None,
    progress: RunProgress | None = None,
    depth: int = 0,
    tools: ToolRegistry | None = None,
    workspace: Workspace | None = None,
) -> PipelineResult:
    """Run ``plan`` in this thread and return its :class:`PipelineResult` (also when a
    step failed or crashed: see ``status``, ``error`` and ``progress.crash``).

    ``variables`` are the run's starting ``vars`` (an optimization job's configuration).
    ``tools`` are the tools agent steps may use (None: the built-in ones, Bash off);
    ``workspace`` is where their file tools work (None: ``./workspace``).
    Raises before any step runs: ConfigurationError for inputs that do not fit the
    declared ones, StepValidationError for a step config that the inputs make invalid.
    The run is one trace: correlation id = ``run_id`` (a nested run joins its parent's).
    """
    progress = progress if progress is not None else RunProgress()
    telemetry = telemetry if telemetry is not None else get_telemetry()
    resolved = plan.pipeline.resolve_inputs(inputs or {})
    start_vars = dict(variables or {})
    plan.check({"inputs": resolved, "vars": start_vars})
    run = _Run(
        plan, resolved, providers, start_vars, clock, telemetry, progress, depth, tools, workspace
    )
    parent = current_context().correlation_id
    if depth:
        return _traced(run, parent)
    with correlation(progress.run_id):
        return _traced(run, parent)


def _traced(run: _Run, parent: str | None) -> PipelineResult:
    meta = {"pipeline": run.plan.name, "run_id": run.progress.run_id, "depth": run.depth}
    if parent is not None and run.depth == 0:
        meta["parent_correlation_id"] = parent
    with run.telemetry.span("pipeline.run", meta) as span:
        result = _steps(run)
        span.set(status=result.status, tokens=result.tokens, failed_step=result.failed_step)
        return result


def _steps(run: _Run) -> PipelineResult:
    plan, progress = run.plan, run.progress
    total = len(plan.steps)
    status: str = "completed"
    error: StepError | None = None
    failed: str | None = None
    for index, planned in enumerate(plan.steps):
        if status != "completed" or progress.cancel.is_set():
            if status == "completed":
                status = "cancelled"
            progress.outcomes.append(run.outcome(planned, "not_run"))
            continue
        if progress.on_step is not None:
            progress.notify(StepEvent(progress.run_id, plan.name, planned.name, index, total))
        with run.telemetry.span(
            "pipeline.step",
            {"pipeline": plan.name, "step": planned.name, "type": planned.spec.type},
        ) as span:
            outcome, record = _one(run, planned)
            span.set(status=outcome.status, provider=outcome.provider, tokens=outcome.tokens)
        run.records[planned.name] = record
        run.context.outputs[planned.name] = record["output"]
        progress.outcomes.append(outcome)
        if progress.on_step is not None:
            event = StepEvent(progress.run_id, plan.name, planned.name, index, total, outcome)
            progress.notify(event)
        if outcome.status == "failed" and (
            planned.spec.on_error != "continue" or (outcome.error and outcome.error.crash)
        ):
            status, error, failed = "failed", outcome.error, planned.name
    outputs: dict[str, Any] = {}
    if status == "completed":
        try:
            outputs = _outputs(run)
        except OtpyError as exc:
            status, error = "failed", _error(exc)
    return PipelineResult(
        pipeline=plan.name,
        run_id=progress.run_id,
        status=status,  # type: ignore[arg-type]
        inputs=run.inputs,
        outputs=outputs,
        variables=dict(run.context.variables),
        steps=tuple(progress.outcomes),
        error=error,
        failed_step=failed,
        duration=max(0.0, run.clock.monotonic() - run.started),
    )


def _one(run: _Run, planned: PlannedStep) -> tuple[StepOutcome, Any]:
    """The step's outcome and record: skipped, run, or crashed."""
    try:
        if not run.when(planned):
            return run.outcome(planned, "skipped"), _empty_record()
        return run.step(planned)
    except OtpyError as exc:  # its `when` could not be read
        return run.outcome(planned, "failed", error=_error(exc)), _empty_record()
    except Exception as exc:  # a bug in the step type: the run ends, the caller is told
        run.progress.crash = exc
        logger.error("pipeline %r step %r crashed: %r", run.plan.name, planned.name, exc)
        return run.outcome(planned, "failed", error=_error(exc, crash=True)), _empty_record()


def _outputs(run: _Run) -> dict[str, Any]:
    declared = run.plan.pipeline.outputs
    if not declared:
        return {o.name: o.output for o in run.progress.outcomes if o.status == "ok"}
    return {
        name: render(template, run.scope, field=f"outputs.{name}")
        for name, template in declared.items()
    }
