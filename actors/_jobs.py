"""``rt.jobs``: start, find, list and resume optimization jobs; :class:`JobHandle` steers one.

Each job is one :class:`OptimizationRunner` (a ``transient`` child of the JobSupervisor,
registered as ``<runtime>.job.<job_id>``) and checkpoints to the runtime's job store,
which records the runtime (its :class:`~otpy.optimize._owner.Owner`) with a job while it
runs or is paused: a job in the store whose owner died reads as ``interrupted``, and one
whose owner is alive (or on another host) is not resumed here without ``force=True``.
"""

from __future__ import annotations

import builtins
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pydantic

from otpy.actors._job_state import JobCell
from otpy.actors._optimization_runner import OptimizationRunner
from otpy.clock import Clock
from otpy.documents import validation_problems
from otpy.errors import CallTimeoutError, ConfigurationError, JobError, NoProcessError
from otpy.optimize import SearchSpace, Strategy, Trial, make_strategy, register_strategy
from otpy.optimize._checkpoint import JobStore
from otpy.optimize._job import (
    JobSpec,
    JobState,
    JobStatus,
    Metric,
    planned_evaluations,
    resolve_metric,
)
from otpy.optimize._owner import Owner
from otpy.optimize._trials import is_better
from otpy.pipelines import Pipeline, PipelineSource, ProviderDirectory, compile_pipeline
from otpy.steps import StepTable
from otpy.supervision import ChildSpec, DynamicSupervisorRef, ServerRef, whereis
from otpy.supervision._names import wait_for_name

__all__ = ["JobHandle", "JobsHandle"]


class JobHandle:
    """One job: ``id``, ``status()`` (at once, never waits on the runner), ``pause()``,
    ``resume()``, ``cancel()``, ``wait(timeout)`` and ``best()``.

    A handle of a job read from the store (``rt.jobs.get`` of a job not started here)
    only reports a snapshot: steering it raises JobError (an interrupted job is resumed
    with ``rt.jobs.resume(job_id)``; one running elsewhere is steered there)."""

    def __init__(self, job_id: str, cell: JobCell, runner_name: str, timeout: float) -> None:
        self.id = job_id
        self._cell = cell
        self._name = runner_name
        self._timeout = timeout

    def status(self) -> JobStatus:
        """The job's status now (published by its runner after every change)."""
        return self._cell.status

    def best(self) -> Trial | None:
        """The best finished candidate so far (configuration, score, per-example results)."""
        return self._cell.best

    def __otpy_ref__(self) -> ServerRef[Any] | str:
        """For ``otpy.sys``: the job's runner (its name, so a restart is waited for).

        NoProcessError saying why if the job has no runner in this process: it has
        ended, is interrupted, or runs in another runtime."""
        status = self._cell.status
        if not self._name:
            where = status.owner or "another runtime"
            raise NoProcessError(
                f"job {self.id!r}", f"it is {status.state} in {where}, not in this process"
            )
        if status.finished or status.state == "interrupted" or self._cell.done.is_set():
            raise NoProcessError(
                f"job {self.id!r}", f"it is {status.state}: it has no runner any more"
            )
        return self._name

    def _call(self, message: str) -> JobStatus:
        status = self._cell.status
        if status.finished or status.state == "interrupted":
            if message == "cancel":
                return status
            if status.state == "interrupted":
                raise JobError(
                    f"job {self.id!r} is interrupted; it cannot {message} from this handle: "
                    f"resume it with rt.jobs.resume({self.id!r})"
                )
            raise JobError(f"job {self.id!r} is {status.state}; it cannot {message}")
        if not self._name:  # read from the store: it runs in another runtime
            where = status.owner or "another runtime"
            raise JobError(f"job {self.id!r} is {status.state} in {where}; {message} it there")
        ref = whereis(self._name) or wait_for_name(self._name, self._timeout)
        if ref is None:
            return self._cell.status  # it finished meanwhile
        return cast(JobStatus, ref.call(message, timeout=self._timeout))  # type: ignore[attr-defined]

    def pause(self) -> JobStatus:
        """Start no new evaluation (the ones running finish and are kept)."""
        return self._call("pause")

    def resume(self) -> JobStatus:
        """Go on after ``pause``."""
        return self._call("resume")

    def cancel(self) -> JobStatus:
        """End the job now, keeping the best so far (runs in flight are told to stop)."""
        return self._call("cancel")

    def wait(self, timeout: float | None = None) -> JobStatus:
        """The status once the job has ended (completed, cancelled, failed or
        interrupted); CallTimeoutError after ``timeout`` seconds. A handle read from the
        store returns its snapshot at once."""
        if not self._cell.done.wait(timeout):
            raise CallTimeoutError(f"job {self.id!r}", timeout)
        return self._cell.status

    def __repr__(self) -> str:
        status = self._cell.status
        return f"<JobHandle {self.id!r} {status.state} {status.evaluations_done} done>"


