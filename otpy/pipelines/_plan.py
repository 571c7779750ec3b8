"""Compiling a pipeline against the step table: every step type resolved and every step
config validated before anything runs.

A field that holds a template is checked as far as its value is known: with the run's
inputs and variables filled in when they are known (:meth:`Plan.check_inputs`), left as
text when it is text around placeholders, and checked when the step runs when its value
comes from an earlier step (a whole ``{{ steps.a.output }}``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from otpy.compat import check_versions
from otpy.errors import StepValidationError, UnknownStepError
from otpy.expr import Condition, compile_condition
from otpy.pipelines._check import body_specs
from otpy.pipelines._load import PipelineSource, load_pipeline, locate, position
from otpy.pipelines._prompt import PromptTools, render_config
from otpy.pipelines._schema import Pipeline
from otpy.pipelines._step_schema import OnError, PipelineStep, template_fields
from otpy.pipelines._templates import (
    OUTPUT_ROOT,
    ROOTS,
    only_ref,
    parse,
    refs_of,
    render_value,
    walk_strings,
)
from otpy.providers import ProviderTable
from otpy.steps import StepEntry, StepTable, validate_step

__all__ = ["Plan", "PlannedStep", "check_providers", "compile_pipeline"]


PROMPT_PLACEHOLDER: Final = "(prompt parts, built when the step runs)"
_STEP_ROOTS: Final = frozenset({"steps", "previous_response", "loop", OUTPUT_ROOT})


def _templated(value: Any) -> bool:
    return any("{{" in text for _, text in walk_strings(value)) or _has_parts(value)


def _has_parts(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(
            (key == "prompt" and isinstance(item, list)) or _has_parts(item)
            for key, item in value.items()
        )
    return isinstance(value, list) and any(_has_parts(item) for item in value)


def _without_parts(value: Any) -> Any:
    """``value`` with every prompt given as parts replaced by placeholder text."""
    if isinstance(value, Mapping):
        return {
            key: PROMPT_PLACEHOLDER if key == "prompt" and isinstance(item, list)
            else _without_parts(item)
            for key, item in value.items()
        }  # fmt: skip
    if isinstance(value, list):
        return [_without_parts(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step ready to run: its ``spec``, the registry ``entry`` of its type, its
    ``config`` (pipeline defaults applied, templates as written), the fields holding
    templates, its planned fallback step, the steps of a loop (``body``), what a failure
    does (``on_error``, with ``defaults.continue_on_error``), its compiled ``condition``,
    and where it is: ``owner`` (the top-level step it belongs to) and ``prefix`` (its
    field path inside the owner, ``steps[0].`` for a loop's step)."""

    spec: PipelineStep
    entry: StepEntry
    config: dict[str, Any]
    templated: frozenset[str]
    fallback: PlannedStep | None
    reads_steps: frozenset[str] = frozenset()
    """The templated fields that read an earlier step (known only when the step runs)."""
    body: tuple[PlannedStep, ...] = ()
    on_error: OnError = "fail"
    condition: Condition | None = None
    owner: str = ""
    prefix: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    def prepared(self, scope: Mapping[str, Any] | None) -> tuple[dict[str, Any], frozenset[str]]:
        """The config to check before the run: templated fields rendered where ``scope``
        (inputs and variables) has their values, text with placeholders kept as text, and
        the rest left out; returns it and the names left out."""
        config = dict(self.config)
        deferred: set[str] = set()
        for key in self.templated:
            value = _without_parts({key: config[key]})[key]
            if scope is not None and key not in self.reads_steps:
                try:
                    config[key] = render_value(value, scope, step=self.name, field=key)
                    continue
                except StepValidationError:
                    pass  # reads a step or a variable set later: known when the step runs
            if isinstance(value, str) and only_ref(parse(value)) is None:
                config[key] = value
                continue  # text around placeholders stays text
            if not any("{{" in text for _, text in walk_strings(value)):
                config[key] = value
                continue  # only prompt parts: checked as placeholder text
            del config[key]
            deferred.add(key)
        return config, frozenset(deferred)

    def render(self, scope: Mapping[str, Any], tools: PromptTools) -> dict[str, Any]:
        """The config with every template filled from ``scope`` (the run so far) and every
        prompt given as parts built into its text."""
        config = dict(self.config)
        prefix = self.prefix.rstrip(".") or None
        step = self.owner or self.name
        for key in self.templated:
            config[key] = render_config({key: config[key]}, scope, tools, step=step, field=prefix)[
                key
            ]
        return config

    def relabel(self, exc: StepValidationError) -> StepValidationError:
        """``exc`` (about this step) as an error of its owner, with the field's full path."""
        if not self.prefix:
            return exc
        field = f"{self.prefix}{exc.field}" if exc.field else self.prefix.rstrip(".")
        detail = str(exc).split(": ", 1)[-1] if str(exc).startswith("step ") else str(exc)
        return StepValidationError(detail, step=self.owner, field=field)


