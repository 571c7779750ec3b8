"""The live event stream (``GET /api/events``): telemetry fanned out to SSE clients.

One telemetry subscription feeds every client. Its callback runs in the emitting thread
and only hands the event to the server's event loop; there:

- ``job.*`` events (and the job supervisor starting a job's runner) mark the job dirty;
  every ``flush`` seconds each dirty job's status is
  read once (from its handle's cell: no message) and sent as one ``job`` event, however
  many evaluations finished meanwhile. Jobs running or paused are also read every
  ``poll`` seconds, so a change no event reports (pause from code, examples in flight
  settling) reaches the page too.
- restarts and intensity give-ups (``restart``), breaker transitions and provider health
  changes (``provider``) and agent requests (``agent``) go out as they come.

Each client has a bounded queue; a client too slow to keep up is dropped (its browser
reconnects and reloads the state). Stopping the hub ends every stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Final

from otpy.errors import OtpyError
from otpy.telemetry import Event
from otpy.web._lookup import JobLookup
from otpy.web._protocol import WebRuntime
from otpy.web._views import event_view, job_view

__all__ = ["EventHub"]

logger = logging.getLogger("otpy.web")

_KINDS: Final = {
    "supervisor.child_restarted": "restart",
    "supervisor.child_start_failed": "restart",
    "supervisor.max_intensity_reached": "restart",
    "breaker.state_changed": "provider",
    "provider.unhealthy": "provider",
    "provider.recovered": "provider",
    "chat.routed": "agent",
    "chat.finished": "agent",
    "runtime.failed": "runtime",
}
_CLOSE: Final = None


class EventHub:
    """Fans the runtime's events out to SSE clients (see the module docstring)."""

    def __init__(
        self,
        rt: WebRuntime,
        *,
        queue_size: int = 1000,
        flush: float = 0.1,
        poll: float = 1.0,
    ) -> None:
        self.rt = rt
        self.jobs = JobLookup(rt.jobs)
        self.queue_size = queue_size
        self.flush = flush
        self.poll = poll
        self._clients: set[asyncio.Queue[tuple[str, str, str] | None]] = set()
        self._dirty: set[str] = set()
        self._jobs: dict[str, str] = {}  # job id -> its last state sent
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscription: str | None = None
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def start(self) -> None:
        """Subscribe to telemetry and start the flusher (in the server's loop)."""
        self._loop = asyncio.get_running_loop()
        for status in await asyncio.to_thread(self.rt.jobs.list):
            if status.state in ("running", "paused") and status.owner is None:
                self._jobs[status.job_id] = status.state
        self._subscription = self.rt.telemetry.subscribe(self._heard)
        self._task = asyncio.create_task(self._flusher(), name="otpy-web-events")

    async def stop(self) -> None:
        """Unsubscribe, stop the flusher and end every client's stream."""
        if self._subscription is not None:
            self.rt.telemetry.unsubscribe(self._subscription)
            self._subscription = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for queue in list(self._clients):
            self._close(queue)

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Send an event of ``kind`` with ``data`` (JSON-ready) to every client, from any
        thread (e.g. the user's own progress events for the page)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self.broadcast, kind, data)

    def touch(self, job_id: str) -> None:
        """Send job ``job_id``'s status at the next flush (from any thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._dirty.add, job_id)

    # -- the telemetry side -------------------------------------------------------------

    def _heard(self, event: Event) -> None:
        """The subscriber: runs in the emitting thread; hands over what matters."""
        name = event.name
        if not (name.startswith("job.") or name in _KINDS or self._job_started(event)):
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._take, event)

    def _job_started(self, event: Event) -> bool:
        """Whether ``event`` is this runtime's job supervisor starting a job's runner."""
        return (
            event.name == "supervisor.child_started"
            and str(event.metadata.get("child_id", "")).startswith("job:")
            and f"{self.rt.name}.jobs" in str(event.metadata.get("supervisor", ""))
        )

    def _take(self, event: Event) -> None:
        if event.name.startswith("job."):
            job_id = event.metadata.get("job_id")
            if isinstance(job_id, str):
                self._dirty.add(job_id)
            return
        if event.name == "supervisor.child_started":
            self._dirty.add(str(event.metadata["child_id"])[len("job:") :])
            return
        self.broadcast(_KINDS[event.name], event_view(event))

    async def _flusher(self) -> None:
        ticks_per_poll = max(1, round(self.poll / self.flush))
        for tick in itertools.count(1):
            await asyncio.sleep(self.flush)
            if tick % ticks_per_poll == 0:
                self._dirty.update(j for j, state in self._jobs.items() if state != "done")
            dirty, self._dirty = self._dirty, set()
            for job_id in sorted(dirty):
                self._send_job(job_id)

    def _send_job(self, job_id: str) -> None:
        try:
            status = self.jobs.get(job_id).status()  # live jobs: from their cell
        except OtpyError:
            self._jobs.pop(job_id, None)
            return
        watched = status.state in ("running", "paused") and status.owner is None
        self._jobs[job_id] = status.state if watched else "done"
        self.broadcast("job", job_view(status))

    # -- the clients --------------------------------------------------------------------

    def broadcast(self, kind: str, data: dict[str, Any]) -> None:
        """Queue one event for every client (in the loop's thread); a client whose queue
        is full is dropped."""
        if not self._clients:
            return
        item = (str(next(self._ids)), kind, json.dumps(data, default=str))
        for queue in list(self._clients):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                self.dropped += 1
                logger.warning("otpy web: an event-stream client fell behind; dropped it")
                self._close(queue)

    def _close(self, queue: asyncio.Queue[tuple[str, str, str] | None]) -> None:
        self._clients.discard(queue)
        while True:  # make room for the end marker
            try:
                queue.put_nowait(_CLOSE)
                return
            except asyncio.QueueFull:
                queue.get_nowait()

    async def stream(self) -> AsyncIterator[dict[str, str]]:
        """One client's events (``id``, ``event``, ``data``), starting with a ``hello``
        carrying the runtime's name; ends when the hub stops or drops the client."""
        queue: asyncio.Queue[tuple[str, str, str] | None] = asyncio.Queue(self.queue_size)
        self._clients.add(queue)
        try:
            hello = {"runtime": self.rt.name, "state": self.rt.state}
            yield {"id": "0", "event": "hello", "data": json.dumps(hello)}
            while True:
                item = await queue.get()
                if item is _CLOSE:
                    return
                event_id, kind, data = item
                yield {"id": event_id, "event": kind, "data": data}
        finally:
            self._clients.discard(queue)
