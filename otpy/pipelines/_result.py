"""What a pipeline run gives back: one :class:`StepOutcome` per step, in pipeline order, and
the :class:`PipelineResult` around them."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from otpy.errors import PipelineError
from otpy.providers import Usage

__all__ = ["PipelineResult", "RunStatus", "StepError", "StepOutcome", "StepStatus"]

StepStatus: TypeAlias = Literal["ok", "failed", "skipped", "not_run"]
"""``ok``: it ran (or its fallback did); ``failed``: it failed (``on_error: continue``, or it
ended the run); ``skipped``: its ``when`` was false; ``not_run``: the run ended before it."""

RunStatus: TypeAlias = Literal["completed", "failed", "cancelled"]


class StepError(BaseModel):
    """Why a step failed: the error's ``type`` name and its (redacted) ``message``;
    ``crash`` is True for an exception that is not an OtpyError (a bug in the step, which
    ends the run whatever ``on_error`` says)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    message: str
    crash: bool = False

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


class StepOutcome(BaseModel):
    """One step of a run: its ``status``, ``output``, ``text``, when it started (seconds
    after the run started) and its ``duration``; the tokens (``usage``), ``provider`` and
    ``model`` that served it, the ``retries`` spent (failed attempts the guard retried,
    plus the step's own); ``providers_tried``: the providers that failed before the one
    that answered (emergent fallback); ``fallback``: what took over after the step failed
    (the fallback step's name or ``provider:<name>``), and ``error``: why it failed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: str
    status: StepStatus
    output: Any = None
    text: str | None = None
    started: float = Field(default=0.0, ge=0.0)
    duration: float = Field(default=0.0, ge=0.0)
    usage: Usage = Field(default_factory=Usage)
    provider: str | None = None
    model: str | None = None
    retries: int = Field(default=0, ge=0)
    providers_tried: tuple[str, ...] = ()
    fallback: str | None = None
    error: StepError | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return self.usage.total_tokens


class PipelineResult(BaseModel):
    """A finished run of pipeline ``pipeline``: ``status`` (``completed``, ``failed`` or
    ``cancelled``), the ``run_id`` (also the correlation id of its telemetry), the
    resolved ``inputs``, the rendered ``outputs`` (every ``ok`` step's output by step name
    when the pipeline declares none), the final ``variables``, one outcome per step in
    pipeline order, the ``error`` that ended a failed run and the ``failed_step``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pipeline: str
    run_id: str
    status: RunStatus
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    variables: dict[str, Any] = Field(default_factory=dict)
    steps: tuple[StepOutcome, ...] = ()
    error: StepError | None = None
    failed_step: str | None = None
    duration: float = Field(default=0.0, ge=0.0)

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @property
    def text(self) -> str:
        """The text answer of the last step that ran ``ok`` and gave one ("" if none):
        what a metric usually scores."""
        for outcome in reversed(self.steps):
            if outcome.status == "ok" and outcome.text is not None:
                return outcome.text
        return ""

    @property
    def usage(self) -> Usage:
        """Tokens of every step together."""
        total = Usage()
        for outcome in self.steps:
            total = total + outcome.usage
        return total

    @property
    def tokens(self) -> int:
        return self.usage.total_tokens

    def step(self, name: str) -> StepOutcome:
        """The outcome of step ``name``; KeyError naming the steps if there is none."""
        for outcome in self.steps:
            if outcome.name == name:
                return outcome
        raise KeyError(f"no step {name!r} in this run (steps: {[s.name for s in self.steps]})")

    def raise_for_status(self) -> PipelineResult:
        """This result if the run completed; else PipelineError (with ``.result``) naming
        the failed step and its error, or saying it was cancelled."""
        if self.status == "completed":
            return self
        if self.status == "cancelled":
            message = f"pipeline {self.pipeline!r} (run {self.run_id}) was cancelled"
        else:
            message = (
                f"pipeline {self.pipeline!r} (run {self.run_id}) failed at step "
                f"{self.failed_step!r}: {self.error}"
            )
        raise PipelineError(message, result=self, step=self.failed_step)
