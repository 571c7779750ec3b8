"""What a runtime keeps of each of its jobs, runner or not: :class:`JobRecord`.

A job's runner lives only while the job has work in flight: a paused job's runner
checkpoints and exits (it *hibernates*), and the record alone — the published status,
the best trial, the lease, the metric — stands for the job, costing no thread. Steering
goes through the record (:meth:`JobRecord.steer`): to the runner if one runs, else the
record answers (pause), ends the job in the store (cancel) or starts a runner again from
the checkpoint (resume). Each runner incarnation runs under a supervisor of its own
(:meth:`JobEnv.launch`), whose restart intensity is the job's restart budget; when that
supervisor exits without the job having settled, the record settles it: ``failed`` once
the budget is spent, ``interrupted`` if the runtime stops.

Threads: the record's methods are called by handles (any thread), runners, the lease
heartbeat (timer thread) and monitors; one condition guards its fields, and nothing
blocks on a runner while holding it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from otpy._timers import TimerQueue
from otpy.calls import JournalStore, SQLiteJournalStore, journal_path
from otpy.clock import Clock
from otpy.errors import JobError, NoProcessError, StateError
from otpy.optimize import (
    CheckpointBatch,
    Executor,
    JobOptions,
    JobSpec,
    JobStatus,
    JobStore,
    Lease,
    Metric,
    Strategy,
    Trial,
)
from otpy.pipelines import Plan, ProviderDirectory
from otpy.steps import StepTable
from otpy.supervision import KILLED, Down, ServerRef

__all__ = ["Gift", "JobCell", "JobEnv", "JobRecord", "ended", "release"]

logger = logging.getLogger("otpy.jobs")

Phase = Literal["starting", "running", "hibernated", "ended"]


class JobCell:
    """The published status and best trial of a job, and the event set once it has
    ended here (:attr:`JobStatus.ended`). ``live``, if set (by a runner whose counts move
    between publications: a DSPy job's LLM calls), brings a status read up to date."""

    def __init__(self, status: JobStatus) -> None:
        self._status = status
        self.best: Trial | None = None
        self.done = threading.Event()
        self.live: Callable[[JobStatus], JobStatus] | None = None

    @property
    def status(self) -> JobStatus:
        status, live = self._status, self.live
        return status if live is None else live(status)

    def publish(self, status: JobStatus, best: Trial | None) -> None:
        self.best = best
        self._status = status  # one assignment: readers see the old or the new, whole
        if status.ended:
            self.done.set()
        else:
            self.done.clear()


@dataclass
class Gift:
    """What the first runner of a job started or resumed by a handle is given: the lease
    just claimed, the spec, whether the job is ``fresh`` (new: it has no checkpoint to
    read), and for a new pipeline job the plan and strategy already made."""

    lease: Lease
    spec: JobSpec
    plan: Plan | None = None
    strategy: Strategy | None = None
    fresh: bool = False


@dataclass
class JobEnv:
    """What a runtime's jobs share: the store, the timers, the executors (made on first
    use, by name; ``default_executor`` for the jobs naming none), the call journals of
    DSPy jobs (``journals()``: beside the store, opened on first use), the step table,
    providers and clock, and ``launch(record)`` (starts a runner incarnation under its own
    supervisor; set by JobsHandle)."""

    runtime: str
    store: JobStore
    timers: TimerQueue
    table: Callable[[], StepTable]
    providers: ProviderDirectory | None
    clock: Clock
    timeout: float
    make_executor: Callable[[str], Executor]
    default_executor: str = "threads"
    launch: Callable[[JobRecord], None] = field(default=lambda record: None)
    closing: bool = False
    executors: dict[str, Executor] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    journal_store: JournalStore | None = None

    def executor(self, name: str) -> Executor:
        with self.lock:
            found = self.executors.get(name)
            if found is None:
                found = self.executors[name] = self.make_executor(name)
            return found

    def journals(self) -> JournalStore:
        """The call journals of this runtime's DSPy jobs (``<store>.journal``)."""
        with self.lock:
            if self.journal_store is None:
                self.journal_store = SQLiteJournalStore(journal_path(self.store.path))
            return self.journal_store


class JobRecord:
    """One job of this runtime (see the module docstring)."""

    def __init__(
        self, job_id: str, cell: JobCell, metric: Metric, options: JobOptions, env: JobEnv
    ) -> None:
        self.job_id = job_id
        self.cell = cell
        self.metric = metric
        self.options = options
        self.env = env
        self.runner_name = f"{env.runtime}.job.{job_id}"
        self.phase: Phase = "starting"
        self.runner: ServerRef[Any] | None = None
        self.last_runner: ServerRef[Any] | None = None
        self.lease: Lease | None = None
        self.gift: Gift | None = None
        self.wake_running = False
        self.generation = 0
        self.restarts = 0
        self.crashed: str | None = None
        self.handle: Any = None  # its JobHandle (one per record)
        self.runner_type: Any = None  # the runner class its incarnations are (by the kind)
        self.work: Any = None  # what the kind's runner needs that the store does not hold
        self.run: Any = None  # the kind's last run of the job here (a DSPy compile's)
        self.started: JobStatus = cell.status  # the last runner's first status
        self.pausing: list[None] = []  # pause calls under way (JobHandle.pause): see runner
        self._cond = threading.Condition()

    # -- the runner's side ------------------------------------------------------------------

    def take_gift(self) -> tuple[Gift | None, bool]:
        """The first incarnation's gift (once), and whether to run a paused job."""
        with self._cond:
            gift, self.gift = self.gift, None
            running, self.wake_running = self.wake_running, False
            return gift, running

    def attach(
        self, ref: ServerRef[Any], lease: Lease, status: JobStatus, best: Trial | None
    ) -> None:
        """Runner ``ref`` has started (its first ``status``; ``started`` keeps it)."""
        with self._cond:
            if self.crashed is not None:
                self.restarts += 1
                self.crashed = None
                status = status.model_copy(update={"restarts": self.restarts})
            self.runner, self.last_runner, self.lease = ref, ref, lease
            self.phase = "running"
            self.started = status
            self.cell.publish(status, best)
            self._cond.notify_all()

    def publish(self, status: JobStatus, best: Trial | None, *, by: ServerRef[Any]) -> None:
        """Runner ``by`` publishes; an incarnation that is no longer the job's (killed, it
        finished a handler in the background) is not heard."""
        if self.runner is by:
            self.cell.publish(status, best)

    def settle(
        self,
        phase: Phase,
        status: JobStatus,
        best: Trial | None,
        lease: Lease | None,
        *,
        by: ServerRef[Any] | None = None,
    ) -> None:
        """The runner ``by`` (None: the runtime) leaves: ``hibernated`` (lease kept) or
        ``ended``."""
        with self._cond:
            current = self.runner is by or (self.runner is None and self.phase == "starting")
            if by is not None and not current:
                return  # an old incarnation: the job is another's now
            self.phase = phase
            self.runner = None
            self.lease = lease if phase == "hibernated" else None
            self.cell.publish(status, best)
            self._cond.notify_all()

    def exited(self, ref: ServerRef[Any]) -> None:
        """Runner ``ref`` has exited (its name is free): a wake-up need not wait for it,
        and the record keeps nothing of it."""
        with self._cond:
            if self.last_runner is ref:
                self.last_runner = None

    def note_crash(self, reason: object) -> None:
        with self._cond:
            self.crashed = (
                f"{type(reason).__name__}: {reason}"
                if isinstance(reason, BaseException)
                else str(reason)
            )

    # -- the lease heartbeat ----------------------------------------------------------------

    def held_lease(self) -> Lease | None:
        with self._cond:
            return self.lease if self.phase != "ended" else None

    def lose(self, epoch: int, owner: str | None) -> None:
        """The heartbeat found the lease of ``epoch`` taken (by ``owner``, or released)."""
        with self._cond:
            lease = self.lease
            if self.phase == "ended" or lease is None or lease.epoch != epoch:
                return  # ended, or a newer claim of ours: nothing lost
            runner = self.runner if self.phase == "running" else None
            if runner is None and self.phase == "hibernated":
                self._end_locked(_taken_over(self.cell.status, owner))
                return
        if runner is not None:
            runner.cast(("lost", epoch, owner))

    def _end_locked(self, status: JobStatus) -> None:
        self.phase, self.runner, self.lease = "ended", None, None
        self.cell.publish(status, self.cell.best)
        self._cond.notify_all()

    # -- the per-incarnation supervisor ---------------------------------------------------

    def watch(self, supervisor: ServerRef[Any], generation: int) -> None:
        """Settle the job if ``supervisor`` (of launch ``generation``) exits and the job has
        not settled: its runner crashed past the budget, or the runtime stops."""

        def down(message: Down) -> None:
            self._supervisor_down(message.reason, generation)

        supervisor.monitor(down)

    def _supervisor_down(self, reason: object, generation: int) -> None:
        with self._cond:
            if generation != self.generation or self.phase in ("ended", "hibernated"):
                return
            lease, current, options = self.lease, self.cell.status, self.options
            if self.env.closing or reason == KILLED or self.crashed is None:
                status = current.model_copy(
                    update={"state": "interrupted", "in_flight": 0, "stop_reason": "stopped"}
                )
            else:
                error = (
                    f"the runner crashed more than max_restarts ({options.max_restarts}) "
                    f"times within {options.restart_window:g} s; last: {self.crashed}"
                )
                status = current.model_copy(
                    update={"state": "failed", "in_flight": 0, "stop_reason": "restarts",
                            "error": error}
                )  # fmt: skip
            if lease is not None:  # stored before a waiter hears of it
                release(self.env.store, lease, status)
            self._end_locked(status)

    # -- steering ---------------------------------------------------------------------------

    def steer(self, action: str) -> JobStatus:
        """``pause``, ``resume`` or ``cancel`` (see JobHandle); JobError if it has ended
        (cancel then only reports it)."""
        timeout = self.env.timeout
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                status = self.cell.status
                if status.ended:
                    if action == "cancel":
                        return status
                    raise _ended(self.job_id, status, action)
                runner = self.runner if self.phase == "running" else None
                if self.phase == "hibernated":
                    if action == "pause":
                        return status
                    if action == "cancel":
                        return self._cancel_hibernated()
                    if self.env.closing:
                        raise JobError(f"job {self.job_id!r}: its runtime is stopping")
                    self.wake_running = True
                    if not self._launch_locked():
                        return self.cell.status  # it could not start
                    return self.started  # as its new runner started, from the checkpoint
                if runner is None or not runner.is_alive():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return status
                    self._cond.wait(min(left, 0.05))
                    continue
            try:
                return runner.call(action, timeout=timeout)  # type: ignore[no-any-return]
            except NoProcessError:
                continue  # it exited meanwhile (hibernated, ended, crashed): look again

    def _launch_locked(self) -> bool:
        """Start a runner incarnation (lock held while the phase says ``starting``);
        False if it could not start (the job has failed)."""
        self.phase = "starting"
        self.generation += 1
        previous = self.last_runner
        self._cond.release()
        try:
            if previous is not None:
                previous.wait_exit(self.env.timeout)  # it frees the name as it exits
            self.env.launch(self)
        except Exception as exc:
            self._cond.acquire()
            status = self.cell.status.model_copy(
                update={"state": "failed", "error": f"{type(exc).__name__}: {exc}"}
            )
            self._end_locked(status)
            return False
        self._cond.acquire()
        return True

    def _cancel_hibernated(self) -> JobStatus:
        status = self.cell.status.model_copy(
            update={"state": "cancelled", "in_flight": 0, "stop_reason": "cancelled"}
        )
        lease = self.lease
        if lease is not None:
            try:
                self.env.store.write(lease, ended(status))
            except JobError as exc:  # the lease was lost meanwhile
                status = _taken_over(self.cell.status, getattr(exc, "owner", None))
        self._end_locked(status)
        return status


def ended(status: JobStatus) -> CheckpointBatch:
    """The checkpoint of a job ending in ``status`` (its lease released)."""
    return CheckpointBatch(
        state=status.state, elapsed=status.elapsed, error=status.error, release=True
    )


def release(store: JobStore, lease: Lease, status: JobStatus) -> None:
    """Record ``status``'s state and release the lease; the store may be why the job
    ended, so a failure here is logged, not raised."""
    try:
        store.write(lease, ended(status))
    except (JobError, StateError) as exc:
        logger.warning("job %s: could not record it %s: %s", lease.job_id, status.state, exc)


def _taken_over(status: JobStatus, owner: str | None) -> JobStatus:
    where = owner or "nobody (the lease was released)"
    return status.model_copy(
        update={
            "state": "taken_over",
            "in_flight": 0,
            "owner": owner,
            "stop_reason": "taken_over",
            "error": f"another runtime took the job over: {where} holds its lease",
        }
    )


def _ended(job_id: str, status: JobStatus, action: str) -> JobError:
    if status.state == "interrupted":
        return JobError(
            f"job {job_id!r} is interrupted; it cannot {action} from this handle: "
            f"resume it with rt.jobs.resume({job_id!r})"
        )
    if status.state == "taken_over":
        return JobError(f"job {job_id!r} was taken over by {status.owner}; {action} it there")
    return JobError(f"job {job_id!r} is {status.state}; it cannot {action}")
