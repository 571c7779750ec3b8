"""The ``OptimizationRunner``: one incarnation of a job's runner, a thin shell around its
:class:`~otpy.optimize.JobLedger`.

The ledger decides (what to run, what to write, when the job is over, its status); the
runner does the rest: its mailbox, the executor session evaluations run on, the time
budget's timer, and the store writes. One loop step (:meth:`_step`) takes the results
that came back, asks the ledger for the next tasks, writes what the ledger has to
checkpoint — in one fenced transaction, before any of the new tasks starts — then
starts them and publishes the status. Results come back in batches (one message for all
that finished since the last step), so a checkpoint is one transaction per batch.

Exits, each explicit (nothing here relies on how a GenServer treats a cast's exception):

- the job ends (completed, cancelled, failed): final state written, lease released;
- paused with nothing in flight: it *hibernates* (state written, lease kept; the job's
  record stands for it until resumed);
- a checkpoint write fails: it crashes (``stop_after`` with the error: abnormal), its
  supervisor restarts it from the checkpoint;
- the lease was taken (a write refused, or the heartbeat says so): it stops at once,
  writes nothing more, and the job reads ``taken_over``;
- its runtime stops: state ``interrupted`` written, lease released.
"""

from __future__ import annotations

import logging
from typing import Any

from otpy.actors._deadline import Deadline
from otpy.actors._job_record import JobRecord
from otpy.errors import JobError, LeaseLostError
from otpy.optimize import (
    ExecutorSession,
    JobLedger,
    JobSpec,
    JobState,
    JobStatus,
    JobWork,
    Lease,
    SearchSpace,
    Trial,
    make_strategy,
)
from otpy.pipelines import compile_pipeline
from otpy.supervision import NORMAL, Down, GenServer, is_abnormal
from otpy.telemetry import emit_safely

__all__ = ["OptimizationRunner"]

logger = logging.getLogger("otpy.jobs")

_STEP, _DRAIN = "step", "drain"


class _Halt(Exception):
    """The runner has stopped (ended, crashed or lost its lease): handle nothing more."""


