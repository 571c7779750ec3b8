"""What the route handlers share: the runtime, the event hub, the pipeline runs started
through the API, and the folder request paths are confined to."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from otpy.actors import PipelineRun
from otpy.web._errors import ApiError
from otpy.web._events import EventHub
from otpy.web._lookup import JobLookup
from otpy.web._protocol import WebRuntime

__all__ = ["Ctx", "RunBook", "WebContext", "context"]


class RunBook:
    """The pipeline runs started through the API, by run id: every one still running and
    the last ``keep`` finished. Thread-safe."""

    def __init__(self, keep: int = 1000) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, PipelineRun] = OrderedDict()

    def add(self, run: PipelineRun) -> None:
        with self._lock:
            self._runs[run.run_id] = run
            done = [key for key, r in self._runs.items() if r.done()]
            for key in done[: max(0, len(done) - self.keep)]:
                del self._runs[key]

    def get(self, run_id: str) -> PipelineRun | None:
        with self._lock:
            return self._runs.get(run_id)


@dataclass
class WebContext:
    """The server's state: ``rt``, the ``hub``, the ``runs`` and ``base_dir`` (relative
    paths in requests resolve there, and may not leave it)."""

    rt: WebRuntime
    hub: EventHub
    base_dir: Path
    runs: RunBook = field(default_factory=RunBook)

    @property
    def jobs(self) -> JobLookup:
        """The job handles, shared with the event hub."""
        return self.hub.jobs

    def confined(self, relative: str, what: str) -> Path:
        """``relative`` resolved under ``base_dir``; ApiError 403 if it points outside
        (an absolute path, ``..``, a link leading out)."""
        base = self.base_dir.resolve()
        path = (base / relative).resolve()
        if not path.is_relative_to(base):
            raise ApiError(403, f"{what} {relative!r} is outside the server's folder")
        return path


async def context(request: Request) -> WebContext:
    """The WebContext of the app serving ``request`` (a FastAPI dependency; async, so it
    costs no trip to the thread pool)."""
    ctx: WebContext = request.app.state.otpy
    return ctx


Ctx = Annotated[WebContext, Depends(context)]
"""A handler's parameter for the WebContext."""
