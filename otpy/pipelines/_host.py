"""The executor side of a running loop (:class:`LoopHost`, ``context.host``) and the one
way a data source names a value (:func:`resolve_source`: a for_loop's ``data_source``, a
data_transform's ``input_source`` and ``right_source``).

A data source is a list as it is, a ``{{ template }}``, or a path: ``steps.scan.files``,
``previous_response`` (the output of the step that ran before), ``previous_response:step``
or ``previous_response:step.field`` (that step's output; pipeline_ex's data_transform form),
``previous_response:field`` (a field of the previous output; its for_loop form),
``step:field``, ``loop.item.children``, ``state.x``/``inputs.x``, or a bare name: a
variable first, then a step's output, then an input or a global var.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Protocol

from otpy.clock import Clock
from otpy.errors import ConfigurationError
from otpy.pipelines._frame import Frame
from otpy.pipelines._lookup import ROOTS, Missing, lookup, step_span
from otpy.pipelines._plan import Plan, PlannedStep
from otpy.pipelines._progress import RunProgress, StepEvent
from otpy.pipelines._result import StepOutcome
from otpy.pipelines._templates import render
from otpy.providers import Usage
from otpy.steps import BodyRun

__all__ = ["LoopHost", "resolve_source"]


class Run(Protocol):
    """What a loop host needs of the run it belongs to (:class:`otpy.pipelines._run.Run`)."""

    plan: Plan
    clock: Clock
    progress: RunProgress

    def scope(self, frame: Frame, loop: Mapping[str, Any] | None = None) -> dict[str, Any]: ...

    def holds(self, condition: Any, scope: Mapping[str, Any], *, step: str, field: str) -> bool: ...

    def run_step(
        self, planned: PlannedStep, frame: Frame
    ) -> tuple[StepOutcome, dict[str, Any]]: ...


_SPLIT: Final = re.compile(r"[:.]")


def _output_of(parts: list[str], span: int) -> tuple[str, ...]:
    return ("steps", *parts[:span], "result", *parts[span:])


def resolve_source(source: Any, scope: Mapping[str, Any], *, step: str, field: str) -> Any:
    """The value ``source`` names in ``scope`` (see the module docstring);
    ConfigurationError naming the step, the field and what is missing."""
    if isinstance(source, list | tuple):
        return list(source)
    if not isinstance(source, str):
        return source
    text = source.strip()
    if "{{" in text:
        return render(text, scope, step=step, field=field)
    records = scope.get("steps") or {}
    try:
        if text == "previous_response" or text.startswith(
            ("previous_response:", "previous_response.")
        ):
            rest = text[len("previous_response") :].lstrip(":.")
            parts = [p for p in _SPLIT.split(rest) if p] if rest else []
            span = step_span(parts, records)
            return lookup(_output_of(parts, span) if span else ("previous_response", *parts), scope)
        if ":" in text:
            name, _, rest = text.partition(":")
            return lookup(
                ("steps", *name.split("."), "result", *[p for p in _SPLIT.split(rest) if p]), scope
            )
        parts = text.split(".")
        if parts[0] in ROOTS:
            return lookup(parts, scope)
        variables = scope.get("vars") or {}
        if parts[0] in variables:
            return lookup(("vars", *parts), scope)
        span = step_span(parts, records)
        return lookup(_output_of(parts, span) if span else parts, scope)
    except Missing as missing:
        raise ConfigurationError(f"step {step!r}, {field} {source!r}: {missing}") from None


class LoopHost:
    """``context.host`` of a running loop step: runs its steps in child frames of the
    frame the loop runs in (see :class:`otpy.steps.StepHost`)."""

    def __init__(self, run: Run, planned: PlannedStep, frame: Frame) -> None:
        self.run = run
        self.planned = planned
        self.frame = frame
        self.began = run.clock.monotonic()

    def resolve(self, source: Any, *, field: str) -> Any:
        scope = self.run.scope(self.frame)
        return resolve_source(
            source, scope, step=self.planned.owner, field=f"{self.planned.prefix}{field}"
        )

    def holds(self, condition: Any, *, field: str, frame: Mapping[str, Any] | None = None) -> bool:
        loop = None
        if frame is not None:
            parent = self.frame.loop
            loop = {**frame, "level": (parent or {}).get("level", -1) + 1, "parent": parent}
        scope = self.run.scope(self.frame, loop)
        return self.run.holds(
            condition, scope, step=self.planned.owner, field=f"{self.planned.prefix}{field}"
        )

    def run_body(self, frame: Mapping[str, Any], *, isolated: bool = False) -> BodyRun:
        child = self.frame.child(frame, isolated=isolated)
        results: dict[str, Any] = {}
        usage = Usage()
        for planned in self.planned.body:
            if self.run.progress.cancel.is_set():
                return BodyRun(results, usage, "the run was cancelled", planned.name)
            outcome, record = self.run.run_step(planned, child)
            usage = usage + outcome.usage
            if outcome.status == "ok":
                results[planned.name] = record["output"]
            elif outcome.status == "failed" and planned.on_error != "continue":
                message = str(outcome.error) if outcome.error is not None else "failed"
                return BodyRun(results, usage, message, planned.name)
        return BodyRun(results, usage)

    def progress(self, item: int, items: int | None) -> None:
        progress = self.run.progress
        if progress.on_step is None:
            return
        total = len(self.run.plan.steps)
        event = StepEvent(
            progress.run_id, self.run.plan.name, self.planned.name, progress.current, total,
            item=item, items=items,
        )  # fmt: skip
        progress.notify(event)

    def elapsed(self) -> float:
        return self.run.clock.monotonic() - self.began

    def cancelled(self) -> bool:
        return bool(self.run.progress.cancel.is_set())
