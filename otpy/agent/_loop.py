"""The agent loop: ask the model, run the tools it calls, send the results back, until it
answers without a tool call (or a limit stops it).

::

    result = run_agent(complete, CompletionRequest(prompt="Fix the typo in README.md"),
                       [READ, EDIT], context=ToolContext(workspace=Workspace(root)),
                       options=AgentOptions(max_turns=8))
    result.text, result.files_changed, result.turns[0].calls

Each turn is one ``complete(request)`` — in a step, the gateway's guarded call (rate
limiter, breaker, retries, failover): a turn that fails and is retried is not lost,
because the conversation grows only by answers. The calls of a turn run in the order the
model made them, in the caller's thread; a call that fails (unknown tool, arguments that
do not fit, a tool error or any exception) goes back as an error result and the loop goes
on. The run, each turn and each tool call are telemetry spans (``agent.run``,
``agent.turn``, ``agent.tool``), with no argument values in them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from otpy.agent._result import AgentResult, AgentTurn, ToolCallRecord
from otpy.agent._tool import Tool, ToolContext
from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import AgentLimitError, ConfigurationError, OtpyError, ToolError
from otpy.providers import Completion, CompletionRequest, Message, ToolCall, ToolResult, Usage
from otpy.telemetry import Telemetry, get_telemetry

__all__ = ["DEFAULT_MAX_TURNS", "AgentOptions", "run_agent"]

DEFAULT_MAX_TURNS = 10
"""Model turns an agent may take when nothing says otherwise."""

Complete = Callable[[CompletionRequest], Completion]


@dataclass(frozen=True)
class AgentOptions:
    """Limits of one agent run: ``max_turns`` model turns; ``token_budget`` tokens (input
    plus output, every turn) after which no further turn starts; ``tool_choice`` for the
    first turn (``any`` makes the model start with a tool call; later turns are
    ``auto``); ``prices`` per model or provider name: dollars per million (input, output)
    tokens, for the cost of each turn."""

    max_turns: int = DEFAULT_MAX_TURNS
    token_budget: int | None = None
    tool_choice: Literal["auto", "any", "none"] = "auto"
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.max_turns, bool) or not isinstance(self.max_turns, int):
            raise ConfigurationError(f"max_turns must be an int >= 1, got {self.max_turns!r}")
        if self.max_turns < 1:
            raise ConfigurationError(f"max_turns must be an int >= 1, got {self.max_turns!r}")
        budget = self.token_budget
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)
                                   or budget < 1):  # fmt: skip
            raise ConfigurationError(f"token_budget must be an int >= 1 or None, got {budget!r}")
        if self.tool_choice not in ("auto", "any", "none"):
            raise ConfigurationError(
                f"tool_choice must be auto, any or none, not {self.tool_choice!r}"
            )

    def cost(self, completion: Completion) -> float | None:
        """Dollars one answer cost, by the price of its model (else its provider)."""
        price = self.prices.get(completion.model) or self.prices.get(completion.provider)
        if price is None:
            return None
        usage = completion.usage
        return (usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1e6


class _Run:
    """The state of one run (see :func:`run_agent`)."""

    def __init__(
        self,
        tools: Sequence[Tool],
        context: ToolContext,
        options: AgentOptions,
        telemetry: Telemetry,
        clock: Clock,
        label: str,
    ) -> None:
        self.by_name = {tool.name: tool for tool in tools}
        if len(self.by_name) != len(tools):
            raise ConfigurationError(f"two tools of the same name in {[t.name for t in tools]}")
        self.specs = tuple(tool.spec() for tool in tools)
        self.context = context
        self.options = options
        self.telemetry = telemetry
        self.clock = clock
        self.label = label
        self.turns: list[AgentTurn] = []
        self.messages: list[Message] = []
        self.usage = Usage()
        self.cost: float | None = None

    def result(self, text: str, stop_reason: str | None) -> AgentResult:
        return AgentResult(
            text=text,
            turns=tuple(self.turns),
            messages=tuple(self.messages),
            usage=self.usage,
            files_changed=self.context.changes.paths,
            stop_reason=stop_reason,
            cost=self.cost,
        )

    def changed(self) -> str:
        """``; files changed: a, b`` (or ``; no file changed``) for messages."""
        paths = self.context.changes.paths
        return f"; files changed: {', '.join(paths)}" if paths else "; no file changed"

    def ask(self, complete: Complete, request: CompletionRequest, index: int) -> Completion:
        choice = self.options.tool_choice if index == 1 else "auto"
        asked = request.model_copy(
            update={
                "prompt": None,
                "messages": tuple(self.messages),
                "tools": self.specs,
                "tool_choice": choice if self.specs else "auto",
            }
        )
        return complete(asked)

    def call(self, call: ToolCall, index: int) -> ToolCallRecord:
        meta = {"agent": self.label, "turn": index, "tool": call.name, "call_id": call.id}
        started = self.clock.monotonic()
        with self.telemetry.span("agent.tool", meta) as span:
            tool = self.by_name.get(call.name)
            try:
                if tool is None:
                    offered = ", ".join(self.by_name) or "none"
                    raise ToolError(f"no tool named {call.name!r} here (tools: {offered})")
                output, is_error = tool.run(call.arguments, self.context), False
            except OtpyError as exc:  # ToolError, OutsideWorkspaceError: the model is told
                output, is_error = str(exc), True
            span.set(is_error=is_error)
        duration = max(0.0, self.clock.monotonic() - started)
        return ToolCallRecord(call.id, call.name, call.arguments, output, is_error, duration)

    def turn(self, complete: Complete, request: CompletionRequest, index: int) -> Completion:
        """One turn in its span: the model's answer, then its tool calls (child spans)."""
        with self.telemetry.span("agent.turn", {"agent": self.label, "turn": index}) as span:
            completion = self.ask(complete, request, index)
            span.set(
                provider=completion.provider,
                tokens=completion.usage.total_tokens,
                tool_calls=len(completion.tool_calls),
                stop_reason=completion.stop_reason,
            )
            self.record(completion, index)
        return completion

    def record(self, completion: Completion, index: int) -> None:
        self.usage = self.usage + completion.usage
        cost = self.options.cost(completion)
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost
        self.messages.append(completion.message())
        records = tuple(self.call(call, index) for call in completion.tool_calls)
        if records:
            results = tuple(
                ToolResult(call_id=r.id, name=r.name, content=r.output, is_error=r.is_error)
                for r in records
            )
            self.messages.append(Message(role="user", tool_results=results))
        self.turns.append(
            AgentTurn(
                index=index,
                text=completion.text,
                calls=records,
                usage=completion.usage,
                provider=completion.provider,
                model=completion.model,
                latency=completion.latency,
                stop_reason=completion.stop_reason,
                cost=cost,
            )
        )


