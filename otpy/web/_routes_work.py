"""The routes that start work and follow it: pipeline runs, the agent's chat, and the
live event stream (SSE)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from otpy.documents import parse_yaml
from otpy.errors import AgentError
from otpy.web._context import Ctx, WebContext
from otpy.web._errors import ApiError
from otpy.web._views import reply_view, run_view

__all__ = ["router"]

router = APIRouter()


class RunRequest(BaseModel):
    """A pipeline to run: ``pipeline`` (YAML text or a mapping) or ``file`` (a pipeline
    file in the server's folder), its ``inputs`` and ``variables``."""

    model_config = ConfigDict(extra="forbid")

    pipeline: str | dict[str, Any] | None = None
    file: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    variables: dict[str, Any] = Field(default_factory=dict)


class ChatRequest(BaseModel):
    """A request to the agent: its ``message`` and any further pipeline ``inputs``."""

    model_config = ConfigDict(extra="forbid")

    message: str
    inputs: dict[str, Any] = Field(default_factory=dict)


@router.post("/api/pipelines/runs", status_code=202, tags=["pipelines"], summary="Start a run")
def start_run(body: RunRequest, ctx: Ctx) -> dict[str, Any]:
    """Check the pipeline and start it in a supervised worker; the run (its ``run_id``,
    ``status`` running) at once. A pipeline that does not compile is a 422 naming the
    step and field."""
    if (body.pipeline is None) == (body.file is None):
        raise ApiError(422, "give one of pipeline (YAML text or a mapping) and file")
    source: Any
    if body.file is not None:
        source = ctx.confined(body.file, "file")
    elif isinstance(body.pipeline, str):
        source = parse_yaml(body.pipeline, "<request>")  # text, never read as a path
        if not isinstance(source, dict):
            raise ApiError(422, "pipeline: the YAML text must hold a mapping (a pipeline)")
    else:
        source = body.pipeline
    workspace = None if body.file is not None else _inline_workspace(ctx, source)
    run = ctx.rt.start_pipeline(
        source, body.inputs, variables=body.variables or None, workspace=workspace
    )
    ctx.runs.add(run)
    return run_view(run)


_DIRECTORIES = ("workspace_dir", "output_dir", "checkpoint_dir")


def _inline_workspace(ctx: WebContext, source: Any) -> Path:
    """A pipeline sent in the request names its directories relative to the server's
    folder and inside it (ApiError 403 otherwise), and its workspace is the only place
    its file parts are read from (the server's folder itself is not)."""
    documents = [source, source.get("workflow")] if isinstance(source, dict) else []
    documents += [d.get("defaults") for d in documents if isinstance(d, dict)]
    named: str | None = None
    for document in documents:
        if not isinstance(document, dict):
            continue
        for field in _DIRECTORIES:
            value = document.get(field)
            if isinstance(value, str) and value:
                ctx.confined(value, field)
                named = value if field == "workspace_dir" else named
    if named is not None:
        return ctx.confined(named, "workspace_dir")
    configured = Path(ctx.rt.config.tools.workspace)  # the operator's: trusted as it is
    return configured if configured.is_absolute() else ctx.base_dir / configured


@router.get("/api/pipelines/runs/{run_id}", tags=["pipelines"], summary="A run's status")
def get_run(run_id: str, ctx: Ctx) -> dict[str, Any]:
    """A run started through the API: running (with the steps done so far) or its
    result (status, outputs, every step's output, tokens, timing and error)."""
    run = ctx.runs.get(run_id)
    if run is None:
        raise ApiError(404, f"no pipeline run {run_id!r} was started through this server")
    return run_view(run)


@router.post("/api/agent/chat", status_code=202, tags=["agent"], summary="Ask the agent")
def chat(body: ChatRequest, ctx: Ctx) -> dict[str, Any]:
    """Route the message to a pipeline (rules, classifier, default) and start it; the
    request (its ``id``, ``state`` running, the ``pipeline`` chosen) at once. Follow it
    at ``/api/agent/runs/{id}`` or on the event stream."""
    return reply_view(ctx.rt.chat.ask(body.message, body.inputs))


@router.get("/api/agent/runs/{request_id}", tags=["agent"], summary="An agent request")
def get_agent_run(request_id: str, ctx: Ctx) -> dict[str, Any]:
    """The request: its state, the pipeline used and why, the response, duration,
    whether a fallback was used, and each attempt."""
    try:
        return reply_view(ctx.rt.chat.get(request_id))
    except AgentError as exc:
        raise ApiError(404, str(exc)) from None


@router.get("/api/agent/runs", tags=["agent"], summary="Recent agent requests")
def list_agent_runs(ctx: Ctx) -> dict[str, Any]:
    """The last 50 requests, oldest first."""
    return {"runs": [reply_view(reply) for reply in ctx.rt.chat.recent(50)]}


@router.get(
    "/api/events",
    tags=["events"],
    summary="The live event stream (SSE)",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(request: Request, ctx: Ctx) -> EventSourceResponse:
    """Server-sent events: ``hello`` first, then ``job`` (a job's status, at most every
    0.1 s per job), ``restart`` (a supervisor restarted a child or gave up), ``provider``
    (a breaker transition, a provider taken out or back) and ``agent`` (a request routed
    or finished); a comment every 15 s keeps the connection alive."""
    return EventSourceResponse(ctx.hub.stream(), ping=15)
