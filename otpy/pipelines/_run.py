"""One run of a plan: the state :func:`otpy.pipelines.run_plan` works on, and running one
step in it (``when``/``condition``, templates and prompt parts, the step type, its
``output_schema`` and ``output_to_file``, ``on_error`` and fallbacks).

Each step runs in a :class:`~otpy.pipelines._frame.Frame`; a loop's steps run through a
:class:`~otpy.pipelines._host.LoopHost`.
"""

from __future__ import annotations

import json
import time
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otpy.agent import ToolRegistry
from otpy.clock import Clock
from otpy.errors import InvalidValueError, OtpyError, StepValidationError
from otpy.expr import MISSING, compile_condition, json_in
from otpy.pipelines._frame import Frame
from otpy.pipelines._gateway import ProviderDirectory, StepGateway
from otpy.pipelines._host import LoopHost
from otpy.pipelines._lookup import lookup_or_none
from otpy.pipelines._plan import Plan, PlannedStep
from otpy.pipelines._prompt import PromptTools
from otpy.pipelines._result import StepError, StepOutcome, StepStatus
from otpy.pipelines._templates import render, step_record
from otpy.providers import Usage
from otpy.steps import StepContext, StepResult, validate_step
from otpy.steps.llm import schema_problems
from otpy.telemetry import Telemetry, redact_value
from otpy.workspace import Workspace

__all__ = ["Frame", "Run", "RunEnv", "error_of"]


def error_of(exc: BaseException, *, crash: bool = False) -> StepError:
    """A step's error record (the message redacted, with the exception's notes)."""
    message = str(exc)
    notes = getattr(exc, "__notes__", None)
    if notes:
        message = "; ".join([message, *map(str, notes)])
    return StepError(type=type(exc).__name__, message=str(redact_value(message)), crash=crash)


@dataclass
class RunEnv:
    """Where a run works: ``workdir`` (relative directories start there), its
    ``workspace`` and ``output_dir``, ``global_vars``, the pipelines it runs inside
    (``chain``, outermost first), the ``outputs`` to extract (a nested run) and the
    process-wide ``session`` variables of this pipeline."""

    workdir: Path
    workspace: Workspace
    output_dir: Workspace
    global_vars: Mapping[str, Any]
    chain: tuple[str, ...] = ()
    outputs: list[Any] | None = None
    session: dict[str, Any] = field(default_factory=dict)
    home: Workspace | None = None
    """``workdir`` as a confining root (file parts the workspace lacks are read there)."""
    warned: set[str] = field(default_factory=set)
    """The documents whose ignored fields this run tree has warned about (once each)."""
    tools: ToolRegistry | None = None
    """The tools agent steps may use (None: the built-in ones under default limits)."""


class _Spent:
    __slots__ = ("gateway",)

    def __init__(self) -> None:
        self.gateway: StepGateway | None = None


