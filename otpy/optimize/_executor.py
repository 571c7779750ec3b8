"""Where a job's evaluations run: the :class:`Executor` interface and the thread executor.

A runner opens one :class:`ExecutorSession` per incarnation with the job's
:class:`JobWork` and a ``wake`` callback; it ``submit``\\ s :class:`Task`\\ s (never more
than the job's concurrency in flight: the ledger sees to that), and ``take``\\ s the
:class:`Outcome`\\ s that came back — ``wake`` is called once when the first outcome
arrives after a ``take``, so a runner gets one message per batch of results, not one
per result. ``close`` cancels what is in flight where it can (the pipeline run's
cancel event: the run stops before its next step) and drops every outcome after it.

Executors are registered by name (:func:`register_executor`, a factory or the importable
reference of one); ``"threads"`` is :class:`ThreadExecutor`: threads shared by all the
jobs of a runtime, created when no thread is idle and retired after ``idle_seconds``
without work, so a paused job holds none. ``"ray"`` is ``otpy.ray.RayExecutor`` (the
``otpy[ray]`` extra, loaded when a job first names it).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from otpy._plugins import resolve
from otpy.clock import Clock
from otpy.errors import ConfigurationError
from otpy.optimize._evaluate import evaluate_example
from otpy.optimize._job import JobSpec, Metric
from otpy.optimize._trials import ExampleResult
from otpy.pipelines import Plan, ProviderDirectory, RunProgress
from otpy.steps import StepTable
from otpy.telemetry import TraceContext, use_context

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorSession",
    "JobWork",
    "Outcome",
    "Task",
    "ThreadExecutor",
    "make_executor",
    "register_executor",
]

logger = logging.getLogger("otpy.jobs")


class Task(NamedTuple):
    """One example (``example``: its trainset index) of candidate ``candidate``, whose
    variables are ``configuration``."""

    candidate: int
    example: int
    configuration: Mapping[str, Any]


class Outcome(NamedTuple):
    """A finished task: its result (a failure is a result with ``score`` None) and cost."""

    task: Task
    result: ExampleResult
    cost: float


@dataclass(frozen=True)
class JobWork:
    """What every evaluation of a job needs: its ``spec`` (the program as stored, the
    trainset, prices), the ``plan`` compiled from it, the ``metric``, and the runtime's
    ``providers``, ``clock`` and step ``table`` (what the plan was compiled against)."""

    spec: JobSpec
    plan: Plan
    metric: Metric
    providers: ProviderDirectory | None
    clock: Clock
    table: StepTable | None = None


class ExecutorSession(Protocol):
    """One runner incarnation's line to an executor (see the module docstring)."""

    def submit(self, tasks: Sequence[Task]) -> None: ...

    def take(self) -> list[Outcome]: ...

    def close(self) -> None: ...


class Executor(Protocol):
    """Runs evaluations; shared by the jobs of a runtime; thread-safe. ``prepare(work)``
    runs when a job is started or resumed, in the caller's thread, before anything is
    stored: it refuses (ConfigurationError) what this executor cannot run and gets ready
    (connects) for it."""

    def prepare(self, work: JobWork) -> None: ...

    def open(self, work: JobWork, wake: Callable[[], None]) -> ExecutorSession: ...

    def shutdown(self) -> None: ...


ExecutorFactory = Callable[[Mapping[str, Any]], Executor]
"""``factory(settings) -> Executor``: ``settings`` from the runtime config's ``jobs``
(``name``: the runtime's; ``config``: its whole RuntimeConfig, when it has one)."""
EXECUTORS: dict[str, ExecutorFactory | str] = {}
"""Executors by name: a factory, or the ``"module:name"`` reference of one (imported when
a job first names it)."""
_LOCK = threading.Lock()


def register_executor(name: str, factory: ExecutorFactory | str, *, replace: bool = False) -> None:
    """Let jobs name ``executor=name``: ``factory`` or its reference ``"module:name"``;
    ConfigurationError if the name is taken (unless ``replace``)."""
    with _LOCK:
        if name in EXECUTORS and EXECUTORS[name] != factory and not replace:
            raise ConfigurationError(f"executor {name!r} is already registered")
        EXECUTORS[name] = factory


def make_executor(name: str, settings: Mapping[str, Any]) -> Executor:
    """The executor ``name`` made with ``settings``; ConfigurationError for a name nobody
    registered, or a factory whose module cannot be imported (an extra not installed)."""
    factory = EXECUTORS.get(name)
    if factory is None:
        raise ConfigurationError(
            f"unknown executor {name!r} (registered: {', '.join(sorted(EXECUTORS))})"
        )
    if isinstance(factory, str):
        try:
            made: ExecutorFactory = resolve(factory)
        except ImportError as exc:
            raise ConfigurationError(f"executor {name!r} cannot be loaded: {exc}") from exc
        factory = made
    return factory(settings)


