"""``rt.jobs``: start, find, list and resume optimization jobs; :class:`JobHandle` steers one.

A job is claimed in the runtime's job store by a lease (:class:`~otpy.optimize.JobStore`):
starting it is one atomic insert, resuming it one compare-and-set, so two runtimes never
run one job. The runtime renews the leases of all its jobs, running or paused, by one
heartbeat (a timer on its clock, one store transaction per beat). Each job here has a
:class:`~otpy.actors._job_record.JobRecord`; its runner (an :class:`OptimizationRunner`,
registered as ``<runtime>.job.<job_id>``) runs under a supervisor of its own, a
``temporary`` child of the JobSupervisor: the job's restart budget (``max_restarts``
within ``restart_window``) is that supervisor's, so one job crashing in a loop never
uses up the JobSupervisor's intensity, which the other jobs depend on.
"""

from __future__ import annotations

import builtins
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import pydantic

from otpy._timers import TimerQueue
from otpy.actors._dspy_jobs import DSPyJobs, job_program, quiet_runs, resumed_parts
from otpy.actors._job_handle import JobHandle
from otpy.actors._job_heartbeat import Heartbeat
from otpy.actors._job_kinds import (
    Plans,
    base_dir_of,
    chosen_executor,
    job_options,
    prepare,
    program_of,
    runner_type,
)
from otpy.actors._job_record import Gift, JobCell, JobEnv, JobRecord, ended, release
from otpy.actors._job_snapshot import stored_cell
from otpy.clock import Clock
from otpy.config import RuntimeConfig
from otpy.documents import validation_problems
from otpy.errors import (
    ConfigurationError,
    JobError,
    StateError,
)
from otpy.optimize import (
    Executor,
    JobOptions,
    JobSpec,
    JobStatus,
    JobStore,
    Metric,
    Owner,
    SearchSpace,
    SQLiteJobStore,
    Strategy,
    Trial,
    default_store_path,
    make_executor,
    make_strategy,
    register_strategy,
    resolve_metric,
)
from otpy.pipelines import PipelineSource, ProviderDirectory, compile_pipeline
from otpy.steps import StepTable
from otpy.supervision import ChildSpec, DynamicSupervisorRef, Supervisor, whereis

__all__ = ["JobsHandle"]

logger = logging.getLogger("otpy.jobs")


