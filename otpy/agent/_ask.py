"""An agent from code: a prompt, some tools, a provider gateway — :func:`ask_agent`
(``Runtime.agent`` calls it with the runtime's providers and tools)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from otpy.agent._limits import ToolLimits
from otpy.agent._loop import DEFAULT_MAX_TURNS, AgentOptions, run_agent
from otpy.agent._registry import ToolSelection
from otpy.agent._result import AgentResult
from otpy.agent._tool import Tool, ToolContext
from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.providers import CompletionRequest, Message, ProviderGateway
from otpy.telemetry import Telemetry
from otpy.workspace import Workspace

__all__ = ["ask_agent"]

logger = logging.getLogger("otpy.agent")


def ask_agent(
    gateway: ProviderGateway,
    prompt: str,
    tools: ToolSelection | Sequence[Tool],
    *,
    messages: Sequence[Message] = (),
    system: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    capabilities: Sequence[str] = ("text",),
    max_turns: int = DEFAULT_MAX_TURNS,
    token_budget: int | None = None,
    tool_choice: Literal["auto", "any", "none"] = "auto",
    max_tokens: int = 1024,
    temperature: float | None = None,
    prices: Mapping[str, tuple[float, float]] | None = None,
    limits: ToolLimits | None = None,
    workspace: str | Path | None = None,
    clock: Clock = SYSTEM_CLOCK,
    telemetry: Telemetry | None = None,
    label: str = "agent",
) -> AgentResult:
    """Run :func:`run_agent` for ``prompt`` (after ``messages``, e.g. an earlier
    ``AgentResult.messages`` to continue a conversation) with ``tools``.

    ``gateway`` completes each turn (``complete(request, provider=, capabilities=)``: every
    turn is one guarded call; with tools the ``tools`` capability is asked for too).
    ``system``, ``model``, ``max_tokens``, ``temperature`` shape each request;
    ``max_turns``, ``token_budget``, ``tool_choice``, ``prices`` are the
    :class:`AgentOptions`. File tools work in ``workspace`` (made when a file tool is
    offered; default: ``limits.workspace``) under ``limits``. Blocks the calling thread;
    raises what :func:`run_agent` raises.
    """
    if isinstance(tools, ToolSelection):
        for name in tools.disabled:
            logger.warning(
                "agent %r: %s is not offered: the runtime does not enable it", label, name
            )
        tools = tools.tools
    limits = limits or ToolLimits()
    root = Path(workspace if workspace is not None else limits.workspace).absolute()
    if any(tool.kind != "python" for tool in tools):
        root.mkdir(parents=True, exist_ok=True)
    wanted = (*capabilities, "tools") if tools and "tools" not in capabilities else capabilities
    request = CompletionRequest(
        prompt=prompt,
        messages=tuple(messages),
        system=system,
        model=model,
        max_tokens=max_tokens,
        temperature=temperature,
    )
    options = AgentOptions(
        max_turns=max_turns, token_budget=token_budget, tool_choice=tool_choice,
        prices=dict(prices or {}),
    )  # fmt: skip
    return run_agent(
        lambda asked: gateway.complete(asked, provider=provider, capabilities=tuple(wanted)),
        request,
        tools,
        context=ToolContext(workspace=Workspace(root), limits=limits),
        options=options,
        telemetry=telemetry,
        clock=clock,
        label=label,
    )