def run_agent(
    complete: Complete,
    request: CompletionRequest,
    tools: Sequence[Tool],
    *,
    context: ToolContext | None = None,
    options: AgentOptions | None = None,
    telemetry: Telemetry | None = None,
    clock: Clock = SYSTEM_CLOCK,
    label: str = "agent",
) -> AgentResult:
    """Run the loop (see the module docstring) from ``request`` (its prompt and messages
    start the conversation; its system prompt and sampling settings hold for every turn)
    and return the :class:`AgentResult`. Blocks the calling thread.

    Raises :class:`~otpy.errors.AgentLimitError` (``.result``: the run so far) when the
    model still calls tools after ``max_turns`` turns, or when ``token_budget`` is spent
    before it is done; what ``complete`` raises goes on unchanged, with a note saying how
    far the run got.
    """
    options = options or AgentOptions()
    run = _Run(tools, context or ToolContext(), options, telemetry or get_telemetry(), clock, label)
    run.messages.extend(request.conversation())
    with run.telemetry.span("agent.run", {"agent": label, "tools": len(tools)}) as span:
        try:
            completion = _loop(run, complete, request)
        except BaseException as exc:
            span.set(turns=len(run.turns), tokens=run.usage.total_tokens)
            if not isinstance(exc, AgentLimitError):
                exc.add_note(f"agent {label!r}: {len(run.turns)} turns done{run.changed()}")
            raise
        span.set(turns=len(run.turns), tokens=run.usage.total_tokens)
    return run.result(completion.text, completion.stop_reason)


def _loop(run: _Run, complete: Complete, request: CompletionRequest) -> Completion:
    options = run.options
    budget = options.token_budget if options.token_budget is not None else math.inf
    for index in range(1, options.max_turns + 1):
        completion = run.turn(complete, request, index)
        if not completion.tool_calls:
            return completion
        if run.usage.total_tokens >= budget:
            raise AgentLimitError(
                f"agent {run.label!r} spent its token budget ({run.usage.total_tokens} of "
                f"{options.token_budget} tokens) after {index} turns, before it finished"
                f"{run.changed()}",
                limit="token_budget",
                result=run.result(completion.text, "token_budget"),
            )
    raise AgentLimitError(
        f"agent {run.label!r} reached max_turns ({options.max_turns}) and still calls tools"
        f"{run.changed()}",
        limit="max_turns",
        result=run.result(run.turns[-1].text, "max_turns"),
    )