class _Session:
    """A :class:`ThreadExecutor` session: outcomes are batched for ``take``."""

    def __init__(self, pool: ThreadExecutor, work: JobWork, wake: Callable[[], None]) -> None:
        self.pool = pool
        self.work = work
        self.trace = TraceContext(work.spec.job_id, None)
        self._wake = wake
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._running: dict[int, RunProgress] = {}
        self._closed = False

    def submit(self, tasks: Sequence[Task]) -> None:
        self.pool.put([(self, task) for task in tasks])

    def take(self) -> list[Outcome]:
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
        return outcomes

    def close(self) -> None:
        with self._lock:
            self._closed = True
            running = list(self._running.values())
            self._outcomes = []
        for progress in running:
            progress.cancel.set()

    def _is_closed(self) -> bool:
        return self._closed

    def run(self, task: Task) -> None:
        """Evaluate ``task`` in the calling (pool) thread, unless the session is closed."""
        progress = RunProgress()
        key = id(progress)
        with self._lock:
            if self._closed:
                return
            self._running[key] = progress
        work = self.work
        try:
            with use_context(self.trace):
                result, cost = evaluate_example(
                    work.plan,
                    task.example,
                    work.spec.trainset[task.example],
                    task.configuration,
                    work.metric,
                    providers=work.providers,
                    clock=work.clock,
                    progress=progress,
                    prices=work.spec.options.prices,
                )
        except BaseException as exc:  # a bug in evaluate_example: this example fails
            result = ExampleResult(example=task.example, score=None, error=repr(exc))
            cost = 0.0
        with self._lock:
            self._running.pop(key, None)
            if self._is_closed():  # closed while it ran
                return
            self._outcomes.append(Outcome(task, result, cost))
            first = len(self._outcomes) == 1
        if first:
            self._wake()


class ThreadExecutor:
    """Evaluations on threads shared by every job of a runtime (see the module
    docstring). ``max_threads`` caps them (None: as many as are busy at once; each job
    keeps at most its concurrency busy).

    Tasks go through one C queue; a count of the threads that are ``busy`` and the tasks
    ``pending`` (queued, not yet taken) says when to start a thread (fewer threads than
    busy + pending) and when an idle one may retire (the others suffice)."""

    def __init__(
        self, *, idle_seconds: float = 10.0, max_threads: int | None = None, name: str = "otpy"
    ) -> None:
        self.idle_seconds = idle_seconds
        self.max_threads = max_threads
        self.name = name
        self._queue: queue.SimpleQueue[tuple[_Session, Task] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._busy = 0
        self._pending = 0
        self._serial = 0
        self._closed = False

    def prepare(self, work: JobWork) -> None:
        """Anything the runtime compiled runs here: nothing to check."""

    def open(self, work: JobWork, wake: Callable[[], None]) -> ExecutorSession:
        return _Session(self, work, wake)

    def put(self, items: Sequence[tuple[_Session, Task]]) -> None:
        """Queue ``items``; start threads if the idle ones do not suffice."""
        with self._lock:
            if self._closed:
                return
            self._pending += len(items)
            spawn = self._busy + self._pending - self._threads
            if self.max_threads is not None:
                spawn = min(spawn, self.max_threads - self._threads)
            spawn = max(0, spawn)
            self._threads += spawn
            first, self._serial = self._serial, self._serial + spawn
        for item in items:
            self._queue.put(item)
        for number in range(first, first + spawn):
            name = f"{self.name}-eval-{number}"
            threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        get, lock = self._queue.get, self._lock
        while True:
            try:
                item = get(timeout=self.idle_seconds)
            except queue.Empty:
                with lock:  # idle_seconds without work: retire if the others suffice
                    if self._threads - 1 >= self._busy + self._pending:
                        self._threads -= 1
                        return
                continue
            with lock:
                if item is None:  # shut down
                    self._threads -= 1
                    return
                self._pending -= 1
                self._busy += 1
            try:
                item[0].run(item[1])
            except BaseException:
                logger.exception("evaluation thread: a task failed outside its evaluation")
            finally:
                with lock:
                    self._busy -= 1

    def statistics(self) -> dict[str, int]:
        """``threads`` alive, ``busy`` ones, ``queued`` tasks."""
        with self._lock:
            return {"threads": self._threads, "busy": self._busy, "queued": self._pending}

    def shutdown(self) -> None:
        """Drop queued tasks and let the threads exit (busy ones once their task is done)."""
        with self._lock:
            self._closed = True
            threads = self._threads
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                with self._lock:
                    self._pending -= 1
        for _ in range(threads):
            self._queue.put(None)


def _threads(settings: Mapping[str, Any]) -> Executor:
    return ThreadExecutor(
        idle_seconds=float(settings.get("idle_seconds", 10.0)),
        max_threads=settings.get("max_threads"),
        name=str(settings.get("name", "otpy")),
    )


register_executor("threads", _threads)
register_executor("ray", "otpy.ray:executor")
