"""``RayExecutor``: a job's evaluations on a pool of Ray actors; the runner stays here.

The runner of a job (its ledger, checkpoints, budgets, pause, cancel, lease) runs in the
driver exactly as with threads; only evaluations travel, through the executor's
:class:`~otpy.ray._pool.ActorPool` of :class:`~otpy.ray.EvaluationWorker` actors (made at
the first job, restarted by Ray when their process dies).

A session follows each evaluation by a *flight*: its task, a key unique in the executor,
the actor it last went to and the ObjectRef of its current dispatch. A result is taken
only for the flight's current dispatch, and a flight ends the first time a result is
taken, so an evaluation counts once whatever comes back late. A dispatch that fails
because its worker died (the actor's process exited, its node went away: any Ray system
error) is queued again, first in line and for another actor when there is one, up to
``retries`` times, then counts as a failed example; an error the evaluation itself raised
is a failed example at once. Results land on Ray's callback thread (``ObjectRef.future``:
nothing polls); the first one after a ``take`` calls ``wake``. ``close`` ends every
flight: the queued ones are dropped, every actor is told that the job is over (its
running evaluations stop before their next step; sent first, as one message per actor),
then the dispatched ones are ``ray.cancel``\\ led (one still waiting in an actor's queue
never runs).
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError, TaskCancelledError

from otpy.config import RuntimeConfig
from otpy.optimize import ExampleResult, ExecutorConfig, JobWork, Outcome, Task
from otpy.ray._pool import ActorPool
from otpy.ray._travel import JobPayload, job_payload, travel_warnings, worker_setup
from otpy.redaction import redact_value
from otpy.telemetry import Event, get_telemetry

__all__ = ["RayExecutor", "executor"]

logger = logging.getLogger("otpy.jobs")


class RayExecutor:
    """Evaluations on Ray actors (see the module docstring), with ``settings`` (the
    runtime config's ``jobs.executor``) and the workers made from ``config`` (its
    providers, without keys). Thread-safe; shared by the jobs of a runtime."""

    def __init__(self, settings: ExecutorConfig, config: RuntimeConfig | None = None) -> None:
        self.settings = settings
        self.config = config
        self.setup = worker_setup(config)
        self.pool = ActorPool(settings, self.setup)
        self.keys = itertools.count()

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
        self.pool.start()

    def open(self, work: JobWork, wake: Callable[[], None]) -> _RaySession:
        self.pool.start()
        return _RaySession(self, work, job_payload(work), wake)

    def workers(self) -> list[dict[str, Any]]:
        """Each evaluation actor now: ``pid``, ``node``, evaluations ``running`` and
        ``done`` there, and ``busy`` (sent to it, not heard back from)."""
        return self.pool.workers()

    def shutdown(self) -> None:
        """Kill the actors; disconnect from Ray (shutting down a Ray otpy started)."""
        self.pool.shutdown()


class _Flight:
    """One evaluation of a session, across its dispatches (see the module docstring)."""

    __slots__ = ("actor", "attempts", "key", "ref", "session", "task")

    def __init__(self, session: _RaySession, task: Task, key: int) -> None:
        self.session = session
        self.task = task
        self.key = key
        self.attempts = 0
        self.actor = -1
        self.ref: Any = None

    def wanted(self) -> bool:
        return self.session.wants(self)

    def send(self, index: int, actor: Any) -> None:
        self.session.send(self, index, actor)

    def unsent(self, index: int, error: BaseException) -> None:
        self.session.landed(self, self.ref, index, error)


class _RaySession:
    """One runner incarnation's evaluations on a :class:`RayExecutor`."""

    def __init__(
        self, owner: RayExecutor, work: JobWork, payload: JobPayload, wake: Callable[[], None]
    ) -> None:
        self.owner = owner
        self.pool = owner.pool
        self.work = work
        self.payload = payload
        self.job_key = f"{work.spec.job_id}/{uuid.uuid4().hex[:12]}"
        self.retries = owner.settings.retries
        self._wake = wake
        self._box: list[Any] | None = None
        self._lock = threading.Lock()
        self._flights: dict[int, _Flight] = {}
        self._outcomes: list[Outcome] = []
        self._events: list[Event] = []
        self._woken = False
        self._closed = False

    def submit(self, tasks: Sequence[Task]) -> None:
        if self._box is None:
            self._box = [ray.put(self.payload)]  # once: the actors fetch it by reference
        flights = [_Flight(self, task, next(self.owner.keys)) for task in tasks]
        with self._lock:
            if self._closed:
                return
            for flight in flights:
                self._flights[flight.key] = flight
        self.pool.put(flights)

    def wants(self, flight: _Flight) -> bool:
        return not self._closed and self._flights.get(flight.key) is flight

    def send(self, flight: _Flight, index: int, actor: Any) -> None:
        """On the pool's dispatch thread: send ``flight`` to ``actor`` (number ``index``)."""
        task = flight.task
        example = self.work.spec.trainset[task.example]
        ref = actor.evaluate.remote(
            self.job_key, self._box, task.example, example, dict(task.configuration)
        )
        flight.actor, flight.ref = index, ref
        if self._closed:  # closed meanwhile: close() did not see this dispatch
            ray.cancel(ref)
        ref.future().add_done_callback(partial(self._done, flight, ref, index))

    def _done(self, flight: _Flight, ref: Any, index: int, future: Any) -> None:
        try:
            value, error = future.result(), None
        except BaseException as exc:
            value, error = None, exc
        self.landed(flight, ref, index, error, value)

    def landed(
        self,
        flight: _Flight,
        ref: Any,
        index: int,
        error: BaseException | None,
        value: Any = None,
    ) -> None:
        """A dispatch of ``flight`` is over (on Ray's callback thread, or the pool's)."""
        self.pool.release(index)
        again = wake = False
        with self._lock:
            if self._closed or self._flights.get(flight.key) is not flight or flight.ref is not ref:
                return  # closed, or an old dispatch: the flight has moved on
            if isinstance(error, TaskCancelledError):
                return
            if _worker_lost(error) and flight.attempts < self.retries:
                flight.attempts += 1
                flight.ref, again = None, True  # no dispatch now: a late result is ignored
            else:
                del self._flights[flight.key]
                outcome, events = _outcome(flight, value, error)
                self._outcomes.append(outcome)
                self._events.extend(events)
                wake, self._woken = not self._woken, True
        if again:
            logger.warning(
                "job %s: candidate %d example %d: its Ray worker was lost (%s); sending it "
                "again (attempt %d)",
                self.work.spec.job_id, flight.task.candidate, flight.task.example,
                type(error).__name__, flight.attempts + 1,
            )  # fmt: skip
            self.pool.put([flight], first=True)
        elif wake:
            self._wake()

    def take(self) -> list[Outcome]:
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
            events, self._events = self._events, []
            self._woken = False
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
            self._outcomes, self._events = [], []
        self.pool.purge()
        if self._box is not None:  # first: the running evaluations stop at their next step
            self.pool.forget(self.job_key)
        for ref in refs:  # then the queued ones go (one call to Ray each: slow under load)
            try:
                ray.cancel(ref)
            except Exception as exc:  # finished meanwhile, or Ray is down
                logger.debug("job %s: ray.cancel: %s", self.work.spec.job_id, exc)


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
