"""Tool calls and agent loops: a tool that failed, a loop that hit its limits."""

from __future__ import annotations

from typing import Any

from otpy.errors._base import OtpyError

__all__ = ["AgentLimitError", "ToolError"]


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