class JobsHandle:
    """What ``rt.jobs`` is: see :meth:`start`, :meth:`get`, :meth:`list`, :meth:`resume`."""

    def __init__(
        self,
        runtime: str,
        supervisor: str,
        store: JobStore,
        table: Callable[[], StepTable],
        providers: ProviderDirectory | None,
        clock: Clock,
        timeout: float,
    ) -> None:
        self._runtime = runtime
        self._supervisor = supervisor
        self.store = store
        self._table = table
        self._providers = providers
        self._clock = clock
        self._timeout = timeout
        self._handles: dict[str, JobHandle] = {}
        self._lock = threading.Lock()

    def __otpy_ref__(self) -> str:
        """For ``otpy.sys`` and ``otpy.observer``: the JobSupervisor's name."""
        return self._supervisor

    def start(
        self,
        program: PipelineSource,
        space: Mapping[str, Any] | SearchSpace,
        trainset: Sequence[Mapping[str, Any]],
        metric: str | Metric,
        strategy: str | type[Strategy] = "random_search",
        *,
        strategy_options: Mapping[str, Any] | None = None,
        seed: int = 0,
        concurrency: int = 4,
        batch_size: int | None = None,
        minibatch: int | None = None,
        max_errors: int | None = None,
        max_evaluations: int | None = None,
        max_tokens: int | None = None,
        max_seconds: float | None = None,
        target_score: float | None = None,
        patience: int | None = None,
        prices: Mapping[str, tuple[float, float]] | None = None,
        job_id: str | None = None,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> JobHandle:
        """Start an optimization job and return its handle at once.

        ``program``: a pipeline (path, YAML text, dict or Pipeline) whose ``{{ vars.x }}``
        are the tuned variables; ``space``: what each variable may be (see
        ``SearchSpace.parse``); ``trainset``: items ``{"inputs": {...}, "expected": ...}``;
        ``metric``: a registered name or ``(example, result) -> float``; ``strategy``: a
        registered name (random_search, grid, bootstrap_fewshot, tpe) or a Strategy class.
        Budgets: ``max_evaluations`` (candidates), ``max_tokens``, ``max_seconds``; stop
        early at ``target_score`` or after ``patience`` rounds without improvement.
        ``batch_size`` candidates are proposed at a time (default: ``concurrency``).
        ``base_dir``: the folder the relative sub-pipeline paths of a program given as
        text or a mapping are relative to (a program file's are relative to its folder).
        Everything is checked here: a bad program, space, strategy or option raises
        before the job starts.
        """
        job_id = job_id or uuid.uuid4().hex[:12]
        pipeline = compile_pipeline(program, self._table()).pipeline
        parsed = SearchSpace.parse(space)
        name, metric_fn = resolve_metric(metric, job=job_id)
        if isinstance(strategy, type):
            register_strategy(strategy.name or strategy.__name__, strategy)
            strategy = strategy.name or strategy.__name__
        make_strategy(strategy, parsed, seed=seed, **dict(strategy_options or {}))
        try:
            spec = JobSpec(
                job_id=job_id,
                program=_program(pipeline),
                base_dir=_base_dir(pipeline, base_dir),
                space=parsed.to_dict(),
                trainset=[dict(example) for example in trainset],
                metric=name,
                strategy=strategy,
                strategy_options=dict(strategy_options or {}),
                seed=seed,
                concurrency=concurrency,
                batch_size=batch_size or concurrency,
                minibatch=minibatch,
                max_errors=max_errors,
                max_evaluations=max_evaluations,
                max_tokens=max_tokens,
                max_seconds=max_seconds,
                target_score=target_score,
                patience=patience,
                prices=dict(prices or {}),
            )
        except pydantic.ValidationError as exc:
            raise ConfigurationError(f"job {job_id!r}: {validation_problems(exc)}") from None
        if self.store.holds(job_id):
            raise JobError(
                f"job {job_id!r} already exists in {self.store.path}; resume it with "
                "rt.jobs.resume(job_id) or choose another job_id"
            )
        return self._launch(spec, metric_fn)

    def resume(
        self, job_id: str, *, metric: str | Metric | None = None, force: bool = False
    ) -> JobHandle:
        """Go on with job ``job_id`` from its checkpoint in the store (a job of a process
        that stopped or was killed): finished candidates are not evaluated again, and the
        job runs (a job stored as paused too). A job running here already: its handle.

        JobError if the job has ended (completed, cancelled, failed: nothing to resume),
        if its metric was a function and ``metric=`` is not given again, or if it is
        running or paused in another runtime that is alive, or on another host (so whether
        it is alive is unknown): stop it there, or pass ``force=True`` if that process is
        gone (two runtimes running one job would both write its trials)."""
        with self._lock:
            handle = self._handles.get(job_id)
        if handle is not None and not handle._cell.done.is_set():
            return handle  # running here already
        if not self.store.holds(job_id):
            raise JobError(f"no job {job_id!r} in {self.store.path}")
        checkpoint = self.store.load(job_id)
        if checkpoint.state in ("completed", "cancelled", "failed"):
            raise JobError(f"job {job_id!r} is {checkpoint.state}; nothing to resume")
        owner = checkpoint.owner
        if not force and _elsewhere(checkpoint.state, owner, self.store.owner):
            assert owner is not None
            raise JobError(
                f"job {job_id!r} is {checkpoint.state} in {owner.describe()}; stop it there, "
                "or pass force=True if that process is gone"
            )
        spec = checkpoint.spec
        if metric is None and spec.metric is None:
            raise JobError(
                f"job {job_id!r} was started with a metric function; pass metric= to resume it"
            )
        _, metric_fn = resolve_metric(metric if metric is not None else spec.metric, job=job_id)
        self.store.save_state(job_id, "running", checkpoint.elapsed)  # this runtime owns it
        return self._launch(spec, metric_fn)

    def _launch(self, spec: JobSpec, metric: Metric) -> JobHandle:
        name = f"{self._runtime}.job.{spec.job_id}"
        cell = JobCell(
            JobStatus(
                job_id=spec.job_id,
                name=str(spec.program.get("name", "")),
                state="running",
                strategy=spec.strategy,
            )
        )
        store, table, providers, clock = self.store, self._table, self._providers, self._clock
        child = ChildSpec(
            id=f"job:{spec.job_id}",
            start=lambda: OptimizationRunner.start_named(
                name, spec, metric, cell, store, table, providers, clock
            ),
            restart="transient",
            shutdown=10.0,
        )
        supervisor = whereis(self._supervisor)
        if supervisor is None:
            raise JobError(f"the job supervisor {self._supervisor!r} is not running")
        cast(DynamicSupervisorRef, supervisor).start_child(child)
        handle = JobHandle(spec.job_id, cell, name, self._timeout)
        with self._lock:
            self._handles[spec.job_id] = handle
        return handle

    def get(self, job_id: str) -> JobHandle:
        """The handle of job ``job_id``: started here, or read from the store (then it
        only reports a snapshot: resume it to run it). A stored job running or paused
        in a runtime that has died (or with no owner recorded) reads as ``interrupted``;
        one whose owner is alive or on another host keeps its state, with
        ``status().owner`` naming that runtime. JobError if there is no such job."""
        with self._lock:
            handle = self._handles.get(job_id)
        if handle is not None:
            return handle
        if not self.store.holds(job_id):
            raise JobError(f"no job {job_id!r} here or in {self.store.path}")
        return JobHandle(job_id, _stored_cell(self.store, job_id), "", self._timeout)

    def list(self) -> list[JobStatus]:
        """Every job started here and every job in the store, by job id (a stored job
        reads as :meth:`get` tells)."""
        with self._lock:
            live = {job_id: h.status() for job_id, h in self._handles.items()}
        for job_id in self.store.job_ids():
            if job_id not in live and self.store.holds(job_id):
                live[job_id] = _stored_cell(self.store, job_id).status
        return [live[job_id] for job_id in sorted(live)]

    def trials(self, job_id: str) -> builtins.list[Trial]:
        """Job ``job_id``'s finished candidates, by index, as checkpointed (with their
        per-example results); JobError if the store has no such job."""
        if not self.store.holds(job_id):
            raise JobError(f"no job {job_id!r} in {self.store.path}")
        trials = self.store.load(job_id).trials
        return [trials[index] for index in sorted(trials)]


def _program(pipeline: Pipeline) -> dict[str, Any]:
    source = pipeline.source
    if source is not None:
        return dict(source[2])
    return pipeline.model_dump(mode="json", exclude_unset=True)


def _base_dir(pipeline: Pipeline, given: str | os.PathLike[str] | None) -> str | None:
    """Where a job's sub-pipeline paths resolve: the program file's folder, else ``given``."""
    if pipeline.base_dir is not None:
        return str(pipeline.base_dir)
    return None if given is None else str(Path(given).resolve())


def _elsewhere(state: JobState, owner: Owner | None, here: Owner | None) -> bool:
    """Whether a stored job in ``state`` may be running in a runtime other than ``here``:
    running or paused, and its owner is alive or cannot be told (on another host)."""
    if state not in ("running", "paused") or owner is None or owner == here:
        return False
    return owner.alive() is not False


def _stored_cell(store: JobStore, job_id: str) -> JobCell:
    """A cell with the status a stored checkpoint tells (the best trial included): a
    running or paused job whose owner is dead, or not recorded, is ``interrupted``."""
    checkpoint = store.load(job_id)
    spec = checkpoint.spec
    state, owner = checkpoint.state, checkpoint.owner
    if state in ("running", "paused") and (owner is None or owner.alive() is False):
        state = "interrupted"
    best: Trial | None = None
    for trial in checkpoint.trials.values():
        if is_better(trial, best):
            best = trial
    status = JobStatus(
        job_id=job_id,
        name=str(spec.program.get("name", "")),
        state=state,
        strategy=spec.strategy,
        evaluations_done=len(checkpoint.trials),
        evaluations_total=planned_evaluations(spec, SearchSpace.from_dict(spec.space).size),
        best_score=best.score if best is not None else None,
        best_configuration=dict(best.configuration) if best is not None else None,
        best_index=best.index if best is not None else None,
        errors=sum(t.errors for t in checkpoint.trials.values()),
        aborted=sum(1 for t in checkpoint.trials.values() if t.status == "aborted"),
        tokens=sum(t.tokens for t in checkpoint.trials.values()),
        cost=sum(t.cost for t in checkpoint.trials.values()),
        elapsed=checkpoint.elapsed,
        error=checkpoint.error,
        owner=owner.describe() if owner is not None and state != "interrupted" else None,
    )
    cell = JobCell(status)
    cell.publish(status, best)
    cell.done.set()  # a snapshot that never changes: nothing to wait for
    return cell
