"""``for_loop`` and ``while_loop``: run a list of steps again and again (pipeline_ex's).

::

    - name: review_files
      type: for_loop
      iterator: file                       # {{ loop.file }} in the loop's steps
      data_source: steps.scan.files        # or a list, {{ ... }}, previous_response:files
      parallel: true                       # at most max_parallel (default 5) at once
      break_on_error: false                # default true: the first failure stops the loop
      steps: [...]

    - name: improve
      type: while_loop
      condition: "steps.score.value < 90"  # checked before every iteration
      max_iterations: 10                   # default 100
      timeout_seconds: 600
      steps: [...]

Inside the loop's steps, ``loop.<iterator>`` is the item, with ``loop.index`` (from 0),
``loop.length`` (also ``loop.total``), ``loop.is_first``/``loop.first``,
``loop.is_last``/``loop.last``, ``loop.level`` and ``loop.parent`` (the enclosing loop's
frame); a while loop has ``loop.iteration`` (from 0, also ``loop.count``/``loop.index``).
Each step's latest result stays readable after the loop as ``steps.<name>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Final

from otpy.errors import ConfigurationError, PipelineError, StepValidationError
from otpy.providers import Usage
from otpy.steps._base import Step, StepContext, StepMetadata, StepResult
from otpy.steps._host import BodyRun, StepHost

__all__ = ["DEFAULT_MAX_PARALLEL", "DEFAULT_WHILE_ITERATIONS", "ForLoopStep", "WhileLoopStep"]

DEFAULT_MAX_PARALLEL: Final = 5
"""Parallel iterations at once unless ``max_parallel`` says (pipeline_ex's default)."""
DEFAULT_WHILE_ITERATIONS: Final = 100
"""A while loop's ``max_iterations`` unless given (pipeline_ex's default)."""


def _label(config: Mapping[str, Any]) -> str:
    return str(config.get("name") or config.get("type") or "loop")


def _check_int(config: Mapping[str, Any], field: str, minimum: int) -> None:
    value = config.get(field)
    if value is not None and (
        not isinstance(value, int) or isinstance(value, bool) or value < minimum
    ):
        raise StepValidationError(
            f"must be an integer >= {minimum}, got {value!r}", step=_label(config), field=field
        )


def _check_steps(config: Mapping[str, Any]) -> None:
    steps = config.get("steps")
    if not isinstance(steps, list) or not steps:
        raise StepValidationError(
            "must be a non-empty list of steps (each a mapping with name and type)",
            step=_label(config),
            field="steps",
        )
    for index, step in enumerate(steps):
        if not isinstance(step, Mapping):
            raise StepValidationError(
                f"a step must be a mapping, got {type(step).__name__}",
                step=_label(config),
                field=f"steps[{index}]",
            )


def _host(context: StepContext, kind: str) -> StepHost:
    if context.host is None:
        raise ConfigurationError(f"a {kind} runs only inside a pipeline run")
    return context.host


def _usage(runs: list[BodyRun]) -> Usage:
    total = Usage()
    for run in runs:
        total = total + run.usage
    return total


def _iteration(run: BodyRun) -> dict[str, Any]:
    if run.ok:
        return {"results": run.results}
    return {"error": run.error, "step": run.failed_step}


class ForLoopStep(Step):
    """``for_loop``: the loop's ``steps`` once per item of ``data_source`` (see the module
    docstring). A failed iteration stops the loop and fails the step unless
    ``break_on_error: false`` (then it is listed and the loop goes on). ``max_iterations``
    refuses a longer list; ``break_condition`` ends the loop after an iteration where it
    holds. Output: ``iterations`` (index, item, success, results or error), ``success``,
    ``total_items``, ``completed_items``."""

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Run the loop's steps once per item of a list (in order, or in parallel).",
        required_fields=("iterator", "data_source", "steps"),
        optional_fields=(
            "parallel",
            "max_parallel",
            "break_on_error",
            "max_iterations",
            "break_condition",
            "continue_condition",
        ),
    )

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        label = _label(checked)
        iterator = checked["iterator"]
        if not isinstance(iterator, str) or not iterator.isidentifier():
            raise StepValidationError(
                f"must be a name such as 'file' (read as {{{{ loop.file }}}}), got {iterator!r}",
                step=label,
                field="iterator",
            )
        source = checked["data_source"]
        if not isinstance(source, str | list | tuple):
            raise StepValidationError(
                "must be a list, or where to find one (steps.scan.files, previous_response:"
                f"files, a variable name, {{{{ ... }}}}), got {type(source).__name__}",
                step=label,
                field="data_source",
            )
        _check_steps(checked)
        for flag in ("parallel", "break_on_error"):
            if checked.get(flag) is not None and not isinstance(checked[flag], bool):
                raise StepValidationError(
                    f"must be true or false, got {checked[flag]!r}", step=label, field=flag
                )
        _check_int(checked, "max_parallel", 1)
        _check_int(checked, "max_iterations", 1)
        return checked

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        host = _host(context, "for_loop")
        label = _label(step)
        items = step["data_source"]
        if isinstance(items, str):
            items = host.resolve(items, field="data_source")
        if isinstance(items, tuple):
            items = list(items)
        if not isinstance(items, list):
            raise ConfigurationError(
                f"for_loop {label!r}: data_source {step['data_source']!r} is a "
                f"{type(items).__name__}, not a list"
            )
        limit = step.get("max_iterations")
        if limit is not None and len(items) > limit:
            raise ConfigurationError(
                f"for_loop {label!r}: data_source holds {len(items)} items, more than "
                f"max_iterations ({limit})"
            )
        iterator: str = step["iterator"]
        total = len(items)

        def frame(index: int, item: Any) -> dict[str, Any]:
            return {
                iterator: item, "item": item, "index": index, "length": total, "total": total,
                "is_first": index == 0, "first": index == 0,
                "is_last": index == total - 1, "last": index == total - 1,
            }  # fmt: skip

        breaks = step.get("break_on_error", True) is not False
        if step.get("parallel") and total > 1:
            runs = self._parallel(
                host, items, frame, step.get("max_parallel") or DEFAULT_MAX_PARALLEL
            )
        else:
            runs = self._sequential(host, items, frame, step, breaks)
        iterations = [
            {"index": i, "item": items[i], "success": run.ok, **_iteration(run)}
            for i, run in enumerate(runs)
        ]
        failed = [it for it in iterations if not it["success"]]
        if failed and breaks:
            first = failed[0]
            raise PipelineError(
                f"for_loop {label!r} stopped at item {first['index'] + 1}/{total}: step "
                f"{first['step']!r} failed: {first['error']}",
                step=first["step"],
            )
        output = {
            "iterations": iterations,
            "success": not failed,
            "total_items": total,
            "completed_items": total - len(failed)
            if len(runs) == total
            else len(runs) - len(failed),
        }
        return StepResult(
            output=output,
            usage=_usage(runs),
            metadata={
                "items": total,
                "completed": output["completed_items"],
                "failed": len(failed),
            },
        )

    @staticmethod
    def _sequential(
        host: StepHost,
        items: list[Any],
        frame: Callable[[int, Any], dict[str, Any]],
        step: Mapping[str, Any],
        breaks: bool,
    ) -> list[BodyRun]:
        runs: list[BodyRun] = []
        for index, item in enumerate(items):
            if host.cancelled():
                break
            host.progress(index + 1, len(items))
            values = frame(index, item)
            run = host.run_body(values)
            runs.append(run)
            if not run.ok and breaks:
                break
            stop = step.get("break_condition")
            if stop is not None and host.holds(stop, field="break_condition", frame=values):
                break
        return runs

    @staticmethod
    def _parallel(
        host: StepHost,
        items: list[Any],
        frame: Callable[[int, Any], dict[str, Any]],
        limit: int,
    ) -> list[BodyRun]:
        def one(index: int) -> BodyRun:
            host.progress(index + 1, len(items))
            return host.run_body(frame(index, items[index]), isolated=True)

        with ThreadPoolExecutor(
            max_workers=min(limit, len(items)), thread_name_prefix="otpy-loop"
        ) as pool:
            return list(pool.map(one, range(len(items))))


