"""The ``OptimizationRunner``: one incarnation of a pipeline job's runner, a thin shell
around its :class:`~otpy.optimize.JobLedger` (the lease, the writes, the exits and the
running time are :class:`~otpy.actors._job_runner.JobRunner`'s).

The ledger decides (what to run, what to write, when the job is over, its status); the
runner does the rest: its mailbox, the executor session evaluations run on, the time
budget's timer, and the store writes. One loop step (:meth:`step`) takes the results
that came back, asks the ledger for the next tasks, writes what the ledger has to
checkpoint — in one fenced transaction; a task starts only once its round is on
record (rounds written by an earlier step start at once, a new round after its write) —
then publishes the status. Results come back in batches (one message for all
that finished since the last step), so a checkpoint is one transaction per batch.

A pause counts from the moment ``pause()`` is called, not from when its message is
handled: a step that finds one on its way (``JobRecord.pausing``) pauses the ledger first,
and tasks whose round was being written when it came are put back, never started.
"""

from __future__ import annotations

from typing import Any

from otpy.actors._job_record import Gift
from otpy.actors._job_runner import JobRunner
from otpy.optimize import (
    Checkpoint,
    ExecutorSession,
    JobLedger,
    JobSpec,
    JobState,
    JobStatus,
    JobWork,
    SearchSpace,
    Trial,
    make_strategy,
)
from otpy.pipelines import compile_pipeline
from otpy.telemetry import emit_safely

__all__ = ["OptimizationRunner"]

_DRAIN = "drain"


class OptimizationRunner(JobRunner):
    """One incarnation of a pipeline job's runner (see the module docstring). Calls:
    ``"pause"``, ``"resume"``, ``"cancel"`` (each returns the JobStatus after it)."""

    ledger: JobLedger
    session: ExecutorSession | None = None

    def open(
        self, spec: JobSpec, gift: Gift | None, checkpoint: Checkpoint | None, run_paused: bool
    ) -> None:
        record, env = self.record, self.env
        self.finished: list[Trial] = []  # trials to tell telemetry of, once checkpointed
        plan = gift.plan if gift is not None else None
        strategy = gift.strategy if gift is not None else None
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
        if run_paused:
            ledger.resume()
        work = JobWork(spec, plan, record.metric, env.providers, env.clock, env.table())
        ref = self.actor_ref
        executor = env.executor(spec.options.executor or env.default_executor)
        self.session = executor.open(work, lambda: ref.cast(_DRAIN))

    def status(self, elapsed: float, state: JobState | None = None) -> JobStatus:
        return self.ledger.status(elapsed, state=state, restarts=self.record.restarts)

    def close_work(self) -> None:
        if self.session is not None:
            self.session.close()

    def drop_in_flight(self) -> None:
        self.ledger.in_flight = 0

    def written(self) -> None:
        for trial in self.finished:  # checkpointed: now they may be told
            emit_safely(
                "job.evaluation",
                {"score": trial.score or 0.0, "tokens": trial.tokens},
                {"job_id": self.spec.job_id, "index": trial.index, "status": trial.status},
            )
        self.finished.clear()

    def receive(self, message: Any) -> bool:
        if message != _DRAIN:
            return False
        self.step()
        return True

    def seconds_left(self) -> float | None:
        return self.ledger.seconds_left(self.elapsed())

    # -- steering ---------------------------------------------------------------------------

    def pause(self) -> None:
        if self.ledger.pause():
            self.bank()
            self.step(force_write=True)

    def resume(self) -> None:
        if self.ledger.resume():
            self.run_clock()
            self.step(force_write=True)

    def expire(self) -> None:
        self.close_work()
        self.ledger.expire()
        self.finish("completed")

    def _pause_called(self) -> bool:
        """Pause now if a pause call is on its way (``record.pausing``): it counts from when
        it was made, so a candidate not started by then never starts."""
        if self.record.pausing and self.ledger.pause():
            self.bank()
            return True
        return False

    # -- the loop ---------------------------------------------------------------------------

    def step(self, *, force_write: bool = False) -> None:
        ledger, session = self.ledger, self.session
        assert session is not None
        if self._pause_called():
            force_write = True
        for task, result, cost in session.take():
            trial = ledger.record(task, result, cost)
            if trial is not None:
                self.finished.append(trial)
        if ledger.state in ("completed", "cancelled", "failed"):
            self.finish(ledger.state)  # restored finished
        tasks = ledger.next_tasks()
        if ledger.state == "running" and ledger.idle:
            self.finish("completed")
        if ledger.state == "paused" and ledger.in_flight == 0:
            self.hibernate()
        if tasks and not ledger.new_rounds:
            session.submit(tasks)  # their candidates are stored: start them at once
            tasks = []
        if ledger.pending or force_write:
            self.write()  # finished trials (and new rounds: before their candidates start)
        if tasks and self._pause_called():  # while their round was written: none starts
            ledger.put_back(tasks)
            self.step(force_write=True)
            return
        self.publish()
        if tasks:
            session.submit(tasks)
