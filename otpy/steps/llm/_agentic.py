"""Tool-using LLM steps: a step whose config allows tools runs the agent loop.

A ``claude``-family step allows tools with pipeline_ex's ``claude_options``::

    claude_options:
      allowed_tools: [Read, Write, Edit, weather]   # built-in and registered tools
      disallowed_tools: [Edit]
      max_turns: 8                # model turns (default 10)
      max_total_tokens: 50000     # the step's token budget (input + output, all turns)
      system_prompt: "You are ..."          # replaces the step's system prompt
      append_system_prompt: "Be brief."     # added after it
      cwd: backend                # the agent's root, inside the run's workspace

A ``gemini`` step declares ``functions`` (tool names) and may set ``max_turns`` and
``max_total_tokens``. Without tools a step makes its one completion, as before. With
them its result holds the final text, and metadata ``agent_turns``, ``files_changed``,
``tool_calls``, ``stop_reason``. Other pipeline_ex ``claude_options`` keys are accepted and
named in the document's one warning (``otpy.compat``): otpy does not honour them;
``system_prompt``/``append_system_prompt`` shape the request (``build_request``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from otpy.agent import (
    DEFAULT_MAX_TURNS,
    AgentOptions,
    AgentResult,
    ToolContext,
    ToolRegistry,
    run_agent,
)
from otpy.errors import ConfigurationError, StepValidationError
from otpy.providers import Completion, CompletionRequest
from otpy.steps._base import StepContext
from otpy.steps.llm._common import check_claude_options, check_int, check_str_list, step_label
from otpy.workspace import Workspace

__all__ = [
    "CLAUDE_OPTIONS",
    "IGNORED_CLAUDE_OPTIONS",
    "TOOL_FIELDS",
    "agent_metadata",
    "ask",
    "check_claude_options",
    "check_tool_fields",
    "requested_tools",
    "tool_requests",
]

CLAUDE_OPTIONS: Final = ("max_turns", "allowed_tools", "disallowed_tools", "system_prompt",
                         "append_system_prompt", "cwd", "max_total_tokens")  # fmt: skip
"""The ``claude_options`` keys otpy honours."""
IGNORED_CLAUDE_OPTIONS: Final = frozenset(
    {
        "output_format", "verbose", "fallback_model", "session_id",
        "resume_session", "debug_mode", "telemetry_enabled", "cost_tracking", "retry_config",
        "timeout_ms", "async_streaming", "stream_handler", "stream_buffer_size",
        "permission_mode", "preset", "step_name",
    }
)  # fmt: skip
"""pipeline_ex ``claude_options`` keys accepted but not honoured (a warning names them)."""
TOOL_FIELDS: Final = {"gemini": ("functions", "max_turns", "max_total_tokens")}
"""The step-level tool fields of step types without ``claude_options``."""

logger = logging.getLogger("otpy.steps.llm")
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def _tell_once(step: str, key: str, message: str) -> None:
    with _warned_lock:
        if (step, key) in _warned:
            return
        _warned.add((step, key))
    logger.warning("step %r: %s", step, message)


def check_tool_fields(config: Mapping[str, Any]) -> None:
    """Check a step's tool fields: ``claude_options``, or ``functions`` / ``max_turns`` /
    ``max_total_tokens`` of a gemini step (whichever it has)."""
    check_claude_options(config)
    check_str_list(config, "functions")
    if "functions" in config:
        check_int(config, "max_turns", minimum=1, maximum=1000)
        check_int(config, "max_total_tokens", minimum=1)


def _settings(step: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The tool settings of a step, and the field they came from."""
    options = step.get("claude_options")
    if isinstance(options, Mapping):
        return dict(options), "claude_options"
    if step.get("functions") is not None:
        functions = step.get("functions")
        declared = step.get("gemini_functions")  # pipeline_ex's declarations: not tools
        if isinstance(functions, list) and isinstance(declared, Mapping):
            functions = [name for name in functions if name not in declared]
        return {
            "allowed_tools": functions,
            "max_turns": step.get("max_turns"),
            "max_total_tokens": step.get("max_total_tokens"),
        }, "functions"
    return {}, ""


