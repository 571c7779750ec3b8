"""``RayExecutor``: a job's evaluations on a pool of Ray actors; the runner stays here.

The runner of a job (its ledger, checkpoints, budgets, pause, cancel, lease) runs in the
driver exactly as with threads; only evaluations travel. The executor keeps a pool of
:class:`~otpy.ray.EvaluationWorker` actors (made at the first job, restarted by Ray when
their process dies) and sends each evaluation to the least busy one.

A session follows each evaluation by a *flight*: its task, a key unique in this executor,
the actor it went to and the ObjectRef of its current dispatch. A result is taken only
for the flight's current dispatch, and a flight ends the first time a result is taken,
so an evaluation counts once whatever comes back late. A dispatch that fails because its
worker died (the actor's process exited, its node went away: any Ray system error) is
sent again — to another actor when there is one — up to ``retries`` times, then counts as
a failed example; an error the evaluation itself raised is a failed example at once.
Outcomes land on Ray's callback thread; the first one after a ``take`` calls ``wake``,
and re-dispatches wait for that ``take`` (the runner's thread), so nothing is submitted
from Ray's thread. ``close`` ends every flight, ``ray.cancel``\\ s its dispatch (a queued
one never runs) and tells every actor that the job is over (its running evaluations stop
before their next step).
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError, TaskCancelledError

from otpy.config import RuntimeConfig
from otpy.errors import ConfigurationError
from otpy.optimize import ExampleResult, ExecutorConfig, JobWork, Outcome, Task
from otpy.ray._actor import CONTROL, EvaluationWorker
from otpy.ray._cluster import connect, disconnect
from otpy.ray._travel import JobPayload, job_payload, travel_warnings, worker_setup
from otpy.redaction import redact_value
from otpy.telemetry import Event, get_telemetry

__all__ = ["RayExecutor", "executor"]

logger = logging.getLogger("otpy.jobs")

START_TIMEOUT = 120.0
"""Seconds the first job waits for the evaluation actors to be placed and started."""


@dataclass(slots=True)
class _Flight:
    task: Task
    key: int
    attempts: int = 0
    actor: int = -1
    ref: Any = None


class RayExecutor:
    """Evaluations on Ray actors (see the module docstring), with ``settings`` (the
    runtime config's ``jobs.executor``) and the workers made from ``config`` (its
    providers, without keys). Thread-safe; shared by the jobs of a runtime."""

    def __init__(self, settings: ExecutorConfig, config: RuntimeConfig | None = None) -> None:
        self.settings = settings
        self.config = config
        self.setup = worker_setup(config)
        self.keys = itertools.count()
        self._lock = threading.Lock()
        self._actors: list[Any] = []
        self._load: list[int] = []
        self._connected = False
        self._closed = False

    # -- the Executor interface -------------------------------------------------------------

    def prepare(self, work: JobWork) -> None:
        """Refuse a job whose metric or step types cannot travel (ConfigurationError), warn
        of what does not reach the workers, and start the pool (the first time: Ray is
        connected or started, the actors placed; ConfigurationError if that fails)."""
        job_payload(work)
        providers = work.providers
        live = [entry.name for entry in providers.table] if providers is not None else []
        warning = travel_warnings(self.config, self.setup, live)
        if warning:
            logger.warning("job %s on executor 'ray': %s", work.spec.job_id, warning)
        self._start()

    def open(self, work: JobWork, wake: Callable[[], None]) -> _RaySession:
        self._start()
        return _RaySession(self, work, job_payload(work), wake)

    def shutdown(self) -> None:
        """Kill the actors; disconnect from Ray (shutting down a Ray otpy started)."""
        with self._lock:
            self._closed = True
            actors, self._actors, self._load = self._actors, [], []
            connected, self._connected = self._connected, False
        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception as exc:  # already gone, or Ray is down
                logger.debug("Ray executor: killing a worker: %s", exc)
        if connected:
            disconnect()

    # -- the pool ---------------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._closed:
                raise ConfigurationError("the Ray executor has been shut down")
            if self._actors:
                return
            if not self._connected:
                connect(self.settings)
                self._connected = True
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
                for actor in actors:
                    ray.kill(actor, no_restart=True)
                raise ConfigurationError(
                    f"the Ray executor could not start {count} evaluation workers of "
                    f"{settings.worker_cpus} CPUs: {exc}"
                ) from exc
            self._actors, self._load = actors, [0] * count
            logger.info("Ray executor: %d evaluation workers started", count)

    def pick(self, avoid: int) -> tuple[int, Any]:
        """The least busy actor (not ``avoid`` when there is another), counted busier."""
        with self._lock:
            if not self._actors:
                raise ConfigurationError("the Ray executor has no workers (shut down)")
            order = sorted(range(len(self._load)), key=self._load.__getitem__)
            index = order[1] if order[0] == avoid and len(order) > 1 else order[0]
            self._load[index] += 1
            return index, self._actors[index]

    def release(self, index: int) -> None:
        with self._lock:
            if 0 <= index < len(self._load):
                self._load[index] -= 1

    def forget(self, job_key: str) -> None:
        """Tell every actor that job ``job_key`` is over (without waiting for them)."""
        with self._lock:
            actors = list(self._actors)
        for actor in actors:
            actor.cancel.remote(job_key)

    def workers(self) -> list[dict[str, Any]]:
        """Each actor now (``pid``, ``node``, evaluations ``running`` and ``done``), with
        ``busy``: the evaluations this executor has sent it and not heard back from."""
        with self._lock:
            actors, load = list(self._actors), list(self._load)
        infos = ray.get([actor.info.remote() for actor in actors], timeout=START_TIMEOUT)
        return [{**info, "busy": busy} for info, busy in zip(infos, load, strict=True)]


def _default_workers(worker_cpus: float) -> int:
    resources: Any = ray.cluster_resources
    cpus = float(resources().get("CPU", 1.0))
    return max(1, int(cpus // worker_cpus) if worker_cpus > 0 else int(cpus))


class _RaySession:
    """One runner incarnation's evaluations on a :class:`RayExecutor`."""

    def __init__(
        self, pool: RayExecutor, work: JobWork, payload: JobPayload, wake: Callable[[], None]
    ) -> None:
        self.pool = pool
        self.work = work
        self.payload = payload
        self.job_key = f"{work.spec.job_id}/{uuid.uuid4().hex[:12]}"
        self.retries = pool.settings.retries
        self._wake = wake
        self._box: list[Any] | None = None
        self._lock = threading.Lock()
        self._flights: dict[int, _Flight] = {}
        self._outcomes: list[Outcome] = []
        self._events: list[Event] = []
        self._redo: list[_Flight] = []
        self._woken = False
        self._closed = False

    def submit(self, tasks: Sequence[Task]) -> None:
        if self._box is None:
            self._box = [ray.put(self.payload)]  # once: the actors fetch it by reference
        flights = [_Flight(task, next(self.pool.keys)) for task in tasks]
        with self._lock:
            if self._closed:
                return
            for flight in flights:
                self._flights[flight.key] = flight
        for flight in flights:
            self._send(flight)

    def _send(self, flight: _Flight) -> None:
        index, actor = self.pool.pick(flight.actor)
        task = flight.task
        example = self.work.spec.trainset[task.example]
        ref = actor.evaluate.remote(
            self.job_key, self._box, task.example, example, dict(task.configuration)
        )
        flight.actor, flight.ref = index, ref
        ref.future().add_done_callback(partial(self._landed, flight, ref, index))

    def _landed(self, flight: _Flight, ref: Any, index: int, future: Any) -> None:
        """On Ray's callback thread: a dispatch of ``flight`` is over."""
        self.pool.release(index)
        try:
            value, error = future.result(), None
        except BaseException as exc:
            value, error = None, exc
        with self._lock:
            if self._closed or self._flights.get(flight.key) is not flight or flight.ref is not ref:
                return  # closed, or an old dispatch: the flight has moved on
            if isinstance(error, TaskCancelledError):
                return
            if _worker_lost(error) and flight.attempts < self.retries:
                flight.attempts += 1
                self._redo.append(flight)
            else:
                del self._flights[flight.key]
                outcome, events = _outcome(flight, value, error)
                self._outcomes.append(outcome)
                self._events.extend(events)
            wake, self._woken = not self._woken, True
        if wake:
            self._wake()

    def take(self) -> list[Outcome]:
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
            events, self._events = self._events, []
            redo, self._redo = self._redo, []
            self._woken = False
        for flight in redo:
            logger.warning(
                "job %s: candidate %d example %d: its Ray worker was lost; sending it again "
                "(attempt %d)",
                self.work.spec.job_id, flight.task.candidate, flight.task.example,
                flight.attempts + 1,
            )  # fmt: skip
            self._send(flight)
        if events:
            hub = get_telemetry()
            for event in events:
                hub.ingest(event)
        return outcomes

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            refs = [flight.ref for flight in self._flights.values() if flight.ref is not None]
            self._flights.clear()
            self._outcomes, self._events, self._redo = [], [], []
        for ref in refs:
            try:
                ray.cancel(ref)
            except Exception as exc:  # finished meanwhile, or Ray is down
                logger.debug("job %s: ray.cancel: %s", self.work.spec.job_id, exc)
        if self._box is not None:
            self.pool.forget(self.job_key)


