"""``parallel_claude``: the same question to several instances at once, merged."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Final

from otpy.agent import AgentResult
from otpy.errors import StepValidationError
from otpy.providers import Completion
from otpy.steps._base import Step, StepContext, StepMetadata, StepResult, check_choice
from otpy.steps.llm._agentic import ask, check_claude_options, check_tool_fields
from otpy.steps.llm._common import (
    LLM_FIELDS,
    build_request,
    call_provider,
    check_int,
    check_llm_fields,
    check_str,
    is_number,
    step_label,
)
from otpy.steps.llm._fanout import fan_out, one_provider, sum_usage
from otpy.steps.llm._tasks import check_tasks, run_tasks

__all__ = ["MERGES", "ParallelClaudeStep", "merge_texts"]

MERGES: Final = ("list", "concat", "vote", "longest")
INSTANCE_FIELDS: Final = ("prompt", "system", "temperature", "provider", "claude_options")
DEFAULT_PARALLEL_LIMIT: Final = 32
"""parallel_claude runs every instance at once, up to this many unless max_concurrency says."""


def merge_texts(texts: Sequence[str], merge: str) -> Any:
    """Combine instance answers: ``list`` (as is), ``concat`` (joined by a blank line),
    ``vote`` (the most frequent answer, compared with surrounding whitespace stripped;
    a tie goes to the answer given first) or ``longest`` (ties: the first)."""
    if merge == "list":
        return list(texts)
    if merge == "concat":
        return "\n\n".join(texts)
    if not texts:
        return None
    if merge == "vote":
        counts = Counter(t.strip() for t in texts)
        best = max(counts.values())
        return next(t for t in texts if counts[t.strip()] == best)
    if merge == "longest":
        return max(texts, key=len)  # max keeps the first of equal keys
    raise ValueError(f"unknown merge {merge!r} (merges: {', '.join(MERGES)})")


class ParallelClaudeStep(Step):
    """``parallel_claude``: the same question to several instances at once, merged.

    ``instances``: a count (each instance sends ``prompt`` with the step's settings) or a
    list of per-instance overrides (``prompt``, ``system``, ``temperature``, ``provider``,
    ``claude_options`` — merged over the step's, key by key).
    ``merge``: ``list`` (default), ``concat``, ``vote`` or ``longest`` (see
    :func:`merge_texts`). All instances run at once (up to 32 unless ``max_concurrency``
    says otherwise); if any fails, the first error is raised once the others finish.
    Usage is summed; metadata lists each instance's ``texts`` and ``providers``; instances
    that ran as agents (tools allowed) add ``agents`` (each one's summary, None for the
    others) and ``files_changed`` (all of them together).
    pipeline_ex's ``parallel_tasks``: see :mod:`otpy.steps.llm._tasks`.
    """

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Fan one prompt out to several instances (optionally with per-instance "
        "prompt, system, temperature, provider) in parallel and merge the answers.",
        optional_fields=(
            "instances", "parallel_tasks", "prompt", "merge", "max_concurrency",
            "claude_options", *LLM_FIELDS,
        ),
        capabilities=("text",),
    )  # fmt: skip

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        if checked.get("parallel_tasks") is not None:
            check_tasks(checked, "parallel_tasks")
            check_llm_fields(checked)
            return checked
        label = step_label(checked)
        instances = checked.get("instances")
        check_str(checked, "prompt")
        if isinstance(instances, int) and not isinstance(instances, bool):
            check_int(checked, "instances", minimum=1)
            overrides: list[Mapping[str, Any]] = [{}] * instances
        elif isinstance(instances, Sequence) and not isinstance(instances, str) and instances:
            overrides = [_check_instance(checked, i, item) for i, item in enumerate(instances)]
        else:
            raise StepValidationError(
                f"must be an integer >= 1 or a non-empty list of instance settings, "
                f"got {instances!r}",
                step=label,
                field="instances",
            )
        if checked.get("prompt") is None and any("prompt" not in o for o in overrides):
            raise StepValidationError(
                "is required unless every instance sets its own prompt",
                step=label,
                field="prompt",
            )
        check_choice(checked.get("merge", "list"), MERGES, step=label, field="merge")
        check_int(checked, "max_concurrency", minimum=1)
        check_llm_fields(checked)
        check_tool_fields(checked)
        return checked

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        capabilities = self.metadata.capabilities
        if step.get("parallel_tasks") is not None:
            return run_tasks(step, context, "parallel_tasks", "development", fan_out, capabilities)
        instances = step["instances"]
        overrides: list[Mapping[str, Any]] = (
            [{}] * instances if isinstance(instances, int) else list(instances)
        )

        def instance(override: Mapping[str, Any]) -> Callable[[], _Answer]:
            merged = _merged(step, override)
            request = build_request(merged, prompt=merged["prompt"])
            return lambda: ask(
                merged,
                context,
                request,
                lambda asked: call_provider(context, merged, asked, capabilities),
            )

        limit = step.get("max_concurrency") or min(len(overrides), DEFAULT_PARALLEL_LIMIT)
        result = fan_out([instance(o) for o in overrides], limit)
        if result.first_error is not None:
            raise result.first_error
        answers = [o.value for o in result.outcomes if o.value is not None]
        completions = [completion for completion, _ in answers]
        agents = [agent for _, agent in answers]
        texts = [c.text for c in completions if c is not None]
        merge = step.get("merge", "list")
        merged = merge_texts(texts, merge)
        provider, model = one_provider(completions)
        return StepResult(
            output=merged,
            text=merged if isinstance(merged, str) else None,
            usage=sum_usage(completions),
            provider=provider,
            model=model,
            metadata={
                "instances": len(overrides),
                "merge": merge,
                "texts": texts,
                "providers": [c.provider for c in completions if c is not None],
                **_agents(agents),
            },
        )


_Answer = tuple[Completion, AgentResult | None]


def _merged(step: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """An instance's config: the step's with the override's fields, ``claude_options``
    merged key by key."""
    merged = {**step, **override}
    if isinstance(step.get("claude_options"), Mapping) and "claude_options" in override:
        merged["claude_options"] = {**step["claude_options"], **override["claude_options"]}
    return merged


def _agents(agents: Sequence[AgentResult | None]) -> dict[str, Any]:
    if all(agent is None for agent in agents):
        return {}
    changed = dict.fromkeys(p for agent in agents if agent for p in agent.files_changed)
    return {
        "agents": [agent.summary() if agent else None for agent in agents],
        "files_changed": list(changed),
    }


def _check_instance(config: Mapping[str, Any], index: int, item: Any) -> Mapping[str, Any]:
    label = step_label(config)
    field = f"instances[{index}]"
    if not isinstance(item, Mapping):
        raise StepValidationError(
            f"must be a mapping of {', '.join(INSTANCE_FIELDS)}, got {item!r}",
            step=label,
            field=field,
        )
    for key, value in item.items():
        if key not in INSTANCE_FIELDS:
            raise StepValidationError(
                f"unknown instance setting {key!r} (settings: {', '.join(INSTANCE_FIELDS)})",
                step=label,
                field=field,
            )
        if key == "claude_options":
            check_claude_options({"name": label, f"{field}.{key}": value}, f"{field}.{key}")
        elif key == "temperature":
            if not (is_number(value) and 0.0 <= value <= 2.0):
                raise StepValidationError(
                    f"temperature must be a number from 0 to 2, got {value!r}",
                    step=label,
                    field=f"{field}.temperature",
                )
        elif not isinstance(value, str) or (key != "system" and not value.strip()):
            raise StepValidationError(
                f"{key} must be a non-empty string, got {value!r}",
                step=label,
                field=f"{field}.{key}",
            )
    return item
