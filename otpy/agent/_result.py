"""What an agent loop did: its turns, each with its tool calls, and what it ended with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otpy.providers import Completion, Message, Usage

__all__ = ["AgentResult", "AgentTurn", "ToolCallRecord"]

SHOWN_OUTPUT = 2_000
"""How much of a tool's output :meth:`AgentResult.summary` keeps per call."""


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One tool call of a turn: the call's ``id``, ``name`` and ``arguments``, the
    ``output`` sent back, whether it was an error, and how long it took (seconds)."""

    id: str
    name: str
    arguments: Mapping[str, Any]
    output: str
    is_error: bool
    duration: float

    def summary(self) -> dict[str, Any]:
        shown = self.output if len(self.output) <= SHOWN_OUTPUT else self.output[:SHOWN_OUTPUT]
        return {
            "id": self.id,
            "name": self.name,
            "arguments": dict(self.arguments),
            "output": shown,
            "is_error": self.is_error,
        }


@dataclass(frozen=True, slots=True)
class AgentTurn:
    """One model turn: its ``index`` (1 = first), the ``text`` it said, the tool ``calls``
    it made (with their results), its ``usage`` and ``cost`` (dollars, when a price was
    given for its model or provider; else None), the ``provider`` and ``model`` that
    served it, its ``latency`` and ``stop_reason``."""

    index: int
    text: str
    calls: tuple[ToolCallRecord, ...]
    usage: Usage
    provider: str
    model: str
    latency: float
    stop_reason: str | None
    cost: float | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "turn": self.index,
            "text": self.text,
            "tool_calls": [call.summary() for call in self.calls],
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cost": self.cost,
            "provider": self.provider,
            "model": self.model,
            "stop_reason": self.stop_reason,
        }


@dataclass(frozen=True, slots=True)
class AgentResult:
    """An agent's run: the final ``text``, every turn, the whole conversation
    (``messages``, tool calls and results included: give them back as ``messages`` to
    continue it), the total ``usage`` and ``cost``, the workspace files it created,
    changed or deleted (``files_changed``, relative to the workspace root, in the order
    first changed), and why it stopped."""

    text: str
    turns: tuple[AgentTurn, ...]
    messages: tuple[Message, ...]
    usage: Usage
    files_changed: tuple[str, ...]
    stop_reason: str | None
    cost: float | None = None

    @property
    def tool_calls(self) -> tuple[ToolCallRecord, ...]:
        """Every tool call of every turn, in order."""
        return tuple(call for turn in self.turns for call in turn.calls)

    def completion(self) -> Completion:
        """The run as one Completion (final text, summed usage and latency, the provider
        and model of the last turn), for code that expects one answer."""
        last = self.turns[-1] if self.turns else None
        return Completion(
            text=self.text,
            usage=self.usage,
            latency=sum(turn.latency for turn in self.turns),
            model=last.model if last else "",
            provider=last.provider if last else "",
            stop_reason=self.stop_reason,
        )

    def summary(self) -> dict[str, Any]:
        """Plain data for a step result's metadata: ``agent_turns`` (tool outputs cut to 2,000
        characters), files changed, tool call count, stop reason, cost."""
        return {
            "agent_turns": [turn.summary() for turn in self.turns],
            "files_changed": list(self.files_changed),
            "tool_calls": len(self.tool_calls),
            "stop_reason": self.stop_reason,
            "cost": self.cost,
        }
