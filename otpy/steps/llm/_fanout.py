"""Fan-out: ``claude_batch`` on one bounded helper (``parallel_claude`` uses it too).

:func:`fan_out` runs calls on at most ``max_concurrency`` worker threads. Each call runs in
a copy of the submitting thread's ``contextvars`` context (``copy_context()`` per call), so
the trace ids of the step follow it into the workers and telemetry nests correctly.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Generic, TypeVar

from otpy.errors import OtpyError, StepValidationError
from otpy.providers import Completion, Usage
from otpy.steps._base import Step, StepContext, StepMetadata, StepResult
from otpy.steps.llm._common import (
    CLAUDE_FIELDS,
    LLM_FIELDS,
    build_request,
    call_provider,
    check_bool,
    check_int,
    check_llm_fields,
    step_label,
)
from otpy.steps.llm._prompting import check_preset
from otpy.steps.llm._tasks import check_tasks, run_tasks

__all__ = ["ClaudeBatchStep", "FanOutResult", "Outcome", "fan_out", "one_provider", "sum_usage"]

T = TypeVar("T")

logger = logging.getLogger("otpy.steps.llm")

DEFAULT_BATCH_CONCURRENCY: Final = 4


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What one call of a fan-out gave: its ``value``, or the ``error`` it raised, or
    ``cancelled`` (never started because the fan-out stopped)."""

    value: T | None = None
    error: BaseException | None = None
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.cancelled


@dataclass(frozen=True, slots=True)
class FanOutResult(Generic[T]):
    """Every call's :class:`Outcome` in the order of the calls, and the first error that
    happened (in time), if any."""

    outcomes: list[Outcome[T]]
    first_error: BaseException | None


def fan_out(
    calls: Sequence[Callable[[], T]],
    max_concurrency: int,
    *,
    stop_on: Callable[[BaseException], bool] = lambda exc: True,
) -> FanOutResult[T]:
    """Run ``calls`` with at most ``max_concurrency`` in flight; return when all are done.

    Blocks the caller until every call finished or was cancelled. When a call raises an
    error for which ``stop_on`` is true, the calls not yet started are cancelled and the
    running ones finish. With one call or ``max_concurrency == 1`` the calls run in the
    caller's thread, one after the other; otherwise on a pool of worker threads that is
    shut down before this returns (a debug line on ``otpy.steps.llm`` says when every
    call has been submitted).
    """
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
    outcomes: list[Outcome[T]] = [Outcome(cancelled=True)] * len(calls)
    first: BaseException | None = None
    if len(calls) <= 1 or max_concurrency == 1:
        for index, call in enumerate(calls):
            try:
                outcomes[index] = Outcome(value=call())
            except Exception as exc:
                outcomes[index] = Outcome(error=exc)
                if first is None:
                    first = exc
                if stop_on(exc):
                    break
        return FanOutResult(outcomes, first)
    workers = min(max_concurrency, len(calls))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otpy-fanout") as pool:
        futures: dict[Future[T], int] = {
            pool.submit(contextvars.copy_context().run, call): index
            for index, call in enumerate(calls)
        }
        logger.debug("fan-out: %d calls submitted, at most %d at once", len(calls), workers)
        stopping = False
        try:
            for future in as_completed(futures):
                index = futures[future]
                if future.cancelled():
                    continue
                error = future.exception()
                if error is None:
                    outcomes[index] = Outcome(value=future.result())
                    continue
                outcomes[index] = Outcome(error=error)
                if first is None:
                    first = error
                if not stopping and stop_on(error):
                    stopping = True
                    _cancel(futures)
        except BaseException:  # interrupted while waiting: start nothing more
            _cancel(futures)
            raise
    return FanOutResult(outcomes, first)


def _cancel(futures: Iterable[Future[Any]]) -> None:
    for future in futures:
        future.cancel()


def _crash(exc: BaseException) -> bool:
    """Stop a fan-out on anything that is not an expected (OtpyError) failure."""
    return not isinstance(exc, OtpyError)


