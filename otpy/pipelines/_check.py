"""Checks of a whole pipeline before anything runs: every template parses, every
``steps.X`` names a step that has run by then, every ``inputs.X`` a declared input,
``loop.*`` appears only inside a loop, every prompt part is well formed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from otpy.errors import StepValidationError
from otpy.pipelines._inputs import shown
from otpy.pipelines._lookup import known_names, step_span
from otpy.pipelines._problems import from_pydantic
from otpy.pipelines._prompt import check_parts, part_templates
from otpy.pipelines._schema import Pipeline
from otpy.pipelines._step_schema import PipelineStep, template_fields
from otpy.pipelines._templates import (
    OUTPUT_ROOT,
    Ref,
    is_path,
    only_ref,
    parse,
    refs_of,
    walk_strings,
)
from otpy.steps.flow import LOOP_TYPES

__all__ = ["body_specs", "check_references", "step_templates"]


def body_specs(spec: PipelineStep, owner: str, prefix: str) -> list[tuple[PipelineStep, str]]:
    """The steps of a loop step (``spec``) as models, each with its field prefix
    (``steps[0].``); StepValidationError naming ``owner`` and the field otherwise."""
    body = spec.fields.get("steps")
    if spec.type not in LOOP_TYPES or not isinstance(body, list):
        return []
    specs = []
    seen: dict[str, int] = {}
    for index, item in enumerate(body):
        where = f"{prefix}steps[{index}]"
        try:
            inner = PipelineStep.model_validate(item)
        except StepValidationError as exc:
            raise StepValidationError(
                str(exc).split(": ", 2)[-1],
                step=owner,
                field=f"{where}.{exc.field}" if exc.field else where,
            ) from None
        except pydantic.ValidationError as exc:
            problem = from_pydantic(exc, {"steps": body})
            field = f"{where}.{problem.field}" if problem.field else where
            raise StepValidationError(
                str(problem).split(": ", 2)[-1], step=owner, field=field
            ) from None
        if inner.name in seen:
            raise StepValidationError(
                f"duplicate step name: {prefix}steps[{seen[inner.name]}] and {where} are both "
                f"{inner.name!r}",
                step=owner,
                field=f"{where}.name",
            )
        seen[inner.name] = index
        specs.append((inner, f"{where}."))
    return specs


def step_templates(spec: PipelineStep, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every template of a step's own fields (prompt parts' too), with its field."""
    config = template_fields(spec.type, spec.config)
    yield from _templates_in(config, prefix.rstrip(".") or None)


