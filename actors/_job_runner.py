"""``JobRunner``: what one incarnation of any job's runner does, whatever the job runs.

A runner holds its job's lease and writes its checkpoints; the kind of job (a pipeline's
tuned variables: :class:`~otpy.actors._optimization_runner.OptimizationRunner`; a DSPy
compile: :class:`~otpy.actors._dspy_runner.DSPyRunner`) supplies the work and the
bookkeeping through a few hooks (:meth:`open`, :meth:`status`, :meth:`batch`, ...). This
base does the rest, the same for both:

- start: the lease (given by the handle that started or resumed the job, else claimed
  again after a restart or a wake-up) and the checkpoint;
- steering: ``pause``, ``resume``, ``cancel`` calls, the ``max_seconds`` deadline, the
  heartbeat's ``lost`` message;
- writes: every checkpoint fenced by the lease; a failed write crashes the runner (its
  supervisor restarts it from the checkpoint), a refused one (the lease was taken) stops
  it at once, writing nothing more (state ``taken_over``);
- exits, each explicit: the job ends (final state written, lease released); paused with
  nothing in flight it *hibernates* (state written, lease kept; the job's record stands
  for it); its runtime stops (state ``interrupted`` written, lease released);
- running time: banked across pauses, restarts and processes (``elapsed``).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from otpy.actors._deadline import Deadline
from otpy.actors._job_record import Gift, JobRecord
from otpy.errors import JobError, LeaseLostError
from otpy.optimize import Checkpoint, CheckpointBatch, JobSpec, JobState, JobStatus, Lease, Trial
from otpy.supervision import NORMAL, Down, GenServer, is_abnormal
from otpy.telemetry import emit_safely

__all__ = ["Halt", "JobRunner", "Ledger"]

logger = logging.getLogger("otpy.jobs")

STEP = "step"


class Halt(Exception):
    """The runner has stopped (ended, crashed or lost its lease): handle nothing more."""


class Ledger(Protocol):
    """What a runner needs of its kind's bookkeeping (``JobLedger``, ``DSPyLedger``)."""

    state: JobState
    best: Trial | None

    def batch(
        self, elapsed: float, *, state: JobState | None = None, release: bool = False
    ) -> CheckpointBatch: ...

    def end(
        self, state: JobState, *, reason: str | None = None, error: str | None = None
    ) -> None: ...