def requested_tools(step: Mapping[str, Any]) -> tuple[list[str], list[str], str]:
    """(allowed names, disallowed names, the field naming them) of a step config; names
    that are templates (``{{ ... }}``) are left out (known only when the step runs)."""
    settings, field = _settings(step)

    def names(value: Any) -> list[str]:
        items = value if isinstance(value, list | tuple) else []
        return [n for n in items if isinstance(n, str) and "{{" not in n]

    allowed_field = f"{field}.allowed_tools" if field == "claude_options" else field
    return (
        names(settings.get("allowed_tools")),
        names(settings.get("disallowed_tools")),
        (allowed_field),
    )


def tool_requests(step: Mapping[str, Any]) -> list[tuple[list[str], list[str], str]]:
    """Every set of tools a step config asks for, as :func:`requested_tools` gives them:
    the step's own, and each ``parallel_claude`` instance's and pipeline_ex task's (its
    ``claude_options`` merged over the step's). Sets that allow no tool are left out."""
    found = [requested_tools(step)]
    base = step.get("claude_options")
    for key in ("instances", "tasks", "parallel_tasks"):
        items = step.get(key)
        for index, item in enumerate(items if isinstance(items, list) else []):
            own = item.get("claude_options") if isinstance(item, Mapping) else None
            if isinstance(own, Mapping):
                merged = {**base, **own} if isinstance(base, Mapping) else dict(own)
                allowed, disallowed, _ = requested_tools({"claude_options": merged})
                field = f"{key}[{index}].claude_options.allowed_tools"
                found.append((allowed, disallowed, field))
    return [request for request in found if request[0]]


def _root(
    step: Mapping[str, Any], context: StepContext, registry: ToolRegistry, make: bool
) -> Path:
    """The agent's workspace root: the run's workspace, or ``cwd`` inside it (made when
    ``make``: a file tool will work there)."""
    base = context.workspace or Workspace(registry.limits.workspace)
    settings, _ = _settings(step)
    cwd = settings.get("cwd")
    root = base.root
    if cwd:
        try:
            root = base.path(cwd, what="claude_options.cwd")
        except ConfigurationError as exc:
            raise StepValidationError(
                str(exc), step=step_label(step), field="claude_options.cwd"
            ) from None
    if make:
        root.mkdir(parents=True, exist_ok=True)
    return root


def ask(
    step: Mapping[str, Any],
    context: StepContext,
    request: CompletionRequest,
    send: Callable[[CompletionRequest], Completion],
) -> tuple[Completion, AgentResult | None]:
    """Answer ``request`` for ``step``: one ``send`` when the step allows no tools, else
    the agent loop (each turn one ``send``). Returns the answer (the agent's as one
    Completion) and the AgentResult (None without tools). Raises StepValidationError for
    a tool name no tool has or a ``cwd`` outside the workspace, AgentLimitError, and what
    ``send`` raises."""
    label = step_label(step)
    allowed, disallowed, field = requested_tools(step)
    if not allowed:
        return send(request), None
    registry = context.tools or ToolRegistry()
    try:
        selection = registry.select(allowed, disallowed)
    except ConfigurationError as exc:
        raise StepValidationError(str(exc), step=label, field=field) from None
    for name in selection.disabled:
        _tell_once(label, name, f"{name} is not offered: the runtime config does not enable it")
    if not selection.tools:
        return send(request), None
    settings, _ = _settings(step)
    options = AgentOptions(
        max_turns=settings.get("max_turns") or DEFAULT_MAX_TURNS,
        token_budget=settings.get("max_total_tokens"),
    )
    files = any(tool.kind != "python" for tool in selection.tools)
    tool_context = ToolContext(
        workspace=Workspace(_root(step, context, registry, files)), limits=registry.limits
    )
    result = run_agent(
        send,
        request,
        selection.tools,
        context=tool_context,
        options=options,
        clock=context.clock,
        label=label,
    )
    return result.completion(), result


def agent_metadata(result: AgentResult | None) -> dict[str, Any]:
    """What a step result's metadata says about its agent run (nothing without one)."""
    return {} if result is None else result.summary()