class OptimizationRunner(GenServer):
    """One incarnation of job ``record``'s runner (see the module docstring). Calls:
    ``"pause"``, ``"resume"``, ``"cancel"`` (each returns the JobStatus after it)."""

    def __init__(self, record: JobRecord) -> None:
        super().__init__()
        self.record = record
        self.env = record.env
        self.halted = False
        self.ledger: JobLedger | None = None
        self.finished: list[Trial] = []  # trials to tell telemetry of, once checkpointed
        self.lease: Lease | None = None
        self.running_since: float | None = None
        self.banked = 0.0

    # -- start: the lease, the checkpoint, the plan, the strategy ---------------------------

    def on_start(self) -> None:
        record, env = self.record, self.env
        gift, run_paused = record.take_gift()
        ref = self.actor_ref
        ref.monitor(self._exited)
        self.deadline = Deadline(env.timers, ref, "deadline")
        if gift is None:
            try:
                lease = env.store.claim(record.job_id)  # a restart or a wake-up: ours again
            except JobError as exc:
                self._halt_taken_over(getattr(exc, "owner", None), str(exc))
                return
            checkpoint = env.store.load(record.job_id)
            spec, plan, strategy = checkpoint.spec, None, None
        else:
            lease, spec, plan, strategy, checkpoint = (
                gift.lease, gift.spec, gift.plan, gift.strategy, None
            )  # fmt: skip
            if plan is None:  # resumed by a handle: the store has its checkpoint
                checkpoint = env.store.load(record.job_id)
        self.lease = lease
        self.spec: JobSpec = spec
        if plan is None:
            plan = compile_pipeline(dict(spec.program), env.table(), base_dir=spec.base_dir)
        space = SearchSpace.from_dict(spec.space)
        if strategy is None:
            options = spec.options
            strategy = make_strategy(
                options.strategy, space, seed=options.seed, **options.strategy_options
            )
        ledger = self.ledger = JobLedger(spec, strategy, space_size=space.size)
        if checkpoint is not None:
            ledger.restore(checkpoint)
            self.banked = checkpoint.elapsed
        if run_paused:
            ledger.resume()
        work = JobWork(spec, plan, record.metric, env.providers, env.clock, env.table())
        executor = env.executor(spec.options.executor or env.default_executor)
        self.session: ExecutorSession = executor.open(work, lambda: ref.cast(_DRAIN))
        if ledger.state == "running":
            self._run()
        record.attach(ref, lease, self._status(), ledger.best)
        ref.cast(("step", run_paused))  # a paused job resumed: its state is written then

    def _exited(self, down: Down) -> None:
        """Whatever way this incarnation exits (killed too): nothing comes back to it."""
        session = getattr(self, "session", None)
        if session is not None:
            session.close()
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
            if message in (_DRAIN, _STEP):
                self._step()
            elif isinstance(message, tuple) and message[0] == _STEP:
                self._step(force_write=message[1])
            elif message in ("pause", "resume", "cancel"):
                getattr(self, f"_{message}")()
            elif self.deadline.fresh(message):
                self._expire()
            elif isinstance(message, tuple) and message[0] == "lost":
                self._lost(message[1], message[2])
            elif isinstance(message, tuple) and message[0] == "deadline":
                pass  # a stale deadline (paused, resumed or re-armed since)
            else:
                return super().on_receive(message)
        except _Halt:
            pass
        return self.record.cell.status

    def _pause(self) -> None:
        ledger = self._ledger()
        if ledger.pause():
            self._bank()
            self._step(force_write=True)

    def _resume(self) -> None:
        ledger = self._ledger()
        if ledger.resume():
            self._run()
            self._step(force_write=True)

    def _cancel(self) -> None:
        self.session.close()  # in flight: told to stop, their results dropped
        self._ledger().in_flight = 0
        self._finish("cancelled", reason="cancelled")

    def _expire(self) -> None:
        ledger = self._ledger()
        left = ledger.seconds_left(self._elapsed())
        if left is not None and left > 0:  # the timer fired early: wait the rest
            self.deadline.arm(left)
            return
        self.session.close()
        ledger.expire()
        self._finish("completed")

    def _lost(self, epoch: int, owner: str | None) -> None:
        if self.lease is not None and self.lease.epoch == epoch:
            self._halt_taken_over(owner, None)
            raise _Halt

    # -- the loop ---------------------------------------------------------------------------

    def _step(self, *, force_write: bool = False) -> None:
        ledger = self._ledger()
        for task, result, cost in self.session.take():
            trial = ledger.record(task, result, cost)
            if trial is not None:
                self.finished.append(trial)
        if ledger.state in ("completed", "cancelled", "failed"):
            self._finish(ledger.state)  # restored finished
        tasks = ledger.next_tasks()
        if ledger.state == "running" and ledger.idle:
            self._finish("completed")
        if ledger.state == "paused" and ledger.in_flight == 0:
            self._hibernate()
        if tasks and not ledger.new_rounds:
            self.session.submit(tasks)  # their candidates are stored: start them at once
            tasks = []
        if ledger.pending or force_write:
            self._write()  # finished trials (and new rounds: before their candidates start)
        self._publish()
        if tasks:
            self.session.submit(tasks)

    def _write(self, *, state: JobState | None = None, release: bool = False) -> None:
        """Checkpoint what the ledger has (fenced by the lease): crash if the store fails,
        stop at once if the lease was taken."""
        assert self.lease is not None and self.ledger is not None
        batch = self.ledger.batch(self._elapsed(), state=state, release=release)
        try:
            self.lease = self.env.store.write(self.lease, batch)
            for trial in self.finished:  # checkpointed: now they may be told
                emit_safely(
                    "job.evaluation",
                    {"score": trial.score or 0.0, "tokens": trial.tokens},
                    {"job_id": self.spec.job_id, "index": trial.index, "status": trial.status},
                )
            self.finished.clear()
        except LeaseLostError as exc:
            self._halt_taken_over(exc.owner, str(exc))
            raise _Halt from None
        except Exception as exc:  # the store failed: let it crash, restart from the checkpoint
            logger.error("job %s: checkpoint failed (%s); restarting", self.spec.job_id, exc)
            self.halted = True
            self.stop_after(exc)
            raise _Halt from None

    def _finish(self, state: JobState, *, reason: str | None = None) -> None:
        ledger = self._ledger()
        self._bank()
        ledger.end(state, reason=reason)
        self._write(release=True)
        status = self._status()
        self._leave("ended", status)
        emit_safely(
            "job.finished",
            {"evaluations": len(ledger.trials), "tokens": ledger.tokens},
            {"job_id": self.spec.job_id, "state": status.state, "reason": ledger.stop_reason or ""},
        )
        raise _Halt

    def _hibernate(self) -> None:
        self._write()  # paused, nothing in flight: the checkpoint is all there is
        self._leave("hibernated", self._status())
        raise _Halt

    def _leave(self, phase: Any, status: JobStatus) -> None:
        self.halted = True
        self.session.close()
        self.deadline.cancel()
        ledger = self.ledger
        best = ledger.best if ledger else None
        self.record.settle(phase, status, best, self.lease, by=self.actor_ref)
        self.stop_after(NORMAL)

    def _halt_taken_over(self, owner: str | None, error: str | None) -> None:
        ledger = self.ledger
        if ledger is not None:
            self._bank()
            ledger.in_flight = 0
            status = self._status(state="taken_over")
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
        if getattr(self, "session", None) is not None:
            self.session.close()
        self.deadline.cancel()
        self.record.settle(
            "ended", status, ledger.best if ledger else None, None, by=self.actor_ref
        )
        if ledger is None:
            self.actor_ref.cast(_STEP)  # on_start: exit once started (halted: it stops)
        self.stop_after(NORMAL)

    # -- time and status --------------------------------------------------------------------

    def _run(self) -> None:
        self.running_since = self.env.clock.monotonic()
        left = self._ledger().seconds_left(self._elapsed())
        if left is not None:
            self.deadline.arm(max(0.0, left))

    def _bank(self) -> None:
        """Pausing or ending: bank the running time, stop the deadline."""
        if self.running_since is not None:
            self.banked += max(0.0, self.env.clock.monotonic() - self.running_since)
            self.running_since = None
        self.deadline.cancel()

    def _elapsed(self) -> float:
        since = self.running_since
        running = 0.0 if since is None else max(0.0, self.env.clock.monotonic() - since)
        return self.banked + running

    def _status(self, *, state: JobState | None = None) -> JobStatus:
        return self._ledger().status(self._elapsed(), state=state, restarts=self.record.restarts)

    def _publish(self) -> None:
        self.record.publish(self._status(), self._ledger().best, by=self.actor_ref)

    def _ledger(self) -> JobLedger:
        assert self.ledger is not None
        return self.ledger

    # -- exits ------------------------------------------------------------------------------

    def on_stop(self) -> None:
        if self.halted or self.ledger is None:
            return
        # the runtime (or the job's supervisor) stops it: resumable from the checkpoint
        self.halted = True
        self._bank()
        self.ledger.in_flight = 0
        status = self._status(state="interrupted").model_copy(update={"stop_reason": "stopped"})
        try:
            self._write(state="interrupted", release=True)
        except _Halt:
            pass
        except Exception:
            logger.exception("job %s: could not record it interrupted", self.spec.job_id)
        self.record.settle("ended", status, self.ledger.best, None, by=self.actor_ref)