@dataclass(frozen=True, slots=True)
class Plan:
    """A pipeline compiled against one step table (a snapshot: later registrations do not
    change a plan). Make one with :func:`compile_pipeline`; run it with
    ``otpy.pipelines.run_plan`` or ``Runtime.run_pipeline``."""

    pipeline: Pipeline
    table: StepTable
    steps: tuple[PlannedStep, ...]
    origin: Path | None = None
    """The folder given to :func:`compile_pipeline` as ``base_dir``, if any."""

    @property
    def name(self) -> str:
        return self.pipeline.name

    @property
    def base_dir(self) -> Path | None:
        """The folder sub-pipeline paths are relative to: the ``base_dir`` it was compiled
        with, else the directory of the pipeline's file (None for text or a mapping)."""
        return self.origin if self.origin is not None else self.pipeline.base_dir

    def check(self, scope: Mapping[str, Any] | None) -> None:
        """Validate every step (fallback step, loop step) config with what ``scope``
        knows (None: nothing but the config). Raises StepValidationError naming the step,
        the field and, for a pipeline read from a file, the position."""
        for planned in self.steps:
            _check(self, planned, scope)


def _check(plan: Plan, planned: PlannedStep, scope: Mapping[str, Any] | None) -> None:
    config, deferred = planned.prepared(scope)
    try:
        validate_step(plan.table, config)
    except StepValidationError as exc:
        if exc.field is None or exc.field.split(".")[0].split("[")[0] not in deferred:
            raise locate(plan.pipeline, planned.relabel(exc)) from exc
    for inner in (planned.fallback, *planned.body):
        if inner is not None:
            _check(plan, inner, scope)


def _plan_step(
    pipeline: Pipeline, table: StepTable, spec: PipelineStep, owner: str, prefix: str = ""
) -> PlannedStep:
    try:
        entry = table.require(spec.type)
    except UnknownStepError as exc:
        where = position(pipeline, owner, f"{prefix}type")
        raise UnknownStepError(
            spec.type, exc.known, exc.suggestion, step=owner, where=where
        ) from None
    fields = set(entry.metadata.required_fields) | set(entry.metadata.optional_fields)
    config = pipeline.step_config(spec, accepted=fields)
    templated = frozenset(
        key for key, value in template_fields(spec.type, config).items() if _templated({key: value})
    )
    fallback = None
    if spec.fallback is not None and spec.fallback.step is not None:
        fallback = _plan_step(pipeline, table, spec.fallback.step, owner, f"{prefix}fallback.step.")
    reads_steps = frozenset(key for key in templated if _reads_steps({key: config[key]}))
    body = tuple(
        _plan_step(pipeline, table, inner, owner, inner_prefix)
        for inner, inner_prefix in body_specs(spec, owner, prefix)
    )
    on_error: OnError = spec.on_error
    if "on_error" not in spec.model_fields_set and pipeline.defaults.continue_on_error:
        on_error = "continue"
    condition = None
    if spec.condition is not None and "condition" not in fields:  # a while_loop's is its own
        condition = compile_condition(spec.condition, step=owner, field=f"{prefix}condition")
    return PlannedStep(
        spec, entry, config, templated, fallback, reads_steps, body, on_error, condition,
        owner, prefix,
    )  # fmt: skip


def _reads_steps(value: Any) -> bool:
    return _has_parts(value) or any(
        ref.segments[0] in _STEP_ROOTS or ref.segments[0] not in ROOTS
        for _, text in walk_strings(value)
        for ref in refs_of(parse(text))
    )


def compile_pipeline(
    source: PipelineSource, table: StepTable, *, base_dir: str | os.PathLike[str] | None = None
) -> Plan:
    """Load ``source`` (see ``load_pipeline``) and compile it against ``table``: every
    step type resolved (UnknownStepError naming the step, the closest match and the
    position), every requirement in ``requires`` met, every config validated as far as it
    is known before a run. ``base_dir``: the folder its relative sub-pipeline paths are
    relative to (default: its file's). Runs in the caller's thread."""
    pipeline = load_pipeline(source)
    versions = {entry.name: entry.metadata.version for entry in table.list(None)}
    for step_type, requirement in pipeline.requires.items():
        problems = check_versions({step_type: requirement}, versions)
        if problems:
            problem = problems[0]
            raise locate(
                pipeline,
                StepValidationError(
                    f"needs {step_type} {problem.required}: {problem.reason}",
                    field=f"requires.{step_type}",
                ),
            )
    steps = tuple(_plan_step(pipeline, table, spec, spec.name) for spec in pipeline.steps)
    plan = Plan(pipeline, table, steps, Path(base_dir) if base_dir is not None else None)
    plan.check(None)
    return plan


def check_providers(plan: Plan, providers: ProviderTable) -> None:
    """Every provider a step or a fallback names (as plain text, not a template) is in
    ``providers``; StepValidationError naming the step, the field, the closest
    registered name and the position otherwise."""
    known = [entry.name for entry in providers.list(None)]
    for planned in plan.steps:
        named = [("provider", planned.config.get("provider"))]
        if planned.fallback is not None:
            named.append(("fallback.step.provider", planned.fallback.config.get("provider")))
        if planned.spec.fallback is not None:
            named.append(("fallback.provider", planned.spec.fallback.provider))
        for field_name, name in named:
            if not isinstance(name, str) or "{{" in name or name in known:
                continue
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            message = (
                f"no provider {name!r} is registered{hint} "
                f"(registered: {', '.join(known) or 'none'})"
            )
            error = StepValidationError(message, step=planned.name, field=field_name)
            raise locate(plan.pipeline, error)
