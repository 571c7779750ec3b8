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
from typing import Any

from otpy.compat import check_versions
from otpy.errors import StepValidationError, UnknownStepError
from otpy.pipelines._load import PipelineSource, load_pipeline, locate, position
from otpy.pipelines._schema import Pipeline, PipelineStep, template_fields
from otpy.pipelines._templates import Ref, only_ref, parse, render_value, walk_strings
from otpy.providers import ProviderTable
from otpy.steps import StepEntry, StepTable, validate_step

__all__ = ["Plan", "PlannedStep", "check_providers", "compile_pipeline"]


def _templated(value: Any) -> bool:
    return any("{{" in text for _, text in walk_strings(value))


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step ready to run: its ``spec``, the registry ``entry`` of its type, its
    ``config`` (pipeline defaults applied, templates as written), the fields holding
    templates, and its planned fallback step, if any."""

    spec: PipelineStep
    entry: StepEntry
    config: dict[str, Any]
    templated: frozenset[str]
    fallback: PlannedStep | None
    reads_steps: frozenset[str] = frozenset()
    """The templated fields that read an earlier step (known only when the step runs)."""

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
            value = config[key]
            if scope is not None and key not in self.reads_steps:
                try:
                    config[key] = render_value(value, scope, step=self.name, field=key)
                    continue
                except StepValidationError:
                    pass  # reads a step or a variable set later: known when the step runs
            if isinstance(value, str) and only_ref(parse(value)) is None:
                continue  # text around placeholders stays text
            del config[key]
            deferred.add(key)
        return config, frozenset(deferred)

    def render(self, scope: Mapping[str, Any]) -> dict[str, Any]:
        """The config with every template filled from ``scope`` (the run so far)."""
        config = dict(self.config)
        for key in self.templated:
            config[key] = render_value(config[key], scope, step=self.name, field=key)
        return config


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
        """Validate every step (and fallback step) config with what ``scope`` knows
        (None: nothing but the config). Raises StepValidationError naming the step, the
        field and, for a pipeline read from a file, the position."""
        for planned in self.steps:
            _check(self, planned, scope)
            if planned.fallback is not None:
                _check(self, planned.fallback, scope)


def _check(plan: Plan, planned: PlannedStep, scope: Mapping[str, Any] | None) -> None:
    config, deferred = planned.prepared(scope)
    try:
        validate_step(plan.table, config)
    except StepValidationError as exc:
        if exc.field is not None and exc.field.split(".")[0].split("[")[0] in deferred:
            return  # about a value that only exists when the step runs: checked then
        raise locate(plan.pipeline, exc) from exc


def _plan_step(pipeline: Pipeline, table: StepTable, spec: PipelineStep, owner: str) -> PlannedStep:
    try:
        entry = table.require(spec.type)
    except UnknownStepError as exc:
        where = position(pipeline, owner, "type")
        raise UnknownStepError(
            spec.type, exc.known, exc.suggestion, step=owner, where=where
        ) from None
    fields = set(entry.metadata.required_fields) | set(entry.metadata.optional_fields)
    config = pipeline.step_config(spec, accepted=fields)
    templated = frozenset(
        key for key, value in template_fields(spec.type, config).items() if _templated(value)
    )
    fallback = None
    if spec.fallback is not None and spec.fallback.step is not None:
        fallback = _plan_step(pipeline, table, spec.fallback.step, owner)
    reads_steps = frozenset(key for key in templated if _reads_steps(config[key]))
    return PlannedStep(spec, entry, config, templated, fallback, reads_steps)


def _reads_steps(value: Any) -> bool:
    return any(
        isinstance(part, Ref) and part.segments[0] == "steps"
        for _, text in walk_strings(value)
        for part in parse(text)
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
