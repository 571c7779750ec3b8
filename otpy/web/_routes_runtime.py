"""The runtime's routes: the supervision tree, one actor's status (suspend, resume), the
providers, the metrics (JSON and Prometheus text) and traces by id.

The tree and actor status come from :mod:`otpy.observer` and :mod:`otpy.sys`; the
Prometheus text from :mod:`otpy.telemetry.prometheus`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

import otpy.observer
import otpy.sys
from otpy.redaction import redact_value
from otpy.supervision import whereis
from otpy.telemetry.prometheus import exposition
from otpy.web._context import Ctx, WebContext
from otpy.web._errors import ApiError
from otpy.web._views import provider_view, trace_view

__all__ = ["router"]

router = APIRouter()


@router.get("/api/tree", tags=["runtime"], summary="The supervision tree")
def get_tree(ctx: Ctx) -> dict[str, Any]:
    """A snapshot of the runtime's supervision tree (``otpy.observer.tree``): every
    supervisor's strategy and restart intensity, every child's state, restarts, mailbox
    and whether it is suspended."""
    snapshot = otpy.observer.tree(ctx.rt.supervisor)
    return {"runtime": ctx.rt.name, "state": ctx.rt.state, **redact_value(snapshot.to_dict())}


def _actor(ctx: WebContext, name: str) -> Any:
    """The live actor registered as ``name`` under this runtime; ApiError 404 if none."""
    prefix = f"{ctx.rt.name}."
    ref = whereis(name) if name.startswith(prefix) else None
    if ref is None:
        raise ApiError(
            404, f"no actor named {name!r} in runtime {ctx.rt.name!r} (names start {prefix!r})"
        )
    return ref


def _status(ref: Any) -> dict[str, Any]:
    return dict(redact_value(otpy.sys.get_status(ref).to_dict()))


@router.get("/api/actors/{name}", tags=["runtime"], summary="One actor's status")
def get_actor(name: str, ctx: Ctx) -> dict[str, Any]:
    """``otpy.sys.get_status`` of the actor registered as ``name`` (``<runtime>.steps``,
    ``<runtime>.job.<id>``, ...): its module, mailbox, the message it is handling,
    uptime, restarts and a state summary (keys masked)."""
    return _status(_actor(ctx, name))


@router.post("/api/actors/{name}/suspend", tags=["runtime"], summary="Suspend an actor")
def suspend_actor(name: str, ctx: Ctx) -> dict[str, Any]:
    """Suspend the actor: its calls and casts wait in its mailbox until it is resumed."""
    ref = _actor(ctx, name)
    otpy.sys.suspend(ref)
    return _status(ref)


@router.post("/api/actors/{name}/resume", tags=["runtime"], summary="Resume an actor")
def resume_actor(name: str, ctx: Ctx) -> dict[str, Any]:
    """Resume a suspended actor; the messages it held are handled first, in order."""
    ref = _actor(ctx, name)
    otpy.sys.resume(ref)
    return _status(ref)


@router.get("/api/providers", tags=["providers"], summary="Providers and their health")
def get_providers(ctx: Ctx) -> dict[str, Any]:
    """Every provider: health, breaker state, and its rate limiter's use per bucket
    (requests and tokens per minute: ``level`` of ``limit``, ``used`` as a share)."""
    configs = ctx.rt.config.providers
    return {
        "providers": [
            provider_view(entry, configs.get(entry.name.split("/", 1)[0]))
            for entry in ctx.rt.providers.list_providers()
        ]
    }


@router.get("/api/metrics", tags=["telemetry"], summary="Metrics as JSON")
def get_metrics(ctx: Ctx) -> dict[str, Any]:
    """Every counter, gauge and histogram (count, mean, p50 / p90 / p99) of the runtime's
    telemetry hub, keyed ``name`` or ``name{tag=value,...}``."""
    return {"metrics": redact_value(ctx.rt.telemetry.metrics.snapshot())}


@router.get(
    "/metrics",
    tags=["telemetry"],
    summary="Metrics in Prometheus text format",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def get_prometheus(ctx: Ctx) -> Response:
    """The Prometheus text exposition (format 0.0.4) of the runtime's metrics."""
    return Response(
        exposition(ctx.rt.telemetry.metrics), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


@router.get("/api/traces/{trace_id}", tags=["telemetry"], summary="A trace by id")
def get_trace(trace_id: str, ctx: Ctx) -> dict[str, Any]:
    """The events of trace ``trace_id`` (a pipeline run's ``run_id``, a job's id) still
    in the event store, as trees of spans and events."""
    roots = ctx.rt.telemetry.store.trace_tree(trace_id)
    if not roots:
        raise ApiError(404, f"no events of trace {trace_id!r} in the event store")
    return {"trace_id": trace_id, "events": trace_view(roots)}