def _templates_in(value: Any, field: str | None) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{field}.{key}" if field else str(key)
            if key == "prompt" and isinstance(item, list):
                yield from part_templates(item, where)
            else:
                yield from _templates_in(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _templates_in(item, f"{field or ''}[{index}]")
    else:
        for found, text in walk_strings(value, field):
            yield found or "", text


def _prompts(value: Any, field: str | None) -> Iterator[tuple[str, list[Any]]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{field}.{key}" if field else str(key)
            if key == "prompt" and isinstance(item, list):
                yield where, item
            else:
                yield from _prompts(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _prompts(item, f"{field or ''}[{index}]")


@dataclass
class _Where:
    owner: str
    top: int
    in_loop: bool
    own: str


class _Checker:
    """The checks of one pipeline (see :func:`check_references`)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.first_seen: dict[str, int] = {}
        self._collect(pipeline.steps, None)

    def _collect(self, steps: Any, top: int | None) -> None:
        for index, spec in enumerate(steps):
            at = index if top is None else top
            self.first_seen.setdefault(spec.name, at)
            inner = (
                [s for s, _ in body_specs(spec, spec.name, "")] if spec.type in LOOP_TYPES else []
            )
            self._collect(inner, at)

    def run(self) -> None:
        for index, step in enumerate(self.pipeline.steps):
            self.step(step, _Where(step.name, index, False, step.name), "")
        end = len(self.pipeline.steps)
        for name, template in self.pipeline.outputs.items():
            self.template(template, _Where("", end, True, ""), f"outputs.{name}", None)

    def step(self, spec: PipelineStep, where: _Where, prefix: str) -> None:
        owner = where.owner
        if isinstance(spec.when, str):
            field = f"{prefix}when"
            whole = only_ref(parse(spec.when, step=owner, field=field))
            if not isinstance(whole, Ref):
                bare = spec.when.strip()
                hint = f"; did you mean '{{{{ {bare} }}}}'?" if is_path(bare) else ""
                raise StepValidationError(
                    "must be one placeholder such as '{{ steps.check.output.ok }}' (a false, "
                    f"0, empty or null value skips the step) or true/false, got "
                    f"{shown(spec.when)}{hint}",
                    step=owner,
                    field=field,
                )
            self.reference(whole, where, field)
        own = template_fields(spec.type, spec.config)
        for field, parts in _prompts(own, prefix.rstrip(".") or None):
            check_parts(parts, step=owner, field=field)
            for index, part in enumerate(parts):
                if part.get("type") == "previous_response":
                    self.step_name(str(part["step"]).split("."), where, f"{field}[{index}].step")
        for field, text in step_templates(spec, prefix):
            self.template(text, where, field, spec.name)
        if spec.fallback is not None and spec.fallback.step is not None:
            self.step(spec.fallback.step, where, f"{prefix}fallback.step.")
        for inner, inner_prefix in body_specs(spec, owner, prefix):
            self.step(inner, _Where(owner, where.top, True, inner.name), inner_prefix)

    def template(self, text: str, where: _Where, field: str, own: str | None) -> None:
        for ref in refs_of(parse(text, step=where.owner or None, field=field)):
            self.reference(ref, where, field)

    def reference(self, ref: Ref, where: _Where, field: str) -> None:
        root, *rest = ref.segments
        if root in ("steps", OUTPUT_ROOT) and rest:
            self.step_name(rest, where, field)
        elif root == "inputs" and rest and not self.pipeline.open_inputs:
            if rest[0] not in self.pipeline.inputs:
                known = known_names(self.pipeline.inputs)
                raise StepValidationError(
                    f"inputs.{rest[0]}: no input {rest[0]!r} (known: {known})",
                    step=where.owner or None,
                    field=field,
                )
        elif root == "loop" and not where.in_loop:
            raise StepValidationError(
                f"{ref.path}: loop.* is set only inside the steps of a for_loop or while_loop",
                step=where.owner or None,
                field=field,
            )

    def step_name(self, rest: list[str], where: _Where, field: str) -> None:
        owner = where.owner or None
        span = step_span(rest, self.first_seen)
        if span == 0:
            known = known_names(self.first_seen)
            raise StepValidationError(
                f"steps.{rest[0]}: no step {rest[0]!r} (steps: {known})", step=owner, field=field
            )
        name = ".".join(rest[:span])
        if where.in_loop:
            return  # a loop's steps read the previous iteration's results too
        at = self.first_seen[name]
        if name == where.own:
            raise StepValidationError(
                f"steps.{name}: a step cannot read its own result", step=owner, field=field
            )
        if at >= where.top:
            raise StepValidationError(
                f"steps.{name}: step {name!r} (steps[{at}]) runs after step {where.own!r} "
                f"(steps[{where.top}]); a step reads only the steps before it",
                step=owner,
                field=field,
            )


def check_references(pipeline: Pipeline) -> None:
    """Check every template of ``pipeline`` before anything runs: each parses, each
    ``when`` is one placeholder, each ``inputs.X`` is a declared input (any name for a
    pipeline_ex workflow that declares none), each ``steps.X`` (and each prompt part's
    ``previous_response`` step) a step that runs before it (a loop's steps may read any
    step of the pipeline), ``loop.*`` only inside a loop; every prompt part well formed.

    Raises StepValidationError naming the step, the field and the reference; a reference
    to a later step names both steps. Runs in the caller's thread; parsing is cached.
    """
    _Checker(pipeline).run()
