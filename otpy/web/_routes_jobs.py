"""The jobs routes: list, start from a job file's content, status, trials, best, and
pause / resume / cancel (``rt.jobs``)."""

from __future__ import annotations

import json
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from otpy.actors import JobHandle
from otpy.documents import parse_yaml
from otpy.errors import JobError
from otpy.optimize import parse_job_file
from otpy.web._context import Ctx, WebContext
from otpy.web._errors import ApiError
from otpy.web._views import job_view, trial_view

__all__ = ["router"]

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

REQUEST_FILE: Final = "request.yaml"
"""What errors in a posted job file call it (in the server's folder)."""

_JOB_FILE_BODY: Final = {
    "requestBody": {
        "required": True,
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["content"],
                    "properties": {
                        "content": {"type": "string", "description": "the job file (YAML)"},
                        "job_id": {"type": "string"},
                    },
                }
            },
        },
    }
}


def _handle(ctx: WebContext, job_id: str) -> JobHandle:
    try:
        return ctx.jobs.get(job_id)
    except JobError as exc:
        raise ApiError(404, str(exc)) from None


@router.get("", summary="Every job")
def list_jobs(ctx: Ctx) -> dict[str, Any]:
    """Every job started here and every job in the store, by id."""
    return {"jobs": [job_view(status) for status in ctx.rt.jobs.list()]}


@router.post(
    "", status_code=201, summary="Start a job from a job file", openapi_extra=_JOB_FILE_BODY
)
async def start_job(request: Request, ctx: Ctx) -> dict[str, Any]:
    """Start a job from a job file's content: the YAML itself as the body, or JSON
    ``{"content": ..., "job_id": ...}``. Relative ``program`` and ``trainset`` paths resolve
    in the server's folder and may not leave it; ``store`` is refused (jobs started here
    checkpoint to the runtime's store)."""
    body = await request.body()
    job_id: str | None = None
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise ApiError(400, f"the body is not JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("content"), str):
            raise ApiError(422, 'a JSON body is {"content": "<the job file>", "job_id": ...}')
        content, job_id = data["content"], data.get("job_id")
        if job_id is not None and not isinstance(job_id, str):
            raise ApiError(422, "job_id must be a string")
    else:
        try:
            content = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "the job file is not UTF-8 text") from None
    status = await run_in_threadpool(_start, ctx, content, job_id)
    ctx.hub.touch(status["job_id"])
    return status


def _start(ctx: WebContext, content: str, job_id: str | None) -> dict[str, Any]:
    data = parse_yaml(content, REQUEST_FILE)
    if isinstance(data, dict):
        if data.get("kind") == "dspy":
            raise ApiError(
                422,
                "kind: dspy: a DSPy job file names Python code to import (program, metric as "
                "module:attr), which the API does not do; start it with `otpy optimize` or "
                "rt.jobs.start_dspy in the server's process, then steer it here",
            )
        if "store" in data:
            raise ApiError(
                422, "store: a job started through the API checkpoints to the runtime's store"
            )
        for field in ("program", "trainset"):
            if isinstance(data.get(field), str):
                ctx.confined(data[field], field)
    job = parse_job_file(content, ctx.base_dir / REQUEST_FILE)
    arguments = job.start_arguments()
    if job_id is not None:
        arguments["job_id"] = job_id
    return job_view(ctx.rt.jobs.start(**arguments).status())


@router.get("/{job_id}", summary="A job's status")
async def get_job(job_id: str, ctx: Ctx) -> dict[str, Any]:
    """The job's status now (state, evaluations done of the total, in flight, best score,
    tokens, cost, elapsed, ETA) and ``progress`` (0..1)."""
    handle = ctx.jobs.cached(job_id)  # a live or finished job: its status without I/O
    if handle is None:
        handle = await run_in_threadpool(_handle, ctx, job_id)
    return job_view(handle.status())


@router.get("/{job_id}/trials", summary="A job's finished candidates")
def get_trials(ctx: Ctx, job_id: str, examples: bool = False) -> dict[str, Any]:
    """Every finished candidate, by index (with per-example results if ``examples``)."""
    try:
        trials = ctx.rt.jobs.trials(job_id)
    except JobError as exc:
        raise ApiError(404, str(exc)) from None
    return {"job_id": job_id, "trials": [trial_view(t, examples=examples) for t in trials]}


@router.get("/{job_id}/best", summary="A job's best candidate")
def get_best(job_id: str, ctx: Ctx) -> dict[str, Any]:
    """The best candidate so far with its per-example results; 404 before the first."""
    handle = _handle(ctx, job_id)
    best = handle.best()
    if best is None:
        raise ApiError(404, f"job {job_id!r} has no finished candidate yet")
    return trial_view(best, examples=True)


def _steer(ctx: WebContext, job_id: str, action: str) -> dict[str, Any]:
    handle = _handle(ctx, job_id)
    status = getattr(handle, action)()
    ctx.hub.touch(job_id)
    return job_view(status)


@router.post("/{job_id}/pause", summary="Pause a job")
def pause_job(job_id: str, ctx: Ctx) -> dict[str, Any]:
    """Start no new evaluation; those running finish and are kept. 409 if it has ended."""
    return _steer(ctx, job_id, "pause")


@router.post("/{job_id}/resume", summary="Resume a paused job")
def resume_job(job_id: str, ctx: Ctx) -> dict[str, Any]:
    """Go on after a pause. 409 if it has ended."""
    return _steer(ctx, job_id, "resume")


@router.post("/{job_id}/cancel", summary="Cancel a job")
def cancel_job(job_id: str, ctx: Ctx) -> dict[str, Any]:
    """End the job now, keeping the best so far."""
    return _steer(ctx, job_id, "cancel")