def _worker_lost(error: BaseException | None) -> bool:
    """A Ray system error (the worker died, its node went away), not the task's own."""
    return isinstance(error, RayError) and not isinstance(error, RayTaskError)


def _outcome(
    flight: _Flight, value: Any, error: BaseException | None
) -> tuple[Outcome, list[Event]]:
    task = flight.task
    if error is None and value is not None:
        result, cost, events = value
        return Outcome(task, result, cost), events
    if isinstance(error, RayTaskError):
        cause = error.cause if isinstance(error.cause, BaseException) else error
        why = f"{type(cause).__name__}: {cause}"
    elif error is not None:
        why = f"its Ray worker was lost {flight.attempts + 1} times: {type(error).__name__}"
    else:
        why = "its Ray worker dropped it (the job was cancelled there)"
    failed = ExampleResult(example=task.example, score=None, error=str(redact_value(why)))
    return Outcome(task, failed, 0.0), []


def executor(settings: Mapping[str, Any]) -> RayExecutor:
    """The ``"ray"`` executor factory: ``settings["config"]`` is the runtime's config (its
    ``jobs.executor`` and providers); without one, ``settings["executor"]`` (a mapping)."""
    config = settings.get("config")
    if isinstance(config, RuntimeConfig):
        return RayExecutor(config.jobs.executor, config)
    return RayExecutor(ExecutorConfig.model_validate(settings.get("executor") or {}), None)