class JobRunner(GenServer):
    """One incarnation of job ``record``'s runner (see the module docstring). Calls:
    ``"pause"``, ``"resume"``, ``"cancel"`` (each returns the JobStatus after it).

    A kind sets ``ledger`` (its bookkeeping) in :meth:`open`."""

    ledger: Ledger

    def __init__(self, record: JobRecord) -> None:
        super().__init__()
        self.record = record
        self.env = record.env
        self.halted = False
        self.opened = False
        self.lease: Lease | None = None
        self.running_since: float | None = None
        self.banked = 0.0

    # -- the kind's hooks -------------------------------------------------------------------

    def open(
        self, spec: JobSpec, gift: Gift | None, checkpoint: Checkpoint | None, run_paused: bool
    ) -> None:
        """Take up the job: its bookkeeping (from ``checkpoint``, None for a new job) and its
        work (not started yet). ``run_paused``: a paused job is to run."""
        raise NotImplementedError

    @property
    def state(self) -> JobState:
        """The job's state in the bookkeeping."""
        return self.ledger.state

    def status(self, elapsed: float, state: JobState | None = None) -> JobStatus:
        raise NotImplementedError

    def best(self) -> Trial | None:
        return self.ledger.best

    def batch(self, elapsed: float, state: JobState | None, release: bool) -> CheckpointBatch:
        """What to checkpoint now (taken: the next batch holds only what is new)."""
        return self.ledger.batch(elapsed, state=state, release=release)

    def end(self, state: JobState, reason: str | None) -> None:
        """Mark the job ended in the bookkeeping."""
        self.ledger.end(state, reason=reason)

    def start_work(self) -> None:
        """Start (or go on with) the work, once the job runs."""

    def close_work(self) -> None:
        """Stop the work (in flight: told to stop); safe to call more than once."""

    def drop_in_flight(self) -> None:
        """The work in flight will not come back: count none."""

    def written(self) -> None:
        """A checkpoint was written (what it held may now be told)."""

    def step(self, *, force_write: bool = False) -> None:
        """Take what came back, start what is next, write, publish."""
        raise NotImplementedError

    def pause(self) -> None:
        raise NotImplementedError

    def resume(self) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        self.close_work()
        self.drop_in_flight()
        self.finish("cancelled", reason="cancelled")

    def expire(self) -> None:
        """The ``max_seconds`` deadline fired (the time is up)."""
        self.close_work()
        self.finish("completed", reason="max_seconds")

    def seconds_left(self) -> float | None:
        """Running seconds left before ``max_seconds`` (None: no time budget)."""
        return None

    def receive(self, message: Any) -> bool:
        """A message of the kind's own; whether it was one."""
        return False

    # -- start ------------------------------------------------------------------------------

    def on_start(self) -> None:
        record, env = self.record, self.env
        gift, run_paused = record.take_gift()
        ref = self.actor_ref
        ref.monitor(self._exited)
        self.deadline = Deadline(env.timers, ref, "deadline")
        checkpoint: Checkpoint | None = None
        if gift is None:
            try:
                lease = env.store.claim(record.job_id)  # a restart or a wake-up: ours again
            except JobError as exc:
                self.halt_taken_over(getattr(exc, "owner", None), str(exc))
                return
            checkpoint = env.store.load(record.job_id)
            spec = checkpoint.spec
        else:
            lease, spec = gift.lease, gift.spec
            if not gift.fresh:  # resumed by a handle: the store has its checkpoint
                checkpoint = env.store.load(record.job_id)
        self.lease = lease
        self.spec: JobSpec = spec
        if checkpoint is not None:
            self.banked = checkpoint.elapsed
        self.open(spec, gift, checkpoint, run_paused)
        self.opened = True
        if self.state == "running":
            self.run_clock()
        record.attach(ref, lease, self.current_status(), self.best())
        ref.cast((STEP, run_paused))  # a paused job resumed: its state is written then

    def _exited(self, down: Down) -> None:
        """Whatever way this incarnation exits (killed too): nothing comes back to it."""
        self.close_work()
        deadline = getattr(self, "deadline", None)
        if deadline is not None:
            deadline.cancel()
        if is_abnormal(down.reason):
            self.record.note_crash(down.reason)
        self.record.exited(down.ref)

    # -- messages ---------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if self.halted:
            return self.record.cell.status
        try:
            if message == STEP:
                self.step()
            elif isinstance(message, tuple) and message[0] == STEP:
                self.step(force_write=message[1])
            elif message in ("pause", "resume", "cancel"):
                getattr(self, message)()
            elif self.deadline.fresh(message):
                self._deadline()
            elif isinstance(message, tuple) and message[0] == "lost":
                self._lost(message[1], message[2])
            elif isinstance(message, tuple) and message[0] == "deadline":
                pass  # a stale deadline (paused, resumed or re-armed since)
            elif not self.receive(message):
                return super().on_receive(message)
        except Halt:
            pass
        return self.record.cell.status

    def _deadline(self) -> None:
        left = self.seconds_left()
        if left is not None and left > 0:  # the timer fired early: wait the rest
            self.deadline.arm(left)
            return
        self.expire()

    def _lost(self, epoch: int, owner: str | None) -> None:
        if self.lease is not None and self.lease.epoch == epoch:
            self.halt_taken_over(owner, None)
            raise Halt

    # -- writes and exits -------------------------------------------------------------------

    def write(self, *, state: JobState | None = None, release: bool = False) -> None:
        """Checkpoint what the bookkeeping has (fenced by the lease): crash if the store
        fails, stop at once if the lease was taken."""
        assert self.lease is not None
        batch = self.batch(self.elapsed(), state, release)
        try:
            self.lease = self.env.store.write(self.lease, batch)
            self.written()
        except LeaseLostError as exc:
            self.halt_taken_over(exc.owner, str(exc))
            raise Halt from None
        except Exception as exc:  # the store failed: let it crash, restart from the checkpoint
            logger.error("job %s: checkpoint failed (%s); restarting", self.spec.job_id, exc)
            self.halted = True
            self.stop_after(exc)
            raise Halt from None

    def finish(self, state: JobState, *, reason: str | None = None) -> None:
        """End the job: bookkeeping, final checkpoint (lease released), settle, exit."""
        self.bank()
        self.end(state, reason)
        self.write(release=True)
        status = self.current_status()
        self.leave("ended", status)
        emit_safely(
            "job.finished",
            {"evaluations": status.evaluations_done, "tokens": status.tokens},
            {"job_id": self.spec.job_id, "state": status.state, "reason": status.stop_reason or ""},
        )
        raise Halt

    def hibernate(self) -> None:
        """Paused, nothing in flight: checkpoint and exit (the record stands for the job)."""
        self.write()
        self.leave("hibernated", self.current_status())
        raise Halt

    def leave(self, phase: Any, status: JobStatus) -> None:
        self.halted = True
        self.close_work()
        self.deadline.cancel()
        self.record.settle(phase, status, self.best(), self.lease, by=self.actor_ref)
        self.stop_after(NORMAL)

    def halt_taken_over(self, owner: str | None, error: str | None) -> None:
        if self.opened:
            self.bank()
            self.drop_in_flight()
            status = self.current_status(state="taken_over")
        else:
            status = self.record.cell.status
        where = owner or "nobody (the lease was released)"
        status = status.model_copy(
            update={
                "state": "taken_over",
                "in_flight": 0,
                "owner": owner,
                "stop_reason": "taken_over",
                "error": error or f"another runtime took the job over: {where} holds its lease",
            }
        )
        self.lease = None
        self.halted = True
        self.close_work()
        self.deadline.cancel()
        best = self.best() if self.opened else None
        self.record.settle("ended", status, best, None, by=self.actor_ref)
        if not self.opened:
            self.actor_ref.cast(STEP)  # on_start: exit once started (halted: it stops)
        self.stop_after(NORMAL)

    # -- time and status --------------------------------------------------------------------

    def run_clock(self) -> None:
        """The job runs from now: its running time counts, its deadline is armed."""
        self.running_since = self.env.clock.monotonic()
        left = self.seconds_left()
        if left is not None:
            self.deadline.arm(max(0.0, left))

    def bank(self) -> None:
        """Pausing or ending: bank the running time, stop the deadline."""
        if self.running_since is not None:
            self.banked += max(0.0, self.env.clock.monotonic() - self.running_since)
            self.running_since = None
        self.deadline.cancel()

    def elapsed(self) -> float:
        since = self.running_since
        running = 0.0 if since is None else max(0.0, self.env.clock.monotonic() - since)
        return self.banked + running

    def current_status(self, *, state: JobState | None = None) -> JobStatus:
        return self.status(self.elapsed(), state)

    def publish(self) -> None:
        self.record.publish(self.current_status(), self.best(), by=self.actor_ref)

    # -- exits ------------------------------------------------------------------------------

    def on_stop(self) -> None:
        if self.halted or not self.opened:
            return
        # the runtime (or the job's supervisor) stops it: resumable from the checkpoint
        self.halted = True
        self.bank()
        self.close_work()
        self.drop_in_flight()
        status = self.current_status(state="interrupted").model_copy(
            update={"stop_reason": "stopped"}
        )
        try:
            self.write(state="interrupted", release=True)
        except Halt:
            pass
        except Exception:
            logger.exception("job %s: could not record it interrupted", self.spec.job_id)
        self.record.settle("ended", status, self.best(), None, by=self.actor_ref)