def sum_usage(completions: Sequence[Completion | None]) -> Usage:
    total = Usage()
    for completion in completions:
        if completion is not None:
            total = total + completion.usage
    return total


def one_provider(completions: Sequence[Completion | None]) -> tuple[str | None, str | None]:
    providers = {(c.provider, c.model) for c in completions if c is not None}
    return next(iter(providers)) if len(providers) == 1 else (None, None)


class ClaudeBatchStep(Step):
    """``claude_batch``: many prompts, each its own request, at most ``max_concurrency``
    (default 4) in flight.

    Output: the answers' texts in prompt order. With ``continue_on_error`` a prompt whose
    call fails with an expected error (an OtpyError) gives None and is listed in metadata
    ``failures`` (index and error); without it the first error is raised once the calls in
    flight finish (the others are cancelled). Anything else (a bug) is always raised.
    Usage is the sum over the answered prompts. pipeline_ex's ``tasks`` (or one
    ``prompt``) with ``batch_config``: see :mod:`otpy.steps.llm._tasks`.
    """

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Run many prompts (or pipeline_ex tasks) with bounded concurrency; "
        "output is the list of answers in prompt order (or the batch results).",
        optional_fields=(
            "prompts", "tasks", "prompt", "batch_config", "preset", "max_concurrency",
            "continue_on_error", *LLM_FIELDS, *CLAUDE_FIELDS,
        ),
        capabilities=("text",),
    )  # fmt: skip

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        label = step_label(checked)
        check_preset(checked)
        if checked.get("prompts") is None and checked.get("prompt") is not None:
            checked.setdefault("tasks", [{"id": "default_task", "prompt": checked["prompt"]}])
        if checked.get("tasks") is not None:
            check_tasks(checked, "tasks")
            check_llm_fields(checked)
            return checked
        prompts = checked.get("prompts")
        if isinstance(prompts, str) or not isinstance(prompts, Sequence) or not prompts:
            raise StepValidationError(
                "must be a non-empty list of prompts (or give pipeline_ex tasks)",
                step=label,
                field="prompts",
            )
        for index, prompt in enumerate(prompts):
            if not isinstance(prompt, str) or not prompt.strip():
                raise StepValidationError(
                    f"item {index} must be a non-empty string, got {prompt!r}",
                    step=label,
                    field="prompts",
                )
        check_int(checked, "max_concurrency", minimum=1)
        check_bool(checked, "continue_on_error")
        check_llm_fields(checked)
        return checked

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        if step.get("tasks") is not None:
            return run_tasks(
                step, context, "tasks", "development", fan_out, self.metadata.capabilities
            )
        prompts: list[str] = list(step["prompts"])
        keep_going = bool(step.get("continue_on_error", False))
        capabilities = self.metadata.capabilities

        def ask(prompt: str) -> Callable[[], Completion]:
            request = build_request(step, prompt=prompt)
            return lambda: call_provider(context, step, request, capabilities)

        result = fan_out(
            [ask(p) for p in prompts],
            step.get("max_concurrency") or DEFAULT_BATCH_CONCURRENCY,
            stop_on=_crash if keep_going else (lambda exc: True),
        )
        errors = [o.error for o in result.outcomes if o.error is not None]
        crashes = [e for e in errors if not isinstance(e, OtpyError)]
        if crashes:
            raise crashes[0]
        if errors and not keep_going:
            assert result.first_error is not None
            raise result.first_error
        completions = [o.value for o in result.outcomes]
        failures = [
            {"index": i, "error": f"{type(o.error).__name__}: {o.error}"}
            for i, o in enumerate(result.outcomes)
            if o.error is not None
        ]
        provider, model = one_provider(completions)
        return StepResult(
            output=[c.text if c is not None else None for c in completions],
            usage=sum_usage(completions),
            provider=provider,
            model=model,
            metadata={"prompts": len(prompts), "failures": failures},
        )
