"""``ActorPool``: a Ray executor's evaluation actors, and the queue of evaluations waiting
for a free slot in one of them.

An actor takes ``threads`` evaluations at once plus a quarter more waiting in its own
queue (so a slot that frees up finds the next one there); the rest wait here, in one FIFO
queue for every job of the runtime, as a few hundred bytes each — not as Ray tasks, whose
specs cost the driver tens of KiB each — and a job that is cancelled drops its waiting
evaluations without Ray ever hearing of them. One thread (``otpy-ray-dispatch``) sends
them as slots free up, to the least busy actor (another one than the last, for an
evaluation sent again); nothing is submitted to Ray from Ray's own callback thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

import ray

from otpy.errors import ConfigurationError
from otpy.optimize import ExecutorConfig
from otpy.ray._actor import CONTROL, EvaluationWorker
from otpy.ray._cluster import connect, disconnect
from otpy.ray._travel import WorkerSetup

__all__ = ["START_TIMEOUT", "ActorPool", "Flight"]

logger = logging.getLogger("otpy.jobs")

START_TIMEOUT = 120.0
"""Seconds the first job waits for the evaluation actors to be placed and started."""


def _info(actor: Any, deadline: float) -> dict[str, Any]:
    """An actor's ``info()``; an actor Ray is restarting (its process died) is asked
    again until ``deadline`` (Ray tells no one when the restart is done)."""
    while True:
        try:
            info: dict[str, Any] = ray.get(
                actor.info.remote(), timeout=max(0.1, deadline - time.monotonic())
            )
            return info
        except ray.exceptions.ActorUnavailableError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


class Flight(Protocol):
    """An evaluation the pool sends: the actor it last went to (-1: none yet)."""

    actor: int

    def wanted(self) -> bool: ...

    def send(self, index: int, actor: Any) -> None: ...

    def unsent(self, index: int, error: BaseException) -> None: ...


class ActorPool:
    """The actors of one executor (see the module docstring). Thread-safe."""

    def __init__(self, settings: ExecutorConfig, setup: WorkerSetup) -> None:
        self.settings = settings
        self.setup = setup
        self.cap = settings.threads + max(1, settings.threads // 4)
        self._cond = threading.Condition()
        self._actors: list[Any] = []
        self._load: list[int] = []
        self._queue: deque[Flight] = deque()
        self._connected = False
        self._closed = False
        self._dispatcher: threading.Thread | None = None

    def start(self) -> None:
        """Connect to Ray and start the actors, once; ConfigurationError if they cannot be
        placed and started within :data:`START_TIMEOUT` seconds."""
        with self._cond:
            if self._closed:
                raise ConfigurationError("the Ray executor has been shut down")
            if self._actors:
                return
            if not self._connected:
                connect(self.settings)
                self._connected = True
            actors = self._spawn()
            self._actors, self._load = actors, [0] * len(actors)
            self._dispatcher = threading.Thread(
                target=self._dispatch, name="otpy-ray-dispatch", daemon=True
            )
            self._dispatcher.start()
        logger.info("Ray executor: %d evaluation workers started", len(actors))

    def _spawn(self) -> list[Any]:
        settings = self.settings
        count = settings.workers or _default_workers(settings.worker_cpus)
        remote: Any = ray.remote
        worker = remote(concurrency_groups={CONTROL: 2})(EvaluationWorker).options(
            max_concurrency=settings.threads,
            max_restarts=-1,
            max_task_retries=0,
            num_cpus=settings.worker_cpus,
            runtime_env=settings.runtime_env,
            scheduling_strategy="SPREAD",
        )
        actors = [worker.remote(self.setup) for _ in range(count)]
        try:
            ray.get([actor.info.remote() for actor in actors], timeout=START_TIMEOUT)
        except Exception as exc:
            _kill(actors)
            raise ConfigurationError(
                f"the Ray executor could not start {count} evaluation workers of "
                f"{settings.worker_cpus} CPUs: {exc}"
            ) from exc
        return actors

    # -- the queue --------------------------------------------------------------------------

    def put(self, flights: Iterable[Flight], *, first: bool = False) -> None:
        """Queue ``flights`` (at the head: evaluations sent again go first)."""
        with self._cond:
            if first:
                self._queue.extendleft(flights)
            else:
                self._queue.extend(flights)
            self._cond.notify()

    def release(self, index: int) -> None:
        """A dispatch to actor ``index`` is over: its slot is free."""
        with self._cond:
            if 0 <= index < len(self._load):
                self._load[index] -= 1
                self._cond.notify()

    def _free(self, avoid: int) -> int | None:
        """Under the lock: the least busy actor with a free slot (not ``avoid`` if another
        has one), or None."""
        load, cap = self._load, self.cap
        order = sorted((n, i) for i, n in enumerate(load) if n < cap)
        if not order:
            return None
        if order[0][1] == avoid and len(order) > 1:
            return order[1][1]
        return order[0][1]

    def _dispatch(self) -> None:
        cond = self._cond
        while True:
            batch = []
            with cond:
                while not self._closed and not (self._queue and min(self._load) < self.cap):
                    cond.wait()
                if self._closed:
                    return
                while self._queue:
                    flight = self._queue[0]
                    if not flight.wanted():
                        self._queue.popleft()
                        continue
                    index = self._free(flight.actor)
                    if index is None:
                        break
                    self._queue.popleft()
                    self._load[index] += 1
                    batch.append((flight, index, self._actors[index]))
            for flight, index, actor in batch:
                try:
                    flight.send(index, actor)
                except Exception as exc:  # Ray is down, or the actor handle is gone
                    flight.unsent(index, exc)

    # -- the actors -------------------------------------------------------------------------

    def forget(self, job_key: str) -> None:
        """Tell every actor that job ``job_key`` is over (without waiting for them)."""
        with self._cond:
            actors = list(self._actors)
        for actor in actors:
            actor.cancel.remote(job_key)

    def workers(self) -> list[dict[str, Any]]:
        """Each actor now (``pid``, ``node``, evaluations ``running`` and ``done``), with
        ``busy``: the evaluations sent to it and not heard back from."""
        with self._cond:
            actors, load = list(self._actors), list(self._load)
        deadline = time.monotonic() + START_TIMEOUT
        infos = [_info(actor, deadline) for actor in actors]
        return [{**info, "busy": busy} for info, busy in zip(infos, load, strict=True)]

    def purge(self) -> None:
        """Drop the queued evaluations nobody wants any more (a session closed)."""
        with self._cond:
            self._queue = deque(flight for flight in self._queue if flight.wanted())

    def waiting(self) -> int:
        """Evaluations queued here, not yet sent to an actor."""
        with self._cond:
            return len(self._queue)

    def shutdown(self) -> None:
        """Stop sending, kill the actors, disconnect (shutting down a Ray otpy started)."""
        with self._cond:
            self._closed = True
            actors, self._actors, self._load = self._actors, [], []
            self._queue.clear()
            connected, self._connected = self._connected, False
            dispatcher, self._dispatcher = self._dispatcher, None
            self._cond.notify_all()
        if dispatcher is not None:
            dispatcher.join(10.0)
        _kill(actors)
        if connected:
            disconnect()


def _kill(actors: list[Any]) -> None:
    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception as exc:  # already gone, or Ray is down
            logger.debug("Ray executor: killing a worker: %s", exc)


def _default_workers(worker_cpus: float) -> int:
    resources: Any = ray.cluster_resources
    cpus = float(resources().get("CPU", 1.0))
    return max(1, int(cpus // worker_cpus) if worker_cpus > 0 else int(cpus))