class JobsHandle(DSPyJobs):
    """What ``rt.jobs`` is: see :meth:`start`, :meth:`start_dspy`, :meth:`get`,
    :meth:`list`, :meth:`resume`.

    ``executors``: settings for the executors (``idle_seconds`` of a pool thread ...;
    ``config``: the runtime's config); ``default_executor``: what a job naming none runs
    on."""

    def __init__(
        self,
        runtime: str,
        supervisor: str,
        store: JobStore,
        table: Callable[[], StepTable],
        providers: ProviderDirectory | None,
        clock: Clock,
        timeout: float,
        *,
        executors: Mapping[str, Any] | None = None,
        default_executor: str = "threads",
    ) -> None:
        self._supervisor = supervisor
        self._clock = clock
        self.store = store
        settings = {"name": runtime, **dict(executors or {})}
        self._env = JobEnv(
            runtime, store, TimerQueue(clock), table, providers, clock, timeout,
            lambda name: make_executor(name, settings), default_executor=default_executor,
        )  # fmt: skip
        self._env.launch = self._launch
        self._records: dict[str, JobRecord] = {}
        self._lock, self._plans = threading.Lock(), Plans()
        self._heartbeat = Heartbeat(store, self._env.timers, self.records)
        self._heartbeat.schedule()

    @classmethod
    def open(
        cls,
        config: RuntimeConfig,
        supervisor: str,
        table: Callable[[], StepTable],
        providers: ProviderDirectory | None,
        clock: Clock,
    ) -> JobsHandle:
        """``rt.jobs`` of a runtime with ``config``: its job store opened (``jobs_store``,
        else ``jobs.sqlite`` in ``state_dir``; StateError if it cannot be read), owned by
        this runtime, with the config's ``jobs`` settings."""
        path = config.jobs_store
        store = SQLiteJobStore(
            path if path is not None else default_store_path(config.state_dir),
            owner=Owner.current(config.name),
            clock=clock,
            lease_seconds=config.jobs.lease_seconds,
        )
        jobs = config.jobs
        executors = {
            "idle_seconds": jobs.idle_seconds, "max_threads": jobs.max_threads, "config": config
        }  # fmt: skip
        return cls(
            config.name, supervisor, store, table, providers, clock, config.call_timeout,
            executors=executors, default_executor=jobs.executor.type,
        )  # fmt: skip

    def __otpy_ref__(self) -> str:
        """For ``otpy.sys`` and ``otpy.observer``: the JobSupervisor's name."""
        return self._supervisor

    # -- start and resume -------------------------------------------------------------------

    def start(
        self,
        program: PipelineSource,
        space: Mapping[str, Any] | SearchSpace,
        trainset: Sequence[Mapping[str, Any]],
        metric: str | Metric,
        strategy: str | type[Strategy] | None = None,
        *,
        options: JobOptions | None = None,
        job_id: str | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        **settings: Any,
    ) -> JobHandle:
        """Start an optimization job and return its handle at once.

        ``program``: a pipeline (path, YAML text, dict or Pipeline) whose ``{{ vars.x }}``
        are the tuned variables; ``space``: what each variable may be (see
        ``SearchSpace.parse``); ``trainset``: items ``{"inputs": {...}, "expected": ...}``;
        ``metric``: a registered name or ``(example, result) -> float``; ``strategy``: a
        registered name (random_search, grid, bootstrap_fewshot, tpe) or a Strategy class.
        How it searches and stops: ``options`` (a :class:`JobOptions`), or its fields as
        keywords (``seed``, ``concurrency``, ``batch_size``, ``minibatch``,
        ``max_errors``, ``max_evaluations``, ``max_tokens``, ``max_seconds``,
        ``target_score``, ``patience``, ``prices``, ``executor``, ``max_restarts``,
        ``restart_window``, ``strategy_options``), not both. ``base_dir``: the folder the
        relative sub-pipeline paths of a program given as text or a mapping are relative
        to. Everything is checked here, before anything is stored: ConfigurationError
        (also: what the executor cannot run, e.g. a metric function that cannot reach Ray
        workers), UnknownStepError, StepValidationError; JobError if ``job_id`` is taken.
        """
        job_id = job_id or uuid.uuid4().hex[:12]
        self._check_running(job_id)
        if isinstance(strategy, type):
            register_strategy(strategy.name or strategy.__name__, strategy)
            strategy = strategy.name or strategy.__name__
        chosen = job_options(job_id, options, strategy, settings)
        plan = self._plans.compile(program, self._env.table(), base_dir)  # run as it is
        parsed = SearchSpace.parse(space)
        name, metric_fn = resolve_metric(metric, job=job_id)
        made = make_strategy(chosen.strategy, parsed, seed=chosen.seed, **chosen.strategy_options)
        chosen = chosen_executor(job_id, chosen, self._env.default_executor)
        try:
            spec = JobSpec(
                job_id=job_id,
                program=program_of(plan.pipeline),
                base_dir=base_dir_of(plan.pipeline, base_dir),
                space=parsed.to_dict(),
                trainset=[dict(example) for example in trainset],
                metric=name,
                options=chosen,
            )
        except pydantic.ValidationError as exc:
            raise ConfigurationError(f"job {job_id!r}: {validation_problems(exc)}") from None
        prepare(self._env, spec, plan, metric_fn)
        lease = self.store.create(spec)  # JobError if the id is taken
        return self._open(Gift(lease, spec, plan, made, fresh=True), metric_fn)

    def resume(
        self,
        job_id: str,
        *,
        metric: Any = None,
        force: bool = False,
        program: Any = None,
        optimizer: Any = None,
    ) -> JobHandle:
        """Go on with job ``job_id`` from its checkpoint in the store (a job whose runtime
        stopped, or whose process was killed): finished candidates are not evaluated
        again, and the job runs (a job stored as paused too). A job of this runtime that
        has not ended: its handle.

        The claim is one compare-and-set in the store: it succeeds only if the job's lease
        has expired or was released (its runtime stopped, or its heartbeat stopped
        ``lease_seconds`` ago), or its process on this host has exited. JobClaimedError
        (naming the runtime, pid and host) if another live runtime holds it: stop it
        there, or pass ``force=True`` if that process is gone. JobError if the job has
        finished, or its metric was a function and ``metric=`` is not given again.

        A DSPy job re-runs its compile from the start with the same seed, answered from
        its call journal up to the first call never answered (nothing is paid twice); its
        program, optimizer and metric come from their references, else from this
        runtime's earlier run of it, else must be given again (``program=``,
        ``optimizer=``, ``metric=``)."""
        with self._lock:
            record = self._records.get(job_id)
        if record is not None and not record.cell.done.is_set():
            return cast(JobHandle, record.handle)
        self._check_running(job_id)
        stored = self.store.load(job_id, records=False)  # JobError if there is none
        spec = stored.spec
        if stored.state in ("completed", "cancelled", "failed"):
            raise JobError(f"job {job_id!r} is {stored.state}; nothing to resume")
        if spec.kind == "dspy":
            given = {"program": program, "optimizer": optimizer, "metric": metric}
            parts = resumed_parts(self._env, spec, record, given)
            lease = self.store.claim(job_id, force=force)
            previous = record.run if record is not None else None
            return self._open(Gift(lease, spec), None, run=True, work=parts, previous=previous)
        if metric is None and spec.metric is None:
            raise JobError(
                f"job {job_id!r} was started with a metric function; pass metric= to resume it"
            )
        _, metric_fn = resolve_metric(metric if metric is not None else spec.metric, job=job_id)
        plan = compile_pipeline(dict(spec.program), self._env.table(), base_dir=spec.base_dir)
        prepare(self._env, spec, plan, metric_fn)
        lease = self.store.claim(job_id, force=force)
        return self._open(Gift(lease, spec), metric_fn, run=True)

    def executor(self, name: str | None = None) -> Executor:
        """The executor ``name`` (None: the default) of this runtime's jobs, made on first
        use; ConfigurationError for a name nobody registered."""
        return self._env.executor(name or self._env.default_executor)

    def _check_running(self, job_id: str) -> None:
        if self._env.closing:
            raise JobError(f"job {job_id!r}: the runtime is stopping; no job starts now")

    def _open(
        self,
        gift: Gift,
        metric: Metric | None,
        *,
        run: bool = False,
        work: Any = None,
        previous: Any = None,
    ) -> JobHandle:
        spec = gift.spec
        status = JobStatus(
            job_id=spec.job_id,
            name=str(spec.program.get("name", "")),
            state="running",
            strategy=spec.options.strategy,
            kind=spec.kind,
        )
        cell = JobCell(status)
        record = JobRecord(spec.job_id, cell, metric, spec.options, self._env)  # type: ignore[arg-type]
        record.gift, record.wake_running = gift, run
        record.work, record.run = work, previous
        record.runner_type = runner_type(spec.kind)
        program = (
            None if spec.kind != "dspy" else lambda: job_program(self._env, spec.job_id, record)
        )
        record.handle = handle = JobHandle(spec.job_id, cell, record, program)
        with self._lock:
            self._records[spec.job_id] = record
        try:
            self._launch(record)
        except Exception as exc:
            failed = status.model_copy(
                update={"state": "failed", "error": f"{type(exc).__name__}: {exc}"}
            )
            record.settle("ended", failed, None, None)
            release(self.store, gift.lease, failed)
            raise JobError(f"job {spec.job_id!r}: its runner could not start: {exc}") from exc
        return handle

    def _launch(self, record: JobRecord) -> None:
        """Start a runner incarnation of ``record`` under a supervisor of its own."""
        supervisor = whereis(self._supervisor)
        if supervisor is None:
            raise JobError(f"the job supervisor {self._supervisor!r} is not running")
        options, clock = record.options, self._clock
        runner = ChildSpec(
            id="runner",
            start=lambda: record.runner_type.start_named(record.runner_name, record),
            restart="transient",
            significant=True,
            shutdown=10.0,
        )
        child = ChildSpec(
            id=f"job:{record.job_id}",
            start=lambda: Supervisor.start(
                [runner],
                max_restarts=options.max_restarts,
                max_seconds=options.restart_window,
                auto_shutdown="any_significant",
                clock=clock,
            ),
            restart="temporary",
            type="supervisor",
        )
        ref = cast(DynamicSupervisorRef, supervisor).start_child(child)
        record.watch(ref, record.generation)

    # -- reading ----------------------------------------------------------------------------

    def get(self, job_id: str) -> JobHandle:
        """The handle of job ``job_id``: one of this runtime's, or read from the store (then
        it only reports a snapshot: resume it to run it). A stored job whose lease has
        expired, was released, or whose process on this host has exited reads as
        ``interrupted``; one with a live lease keeps its state, with ``status().owner``
        naming the holder. JobError if there is no such job."""
        with self._lock:
            record = self._records.get(job_id)
        if record is not None:
            return cast(JobHandle, record.handle)
        if not self.store.holds(job_id):
            raise JobError(f"no job {job_id!r} here or in {self.store.path}")
        cell = stored_cell(self.store, job_id, self._env.journals)
        program = None
        if cell.status.kind == "dspy":
            program = lambda: job_program(self._env, job_id, None)  # noqa: E731
        return JobHandle(job_id, cell, None, program)

    def list(self) -> list[JobStatus]:
        """Every job of this runtime and every job in the store, by job id (a stored job
        reads as :meth:`get` tells)."""
        with self._lock:
            live = {job_id: record.cell.status for job_id, record in self._records.items()}
        for job_id in self.store.job_ids():
            if job_id not in live:
                live[job_id] = stored_cell(self.store, job_id, self._env.journals).status
        return [live[job_id] for job_id in sorted(live)]

    def trials(self, job_id: str) -> builtins.list[Trial]:
        """Job ``job_id``'s finished candidates, by index, as checkpointed (with their
        per-example results); JobError if the store has no such job."""
        trials = self.store.load(job_id).trials
        return [trials[index] for index in sorted(trials)]

    def records(self) -> builtins.list[JobRecord]:
        with self._lock:
            return builtins.list(self._records.values())

    # -- the runtime stops ------------------------------------------------------------------

    def stopping(self) -> None:
        """The runtime begins to stop: a runner that goes now reads as interrupted."""
        self._env.closing = True
        self._heartbeat.cancel()

    def close(self) -> None:
        """After the supervision tree is down: hibernated jobs are released (state
        ``interrupted``, in one transaction), then timers, executors and the store close."""
        self.stopping()
        idle = [r for r in self.records() if r.phase == "hibernated" and r.lease is not None]
        items = []
        for record in idle:
            status = record.cell.status.model_copy(
                update={"state": "interrupted", "stop_reason": "stopped"}
            )
            assert record.lease is not None
            items.append((record.lease, ended(status)))
            record.settle("ended", status, record.cell.best, None)
        if items:
            try:
                self.store.write_many(items)
            except StateError as exc:
                logger.warning("could not release %d paused jobs: %s", len(items), exc)
        self._env.timers.close()
        for executor in self._env.executors.values():
            executor.shutdown()
        quiet_runs(self.records(), self._env.timeout)  # their answers journaled first
        if self._env.journal_store is not None:
            self._env.journal_store.close()
        self.store.close()
