"""A pipeline run or an optimization job that cannot do what was asked."""

from __future__ import annotations

from typing import Any

from otpy.errors._base import OtpyError

__all__ = ["AgentError", "JobError", "PipelineError"]


class PipelineError(OtpyError):
    """A pipeline run failed or was cancelled: ``result`` is its PipelineResult (every step
    that ran, with its output or error) and ``step`` the step that failed (or None)."""

    def __init__(self, message: str, *, result: Any = None, step: str | None = None) -> None:
        super().__init__(message)
        self.result = result
        self.step = step


class JobError(OtpyError):
    """An optimization job cannot do what was asked: no such job, a job id already in the
    store, pausing a job that has ended, resuming without its metric."""


class AgentError(OtpyError):
    """The agent cannot do what was asked: an empty or oversized message, bad inputs, no
    route matching and no default, an unknown request id."""
