"""The ASGI app: the JSON API (OpenAPI schema at ``/openapi.json``), the event stream and
the dashboard (static files shipped in the package), behind the :class:`RequestGate`."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from otpy.web._context import WebContext
from otpy.web._errors import install_error_handlers
from otpy.web._events import EventHub
from otpy.web._protocol import WebRuntime
from otpy.web._routes_jobs import router as jobs_router
from otpy.web._routes_runtime import router as runtime_router
from otpy.web._routes_work import router as work_router
from otpy.web._security import LOOPBACK_NAMES, RequestGate, is_loopback

__all__ = ["MAX_BODY", "STATIC", "create_app"]

MAX_BODY: Final = 1 << 20
"""The default cap on a request body, in bytes (1 MiB)."""
STATIC: Final = Path(str(files("otpy.web") / "static"))
"""The dashboard's files (HTML, JS, CSS), shipped in the package."""


def create_app(
    rt: WebRuntime,
    *,
    token: str,
    host: str = "127.0.0.1",
    max_body: int = MAX_BODY,
    base_dir: str | Path | None = None,
    ready: threading.Event | None = None,
) -> tuple[Any, WebContext]:
    """The app serving ``rt`` and its :class:`WebContext`, for a server bound to ``host``.
    ``token`` guards mutating requests, and every request if ``host`` is not a loopback
    address (a loopback server answers only loopback Host names); ``base_dir`` (default:
    the working folder) is where request paths resolve; ``ready`` is set once the app has
    started (its event hub listening)."""
    hub = EventHub(rt)
    ctx = WebContext(rt, hub, Path(base_dir) if base_dir is not None else Path.cwd())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        if ready is not None:
            ready.set()
        yield
        await hub.stop()

    app = FastAPI(
        title=f"otpy runtime {rt.name!r}",
        summary="Supervision tree, jobs, pipeline runs, providers, metrics and the agent.",
        version="1",
        docs_url=None,  # the interactive docs load scripts from a CDN: not here
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.otpy = ctx
    install_error_handlers(app)
    app.include_router(runtime_router)
    app.include_router(jobs_router)
    app.include_router(work_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    loopback = is_loopback(host)
    gated = RequestGate(
        app,
        token=token,
        protect_reads=not loopback,
        max_body=max_body,
        hosts=LOOPBACK_NAMES | {host.strip("[]").lower()} if loopback else None,
    )
    return gated, ctx