class WhileLoopStep(Step):
    """``while_loop``: the loop's ``steps`` again while ``condition`` holds (checked before
    each iteration), at most ``max_iterations`` times (default 100) and within
    ``timeout_seconds`` if given. A failed iteration fails the step. Reaching
    ``max_iterations`` ends the loop with ``max_iterations_reached: true`` and ``success:
    false`` in the output (pipeline_ex's behaviour); running out of time fails the step."""

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Run the loop's steps while a condition holds (bounded by max_iterations).",
        required_fields=("condition", "steps"),
        optional_fields=("max_iterations", "timeout_seconds"),
    )

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        _check_steps(checked)
        _check_int(checked, "max_iterations", 1)
        timeout = checked.get("timeout_seconds")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise StepValidationError(
                f"must be a number of seconds > 0, got {timeout!r}",
                step=_label(checked),
                field="timeout_seconds",
            )
        return checked

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        host = _host(context, "while_loop")
        label = _label(step)
        limit: int = step.get("max_iterations") or DEFAULT_WHILE_ITERATIONS
        timeout = step.get("timeout_seconds")
        runs: list[BodyRun] = []
        ended_by_condition = False
        while len(runs) < limit and not host.cancelled():
            count = len(runs)
            if timeout is not None and host.elapsed() > timeout:
                raise PipelineError(
                    f"while_loop {label!r} ran out of its timeout_seconds ({timeout:g}s) after "
                    f"{count} iteration{'s' if count != 1 else ''}",
                    step=label,
                )
            values = {"iteration": count, "count": count, "index": count}
            if not host.holds(step["condition"], field="condition", frame=values):
                ended_by_condition = True
                break
            host.progress(count + 1, None)
            run = host.run_body(values)
            runs.append(run)
            if not run.ok:
                raise PipelineError(
                    f"while_loop {label!r} failed at iteration {count + 1}: step "
                    f"{run.failed_step!r} failed: {run.error}",
                    step=run.failed_step,
                )
        reached = not ended_by_condition and len(runs) >= limit
        output = {
            "success": not reached,
            "iterations": len(runs),
            "condition_met": False if ended_by_condition else None,
            "max_iterations_reached": reached,
            "last_results": runs[-1].results if runs else {},
        }
        return StepResult(
            output=output,
            usage=_usage(runs),
            metadata={"iterations": len(runs), "max_iterations_reached": reached},
        )
