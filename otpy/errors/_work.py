"""A pipeline run or an optimization job that cannot do what was asked."""

from __future__ import annotations

from typing import Any

from otpy.errors._base import ConfigurationError, OtpyError

__all__ = [
    "ExpressionError",
    "JobClaimedError",
    "JobError",
    "LeaseLostError",
    "OutsideWorkspaceError",
    "PipelineError",
]


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


class JobClaimedError(JobError):
    """Starting or resuming a job found it claimed by another live runtime: ``job_id``,
    ``owner`` (``runtime NAME, pid N on HOST``), ``state`` (as stored) and ``expires``
    (when its lease runs out unless renewed, epoch seconds)."""

    def __init__(
        self, message: str, *, job_id: str, owner: str, state: str, expires: float | None
    ) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.owner = owner
        self.state = state
        self.expires = expires


class LeaseLostError(JobError):
    """A checkpoint write (or a lease renewal) was refused: another runtime claimed the
    job since (``owner`` names it, None if the lease was released). The runner that gets
    it stops at once and never writes again."""

    def __init__(self, message: str, *, job_id: str, owner: str | None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.owner = owner


class OutsideWorkspaceError(ConfigurationError):
    """A path leads outside the directory it is confined to (an agent's workspace, a
    pipeline's files): an absolute path outside it, ``..`` climbing out, or a symbolic
    link leading out. ``path`` is the path as given, ``root`` the directory, ``what``
    names the use (``"path"``, ``"claude_options.cwd"``, ...)."""

    def __init__(self, message: str, *, path: str, root: str, what: str) -> None:
        super().__init__(message)
        self.path = path
        self.root = root
        self.what = what


class ExpressionError(ConfigurationError):
    """A condition or template expression that does not parse, or cannot be evaluated
    with the values it got: ``text`` is the expression, ``position`` the 1-based column
    of the problem (0 when it is not about one place), ``reason`` what is wrong."""

    def __init__(self, reason: str, *, text: str, position: int = 0) -> None:
        where = f" at column {position}" if position else ""
        super().__init__(f"{reason}{where} in {text!r}")
        self.reason = reason
        self.text = text
        self.position = position
