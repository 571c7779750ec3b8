"""pipeline_ex's task forms of the fan-out steps: ``claude_batch``'s ``tasks`` and
``parallel_claude``'s ``parallel_tasks``.

::

    - name: reviews
      type: claude_batch
      batch_config: {max_parallel: 3, consolidate_results: true}
      tasks:
        - {id: backend, prompt: "Review the backend"}            # prompt parts are built
        - {id: lib, file: src/lib.py, prompt: "Review this file"}   # file read from the workspace
          output_to_file: lib_review.md                           # under the output directory

    - name: build
      type: parallel_claude
      parallel_tasks:
        - {id: api, prompt: "...", claude_options: {system_prompt: "..."}, output_to_file: api.md}

A task whose ``claude_options`` allow tools runs the agent loop. A task that fails is
listed with its error and the others go on (pipeline_ex's behaviour); the step fails only
when every task fails. ``claude_batch``'s output: ``success``, ``total_tasks``,
``successful_tasks``, ``failed_tasks``, ``batch_results`` (task_id, status, result or
error, file) and, with ``consolidate_results`` (default), ``text`` holding every answer
under a heading. ``parallel_claude``'s: ``combined_results`` (each answer under
``===[id]===``) and ``individual_results`` (id -> answer, or ``{error: ...}``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from otpy.errors import AllOptionsFailed, OtpyError, StepValidationError
from otpy.providers import Completion, Usage
from otpy.steps._base import StepContext, StepResult
from otpy.steps.llm._agentic import ask as agent_ask
from otpy.steps.llm._common import call_provider, check_claude_options, step_label
from otpy.steps.llm._prompting import preset_request

__all__ = ["check_tasks", "run_tasks"]

DEFAULT_BATCH_PARALLEL: Final = 3
"""claude_batch's ``batch_config.max_parallel`` unless given (pipeline_ex's)."""
TASK_FIELDS: Final = frozenset(
    {"id", "task_id", "prompt", "file", "output_to_file", "claude_options"}
)


def check_tasks(config: Mapping[str, Any], field: str) -> None:
    """``tasks``/``parallel_tasks``: a non-empty list of task mappings, each with a prompt
    (text, once its parts are built) or a file."""
    label = step_label(config)
    tasks = config.get(field)
    if not isinstance(tasks, list) or not tasks:
        raise StepValidationError("must be a non-empty list of tasks", step=label, field=field)
    for index, task in enumerate(tasks):
        where = f"{field}[{index}]"
        if not isinstance(task, Mapping):
            raise StepValidationError("a task must be a mapping", step=label, field=where)
        unknown = sorted(set(task) - TASK_FIELDS)
        if unknown:
            raise StepValidationError(
                f"unknown task field {unknown[0]!r} (fields: {', '.join(sorted(TASK_FIELDS))})",
                step=label,
                field=f"{where}.{unknown[0]}",
            )
        if not isinstance(task.get("prompt"), str | list) and not isinstance(task.get("file"), str):
            raise StepValidationError(
                "a task needs a prompt or a file", step=label, field=f"{where}.prompt"
            )
        check_claude_options({"name": label, "claude_options": task.get("claude_options")})
    batch = config.get("batch_config")
    if batch is not None and not isinstance(batch, Mapping):
        raise StepValidationError("must be a mapping", step=label, field="batch_config")
    parallel = (batch or {}).get("max_parallel")
    if parallel is not None and (
        not isinstance(parallel, int) or isinstance(parallel, bool) or parallel < 1
    ):
        raise StepValidationError(
            "must be an integer >= 1", step=label, field="batch_config.max_parallel"
        )


def _task_id(task: Mapping[str, Any], index: int) -> str:
    return str(task.get("id") or task.get("task_id") or f"task_{index}")


def _prompt(task: Mapping[str, Any], context: StepContext) -> str:
    prompt = task.get("prompt")
    text = prompt if isinstance(prompt, str) else "Analyze this file"
    if task.get("file") is None:
        return text
    if context.workspace is None:
        raise StepValidationError("a task's file needs the pipeline's workspace", field="file")
    content = context.workspace.read_text(str(task["file"]), what="task file")
    return f"{content}\n{text}"


def run_tasks(
    step: Mapping[str, Any],
    context: StepContext,
    field: str,
    default_preset: str,
    fan_out: Callable[..., Any],
    capabilities: Sequence[str],
) -> StepResult:
    """Run the tasks of ``field`` (see the module docstring)."""
    tasks: list[Mapping[str, Any]] = list(step[field])
    batch = field == "tasks"
    config = step.get("batch_config") or {}
    limit = config.get("max_parallel") or (DEFAULT_BATCH_PARALLEL if batch else min(len(tasks), 32))

    def ask(task: Mapping[str, Any]) -> Callable[[], Completion]:
        options = {**(step.get("claude_options") or {}), **(task.get("claude_options") or {})}
        merged = {**step, "claude_options": options}

        def call() -> Completion:
            _, request = preset_request(merged, default_preset, prompt=_prompt(task, context))
            return agent_ask(
                merged, context, request,
                lambda asked: call_provider(context, merged, asked, capabilities),
            )[0]  # fmt: skip

        return call

    result = fan_out(
        [ask(task) for task in tasks], limit, stop_on=lambda exc: not isinstance(exc, OtpyError)
    )
    crashes = [
        o.error
        for o in result.outcomes
        if o.error is not None and not isinstance(o.error, OtpyError)
    ]
    if crashes:
        raise crashes[0]
    ids = [_task_id(task, index) for index, task in enumerate(tasks)]
    errors = [(ids[i], o.error) for i, o in enumerate(result.outcomes) if o.error is not None]
    if len(errors) == len(tasks):
        raise AllOptionsFailed(step_label(step), errors) from errors[-1][1]
    usage = Usage()
    for index, outcome in enumerate(result.outcomes):
        completion = outcome.value
        if completion is None:
            continue
        usage = usage + completion.usage
        target = tasks[index].get("output_to_file")
        if target and context.output_dir is not None:
            context.output_dir.write_text(
                str(target), completion.text, what=f"task {ids[index]!r} output_to_file"
            )
    answers = [o.value.text if o.value is not None else None for o in result.outcomes]
    failures = [
        {"task_id": task_id, "error": f"{type(exc).__name__}: {exc}"} for task_id, exc in errors
    ]
    if batch:
        output = _batch_output(tasks, ids, answers, result.outcomes, config)
    else:
        output = {
            "combined_results": "\n".join(
                f"\n===[{task_id}]===\n{answer if answer is not None else _error(outcome.error)}"
                for task_id, answer, outcome in zip(ids, answers, result.outcomes, strict=True)
            ),
            "individual_results": {
                task_id: answer if answer is not None else {"error": _error(outcome.error)}
                for task_id, answer, outcome in zip(ids, answers, result.outcomes, strict=True)
            },
        }
    text = output.get("text") if batch else output["combined_results"]
    return StepResult(
        output=output, text=text, usage=usage, metadata={"tasks": len(tasks), "failures": failures}
    )


def _error(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}" if exc is not None else "cancelled"


def _batch_output(
    tasks: list[Mapping[str, Any]], ids: list[str], answers: list[str | None],
    outcomes: list[Any], config: Mapping[str, Any],
) -> dict[str, Any]:  # fmt: skip
    results = []
    for task, task_id, answer, outcome in zip(tasks, ids, answers, outcomes, strict=True):
        entry: dict[str, Any] = {"task_id": task_id, "file": task.get("file")}
        if answer is not None:
            entry.update(status="success", result=answer)
        else:
            entry.update(status="error", error=_error(outcome.error))
        results.append(entry)
    ok = [r for r in results if r["status"] == "success"]
    output: dict[str, Any] = {
        "success": True,
        "batch_processed": True,
        "total_tasks": len(results),
        "successful_tasks": len(ok),
        "failed_tasks": len(results) - len(ok),
        "batch_results": results,
    }
    if config.get("consolidate_results", True) is not False:
        sections = [
            f"## Task: {r['task_id']}\n**Status**: {r['status'].upper()}\n\n"
            + (r["result"] if r["status"] == "success" else f"**Error**: {r['error']}")
            for r in results
        ]
        output["text"] = (
            f"# Batch Processing Results\n\n**Total Tasks**: {len(results)}\n**Successful**: "
            f"{len(ok)}\n**Failed**: {len(results) - len(ok)}\n\n" + "\n\n---\n\n".join(sections)
        )
    return output
