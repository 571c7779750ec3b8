"""Tool calls and agent loops: a tool that failed, a loop that hit its limits; and the
routing agent (``rt.chat``) refusing a request."""

from __future__ import annotations

from typing import Any

from otpy.errors._base import OtpyError

__all__ = ["AgentError", "AgentLimitError", "ToolError"]


class ToolError(OtpyError):
    """A tool call failed in a way the model should hear about (a file not found, an edit
    whose text is not there, arguments that do not fit): the agent loop sends the message
    back as an error result and goes on. ``tool`` names the tool (None if unknown)."""

    def __init__(self, message: str, *, tool: str | None = None) -> None:
        super().__init__(message)
        self.tool = tool


class AgentLimitError(OtpyError):
    """An agent loop stopped at a limit before the model finished: ``limit`` is
    ``"max_turns"`` or ``"token_budget"``; ``result`` is the AgentResult so far (its turns,
    usage and the files already changed)."""

    def __init__(self, message: str, *, limit: str, result: Any = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.result = result


class AgentError(OtpyError):
    """The routing agent (``rt.chat``) cannot take a request: an empty or oversized
    message, inputs that are not a mapping, no route matching and no default, an unknown
    request id."""
