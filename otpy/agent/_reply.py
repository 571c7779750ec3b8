"""What the agent answers: an :class:`AgentReply` per request, with one
:class:`AgentAttempt` per run it made (the classifier, the route's pipeline, fallbacks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from otpy.agent._routes import AgentConfig
from otpy.agent._routing import Router, classifier_pipeline
from otpy.errors import ConfigurationError, OtpyError

__all__ = [
    "AgentAttempt",
    "AgentReply",
    "AgentState",
    "AttemptStatus",
    "check_routes",
    "response_of",
]

AgentState: TypeAlias = Literal["running", "completed", "failed"]
AttemptStatus: TypeAlias = Literal["running", "completed", "failed", "cancelled", "timed_out"]


class AgentAttempt(BaseModel):
    """One run the agent made for a request: the route (``classifier`` for the
    classifier), its pipeline run id, how it ended and its error, and how long it took."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    route: str
    run_id: str | None = None
    status: AttemptStatus = "running"
    error: str | None = None
    duration: float | None = None


class AgentReply(BaseModel):
    """A request to the agent, as it stands: ``state`` running / completed / failed,
    the ``pipeline`` (route) that answered or is answering and ``reason`` (why that
    route), ``fallback_used``, the ``response`` (the pipeline's ``response`` output, else
    its only output, else the text of its last step) and every ``outputs``, ``duration``
    in seconds once it ended, the ``error`` of a failed request, and the ``attempts``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    message: str
    state: AgentState = "running"
    pipeline: str | None = None
    reason: str = ""
    fallback_used: bool = False
    response: Any = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    duration: float | None = None
    error: str | None = None
    attempts: tuple[AgentAttempt, ...] = ()
    started_at: float = 0.0

    @property
    def finished(self) -> bool:
        return self.state != "running"


def response_of(outputs: dict[str, Any], text: str) -> Any:
    """A pipeline's answer: its ``response`` output, else its only output, else ``text``
    (the last step's text), else all its outputs."""
    if "response" in outputs:
        return outputs["response"]
    if len(outputs) == 1:
        return next(iter(outputs.values()))
    return text or outputs or None


def check_routes(config: AgentConfig, compile_source: Callable[[Any], Any]) -> None:
    """Compile every route's pipeline (and the classifier's) with ``compile_source``
    (against the registered step types; providers are checked when a request runs, so
    they may be registered after the runtime starts) and check that each takes the
    request's input: ConfigurationError naming the route, the file and the problem."""
    field = config.input
    sources: list[tuple[str, Any]] = [(route.name, route.pipeline) for route in config.routes]
    if Router(config).classifies:
        sources.append(("classifier", classifier_pipeline(config)))
    for name, source in sources:
        where = f"agent route {name!r}" + (f" ({source})" if isinstance(source, str) else "")
        try:
            plan = compile_source(source)
        except OtpyError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None
        inputs = plan.pipeline.inputs
        if field not in inputs:
            raise ConfigurationError(
                f"{where}: the pipeline has no input {field!r} for the request's text "
                f"(inputs: {', '.join(inputs) or 'none'}); declare it or set agent.input"
            )
