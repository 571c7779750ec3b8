"""What the API answers, as JSON-ready dicts: jobs, trials, providers, pipeline runs,
agent replies and traces. Every view that may hold configured or provider-made text goes
through :func:`otpy.redaction.redact_value`: no API key reaches a response."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from otpy.actors import PipelineRun
from otpy.agent import AgentReply
from otpy.config import ProviderConfig
from otpy.optimize import JobStatus, Trial
from otpy.providers import ProviderEntry
from otpy.redaction import REDACTED, redact_value
from otpy.telemetry import Event, TraceNode

__all__ = [
    "job_view",
    "provider_view",
    "reply_view",
    "run_view",
    "trace_view",
    "trial_view",
]


def job_view(status: JobStatus) -> dict[str, Any]:
    """A job's status, with ``progress`` (0..1, None when the total is unknown)."""
    data: dict[str, Any] = redact_value(status.model_dump(mode="json"))
    total = status.evaluations_total
    data["progress"] = min(1.0, status.evaluations_done / total) if total else None
    data["finished"] = status.finished
    return data


def trial_view(trial: Trial, *, examples: bool = False) -> dict[str, Any]:
    """One finished candidate (its per-example results only with ``examples``)."""
    exclude = None if examples else {"examples"}
    data: dict[str, Any] = redact_value(trial.model_dump(mode="json", exclude=exclude))
    return data


def provider_view(entry: ProviderEntry, config: ProviderConfig | None) -> dict[str, Any]:
    """A provider: what it is, its health, its breaker, and its limiter's buckets (each
    with ``used``: the share of the limit the window counts now)."""
    health = entry.health()
    breaker = entry.breaker.statistics()
    buckets = []
    if entry.limiter is not None:
        for bucket in entry.limiter.statistics().buckets:
            buckets.append(
                {
                    "dimension": bucket.dimension,
                    "limit": bucket.limit,
                    "period": bucket.period,
                    "level": bucket.level,
                    "used": bucket.level / bucket.limit if bucket.limit else 0.0,
                }
            )
    data = {
        "name": entry.name,
        "type": type(entry.provider).__name__,
        "capabilities": sorted(entry.capabilities),
        "priority": entry.priority,
        "weight": entry.weight,
        "healthy": health.healthy,
        "reason": health.reason,
        "health": asdict(health),
        "breaker": {
            "state": breaker.state,
            "retry_in": breaker.retry_in,
            "fail_counter": breaker.fail_counter,
            "fail_max": breaker.fail_max,
            "trips": breaker.trips,
            "rejected": breaker.rejected,
        },
        "limits": entry.limits.model_dump(mode="json"),
        "buckets": buckets,
        "config": _config_view(config),
    }
    return dict(redact_value(data))


def _config_view(config: ProviderConfig | None) -> dict[str, Any] | None:
    """A provider's configuration without its key (``api_key`` shows only whether one is
    set), every other value redacted."""
    if config is None:
        return None
    data = config.model_dump(mode="json", exclude={"api_key"})
    data["api_key"] = REDACTED if config.api_key is not None else None
    return dict(redact_value(data))


def run_view(run: PipelineRun) -> dict[str, Any]:
    """A pipeline run: running (with the steps done so far) or its result."""
    data: dict[str, Any] = {"run_id": run.run_id, "pipeline": run.pipeline}
    if not run.done():
        data["status"] = "running"
        data["steps"] = [o.model_dump(mode="json") for o in run.outcomes]
        return dict(redact_value(data))
    try:
        result = run.wait(0)
    except Exception as exc:  # refused before a step ran, or its worker was lost
        data.update(status="failed", error=f"{type(exc).__name__}: {exc}", steps=[])
        return dict(redact_value(data))
    data.update(result.model_dump(mode="json"))
    data["text"] = result.text
    return dict(redact_value(data))


def reply_view(reply: AgentReply) -> dict[str, Any]:
    """An agent request's reply."""
    return dict(redact_value(reply.model_dump(mode="json")))


def trace_view(nodes: list[TraceNode]) -> list[dict[str, Any]]:
    """A trace's event trees (from ``EventStore.trace_tree``) as nested dicts."""

    def node(item: TraceNode) -> dict[str, Any]:
        return {**event_view(item.event), "children": [node(child) for child in item.children]}

    return [node(item) for item in nodes]


def event_view(event: Event) -> dict[str, Any]:
    """One telemetry event (its metadata is redacted when it is emitted)."""
    return {
        "id": event.event_id,
        "name": event.name,
        "time": event.timestamp,
        "measurements": dict(event.measurements),
        "metadata": redact_value(dict(event.metadata)),
        "correlation_id": event.correlation_id,
        "parent_id": event.parent_id,
    }
