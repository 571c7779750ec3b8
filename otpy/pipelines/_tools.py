"""Which tools a pipeline's steps may use, checked against a tool registry before it runs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from otpy.agent import ToolRegistry
from otpy.errors import StepValidationError
from otpy.pipelines._load import locate
from otpy.pipelines._plan import Plan, PlannedStep
from otpy.providers import ProviderTable
from otpy.steps.llm import tool_requests

__all__ = ["StepTools", "check_tools"]


@dataclass(frozen=True, slots=True)
class StepTools:
    """The tools one step may use (``tools``, by name), and those it asks for that the
    runtime does not enable (``disabled``: Bash without ``tools.bash``)."""

    step: str
    tools: tuple[str, ...]
    disabled: tuple[str, ...] = ()


def _planned(steps: tuple[PlannedStep, ...]) -> Iterator[PlannedStep]:
    """Each step, its fallback step and the steps of its loop body, in order."""
    for planned in steps:
        yield planned
        if planned.fallback is not None:
            yield planned.fallback
        yield from _planned(planned.body)


def check_tools(
    plan: Plan, registry: ToolRegistry, providers: ProviderTable | None = None
) -> list[StepTools]:
    """The tools each step of ``plan`` (each fallback and loop step too) may use, in order;
    steps using none are left out. Raises StepValidationError naming the step, the field,
    the closest known tool and the position in the file for a tool name the registry does
    not know, and for a step that uses tools on a named provider (in ``providers``)
    without the ``tools`` capability."""
    found: list[StepTools] = []
    for planned in _planned(plan.steps):
        step, prefix = planned.owner or planned.name, planned.prefix
        names: dict[str, None] = {}
        disabled: dict[str, None] = {}
        for allowed, disallowed, field in tool_requests(planned.config):
            for name in allowed:
                if not registry.is_known(name):
                    error = StepValidationError(
                        registry.unknown(name), step=step, field=prefix + field
                    )
                    raise locate(plan.pipeline, error)
            selection = registry.select(allowed, disallowed)
            names.update(dict.fromkeys(selection.names))
            disabled.update(dict.fromkeys(selection.disabled))
        if not names and not disabled:
            continue
        _check_provider(plan, planned, providers)
        found.append(StepTools(planned.name, tuple(names), tuple(disabled)))
    return found


def _check_provider(plan: Plan, planned: PlannedStep, providers: ProviderTable | None) -> None:
    name = planned.config.get("provider")
    entry = providers.get(name) if providers is not None and isinstance(name, str) else None
    if entry is not None and "tools" not in entry.capabilities:
        error = StepValidationError(
            f"provider {name!r} lacks the tools capability this step's tools need "
            f"(it has: {', '.join(sorted(entry.capabilities))})",
            step=planned.owner or planned.name,
            field=planned.prefix + "provider",
        )
        raise locate(plan.pipeline, error)