class Run:
    """One run of a plan (the state the executor works on)."""

    def __init__(
        self,
        plan: Plan,
        inputs: dict[str, Any],
        providers: ProviderDirectory | None,
        variables: dict[str, Any],
        clock: Clock,
        telemetry: Telemetry,
        progress: Any,
        depth: int,
        env: RunEnv,
    ) -> None:
        self.plan = plan
        self.inputs = inputs
        self.providers = providers
        self.clock = clock
        self.telemetry = telemetry
        self.progress = progress
        self.depth = depth
        self.env = env
        self.root = Frame({}, {}, {}, variables)
        self.started = clock.monotonic()
        self.wall = clock.time()
        self.subrun: Callable[..., Any] | None = None
        self.sessions: Callable[[str], list[dict[str, str]]] | None = None
        workflow = plan.pipeline
        self.workflow = {
            "name": workflow.name, "description": workflow.description,
            "version": workflow.version, "metadata": dict(workflow.metadata),
            "variables": dict(workflow.variables), "environment": dict(workflow.environment),
        }  # fmt: skip
        moment = time.localtime(self.wall)
        self.builtins = {
            "timestamp": time.strftime("%Y%m%d_%H%M%S", moment),
            "date": time.strftime("%Y-%m-%d", moment),
            "execution_id": progress.run_id,
        }

    # -- scope ------------------------------------------------------------------------------

    def scope(self, frame: Frame, loop: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What templates and conditions see in ``frame`` (``loop`` overrides its loop)."""
        layers = [frame.locals or {}, self.env.session, frame.variables]
        return {
            "inputs": self.inputs,
            "steps": frame.records,
            "status": frame.status,
            "vars": ChainMap(*layers),
            "loop": loop if loop is not None else frame.loop,
            "global_vars": self.env.global_vars,
            "workflow": self.workflow,
            "previous": frame.previous,
            "builtins": self.builtins,
        }

    def holds(self, condition: Any, scope: Mapping[str, Any], *, step: str, field: str) -> bool:
        """Whether a condition holds in ``scope`` (paths that lead nowhere are null)."""
        compiled = compile_condition(condition, step=step, field=field)
        return compiled.holds(lambda segments: lookup_or_none(segments, scope), self.clock.time)

    def tools(self, frame: Frame, owner: str) -> PromptTools:
        def holds(condition: Any, where: str) -> bool:
            return self.holds(condition, self.scope(frame), step=owner, field=where)

        return PromptTools(self.env.workspace, self.sessions, holds, workdir=self.env.home)

    # -- one step ---------------------------------------------------------------------------

    def outcome(self, planned: PlannedStep, status: StepStatus, **more: Any) -> StepOutcome:
        return StepOutcome(name=planned.name, type=planned.spec.type, status=status, **more)

    def run_step(self, planned: PlannedStep, frame: Frame) -> tuple[StepOutcome, dict[str, Any]]:
        """Run ``planned`` in ``frame`` with its when/condition and on_error; record its
        result there; returns its outcome and record. Exceptions other than OtpyError
        (a bug in a step type) propagate."""
        try:
            scope = self.scope(frame)
            if not self.when(planned, scope):
                outcome, record = self.outcome(planned, "skipped"), empty_record()
            else:
                outcome, record = self.step(planned, frame, scope)
        except OtpyError as exc:  # its when/condition could not be read
            if isinstance(exc, StepValidationError):
                exc = planned.relabel(exc)
            outcome, record = self.outcome(planned, "failed", error=error_of(exc)), empty_record()
        frame.records[planned.name] = record
        frame.status[planned.name] = outcome.status
        frame.outputs[planned.name] = record["output"]
        frame.previous = planned.name
        return outcome, record

    def when(self, planned: PlannedStep, scope: Mapping[str, Any]) -> bool:
        condition = planned.spec.when
        if isinstance(condition, str):
            if not render(condition, scope, step=planned.owner, field=f"{planned.prefix}when"):
                return False
        elif condition is False:
            return False
        if planned.condition is None:
            return True
        resolve: Callable[[tuple[str | int, ...]], Any] = lambda s: lookup_or_none(s, scope)  # noqa: E731
        return planned.condition.holds(resolve, self.clock.time)

    def execute(
        self, planned: PlannedStep, config: dict[str, Any], frame: Frame, spent: _Spent
    ) -> tuple[StepResult, StepGateway]:
        """Validate ``config`` with its real values and run the step type on it."""
        gateway = StepGateway(
            self.providers,
            clock=self.clock,
            capabilities=planned.entry.metadata.capabilities,
            failover=self.plan.pipeline.defaults.failover,
            step=planned.name,
        )
        spent.gateway = gateway  # what the step spent, also when it raises
        context = StepContext(
            providers=gateway if self.providers is not None else None,
            inputs=self.inputs,
            outputs=frame.outputs,  # type: ignore[arg-type]
            variables=frame.variables,  # type: ignore[arg-type]
            clock=self.clock,
            run_id=self.progress.run_id,
            run_pipeline=self.subrun,
            session_variables=self.env.session,
            local_variables=frame.locals,
            workspace=self.env.workspace,
            tools=self.env.tools,
            output_dir=self.env.output_dir,
            host=LoopHost(self, planned, frame),
            pipeline=self.plan.name,
        )
        try:
            validated = validate_step(self.plan.table, config)
        except StepValidationError as exc:
            raise planned.relabel(exc) from None
        result = planned.entry.step_cls().execute(validated, context)
        if not isinstance(result, StepResult):
            raise TypeError(
                f"step type {planned.spec.type!r} returned {type(result).__name__}, not a "
                "StepResult"
            )
        self.after(planned, validated, result)
        return result, gateway

    def after(self, planned: PlannedStep, config: Mapping[str, Any], result: StepResult) -> None:
        """Check ``output_schema`` and write ``output_to_file``."""
        output = result.output
        schema = planned.spec.output_schema
        if schema is not None:
            value = json_in(output) if isinstance(output, str) else output
            problems = (
                ["the output is not JSON"] if value is MISSING else schema_problems(schema, value)
            )
            if problems:
                raise InvalidValueError(
                    variable=f"{planned.name}.output", value=output, rule="output_schema",
                    detail="; ".join(problems),
                )  # fmt: skip
        target = config.get("output_to_file")
        if target:
            text = (
                output
                if isinstance(output, str)
                else json.dumps(output, indent=2, ensure_ascii=False, default=str)
            )
            self.env.output_dir.write_text(
                str(target), text, what=f"step {planned.name!r} output_to_file"
            )

    def attempt(
        self, planned: PlannedStep, frame: Frame, spent: _Spent, provider: str | None = None
    ) -> dict[str, Any]:
        """Render and run ``planned``: the outcome fields, or raises what it raised
        (``spent.gateway`` then tells what it spent)."""
        config = planned.render(self.scope(frame), self.tools(frame, planned.owner))
        if provider is not None:
            config["provider"] = provider
            config.pop("model", None)  # the fallback provider's own default model
        result, gateway = self.execute(planned, config, frame, spent)
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

    def step(
        self, planned: PlannedStep, frame: Frame, scope: Mapping[str, Any]
    ) -> tuple[StepOutcome, dict[str, Any]]:
        """Run one step with its ``on_error``; returns its outcome and its record."""
        spec = planned.spec
        began = self.clock.monotonic()
        at = max(0.0, began - self.started)

        def done(status: StepStatus, fields: dict[str, Any]) -> StepOutcome:
            duration = max(0.0, self.clock.monotonic() - began)
            return self.outcome(planned, status, started=at, duration=duration, **fields)

        spent = _Spent()
        try:
            fields = self.attempt(planned, frame, spent)
        except OtpyError as exc:
            primary = error_of(exc)
            if planned.on_error == "fallback" and spec.fallback is not None:
                return self.fallback(planned, frame, primary, spending(spent), done)
            return done("failed", {"error": primary, **spending(spent)}), empty_record()
        record = fields.pop("_record")
        return done("ok", fields), record

    def fallback(
        self,
        planned: PlannedStep,
        frame: Frame,
        primary: StepError,
        spent: dict[str, Any],
        done: Callable[[StepStatus, dict[str, Any]], StepOutcome],
    ) -> tuple[StepOutcome, dict[str, Any]]:
        spec = planned.spec
        assert spec.fallback is not None
        provider = spec.fallback.provider
        target = planned if provider is not None else planned.fallback
        assert target is not None
        label = f"provider:{provider}" if provider is not None else target.name
        self.telemetry.emit(
            "pipeline.step.fallback",
            metadata={"step": spec.name, "fallback": label, "error": primary.type},
        )
        again = _Spent()
        try:
            fields = self.attempt(target, frame, again, provider)
        except OtpyError as exc:
            failed = error_of(exc)
            message = f"{failed.message} (after the step itself failed: {primary})"
            error = StepError(type=failed.type, message=message)
            total = add_spending(spent, spending(again))
            return done("failed", {"error": error, "fallback": label, **total}), empty_record()
        record = fields.pop("_record")
        fields.update(add_spending(spent, fields))
        return done("ok", {**fields, "fallback": label, "error": primary}), record


def spending(spent: _Spent) -> dict[str, Any]:
    """What a step that failed spent (tokens, retries, providers that failed)."""
    gateway = spent.gateway
    if gateway is None:
        return {}
    return {
        "usage": gateway.usage,
        "retries": gateway.retries,
        "providers_tried": tuple(gateway.failed),
    }


def add_spending(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two steps' spending together (usage, retries, providers_tried)."""
    if not first:
        return {k: second[k] for k in ("usage", "retries", "providers_tried") if k in second}
    return {
        "usage": first["usage"] + second.get("usage", Usage()),
        "retries": first["retries"] + second.get("retries", 0),
        "providers_tried": (*first["providers_tried"], *second.get("providers_tried", ())),
    }


def empty_record() -> dict[str, Any]:
    """The record of a step that did not run (or failed)."""
    return step_record(StepResult())
