"""The ``DSPyRunner``: one incarnation of a DSPy job's runner.

Its work is one :class:`~otpy.dspy.CompileRun` (a thread running the optimizer's compile
from its start, through the job's call gate and journal); its bookkeeping a
:class:`~otpy.optimize.DSPyLedger`. The lease, the fenced writes, the exits and the
restarts are :class:`~otpy.actors._job_runner.JobRunner`'s, as for a pipeline job.

- ``pause``: the gate holds every call not started; once no call is in flight (the gate
  says so) the runner writes the job ``paused`` and hibernates: the run is cancelled
  (it held only calls waiting at the gate) and ``resume`` starts a new one, which
  replays the journal at memory speed up to where this one stopped.
- ``cancel``: the gate is cancelled and the job ends ``cancelled`` at once; the run's
  calls in flight finish (journaled) and it dies at its next call, whatever the
  optimizer does with errors.
- budgets: the gate's, checked before each call; a spent one ends the job ``completed``
  with ``stop_reason`` naming it and, as its program, the best evaluated so far.
- every finished evaluation is checkpointed (a trial, and the program's state when it is
  the best so far); the compiled program is saved in DSPy's format when the job ends.
- status between publications is brought up to date from the gate (``JobCell.live``).
"""

from __future__ import annotations

import logging
from typing import Any

from otpy.actors._job_record import Gift
from otpy.actors._job_runner import JobRunner
from otpy.calls import CallBudget, CallGate
from otpy.dspy import CompileOutcome, CompileProgress, CompileRun, DSPyParts, program_json
from otpy.errors import JobError
from otpy.optimize import (
    BEST_RESULT,
    ENDED,
    PROGRAM_RESULT,
    Checkpoint,
    DSPyLedger,
    JobSpec,
    JobState,
    JobStatus,
    LMCalls,
)
from otpy.supervision import ServerRef

__all__ = ["DSPyRunner"]

logger = logging.getLogger("otpy.jobs")


def _tell(ref: ServerRef[Any], message: Any) -> None:
    """Cast ``message`` to the runner; nothing if it has exited (a run outlives it)."""
    try:
        ref.cast(message)
    except Exception:
        logger.debug("a DSPy job's runner is gone: %r dropped", message)


class DSPyRunner(JobRunner):
    """One incarnation of a DSPy job's runner (see the module docstring). Calls:
    ``"pause"``, ``"resume"``, ``"cancel"`` (each returns the JobStatus after it)."""

    ledger: DSPyLedger
    run: CompileRun | None = None

    def open(
        self, spec: JobSpec, gift: Gift | None, checkpoint: Checkpoint | None, run_paused: bool
    ) -> None:
        record, env = self.record, self.env
        parts = record.work
        if not isinstance(parts, DSPyParts) or spec.dspy is None:
            raise JobError(f"job {spec.job_id!r}: a DSPy job's runner has no program to run")
        ledger = self.ledger = DSPyLedger(spec)
        if checkpoint is not None:
            ledger.restore(checkpoint)
        if run_paused:
            ledger.resume()
        job, ref = spec.dspy, self.actor_ref
        budget = CallBudget(job.max_calls, job.max_tokens, job.max_cost, job.max_seconds)
        gate = CallGate(
            budget,
            prices=spec.options.prices,
            clock=env.clock,
            elapsed=self.banked,
            on_quiet=lambda: _tell(ref, "quiet"),
        )
        progress = CompileProgress(
            lambda evaluation: _tell(ref, ("evaluated", evaluation)),
            env.clock,
            best=ledger.best_key,
        )
        run = self.run = CompileRun(
            spec,
            parts,
            gate,
            progress,
            env.journals(),
            lambda outcome: _tell(ref, ("compiled", outcome)),
            previous=record.run,
            patience=env.timeout,
        )
        record.run = run
        record.cell.live = self._live
        if ledger.state == "running":
            run.start()

    # -- the hooks --------------------------------------------------------------------------

    def status(self, elapsed: float, state: JobState | None = None) -> JobStatus:
        run, ledger = self.run, self.ledger
        calls = run.calls() if run is not None else LMCalls()
        shown = state or ledger.state
        if shown in ENDED:
            calls = LMCalls(calls.calls, calls.replayed, 0, calls.tokens, calls.cost)
        phase = run.phase if run is not None and shown == "running" else None
        return ledger.status(
            elapsed, calls, phase=phase, state=state, restarts=self.record.restarts
        )

    def _live(self, status: JobStatus) -> JobStatus:
        """``status`` with the LLM calls, phase and running time as they are now."""
        run = self.run
        if run is None or self.halted or status.ended or run.gate.state == "cancelled":
            return status
        calls = run.calls()
        return status.model_copy(
            update={
                "lm_calls": calls.calls,
                "replayed_calls": calls.replayed,
                "in_flight": calls.in_flight,
                "tokens": calls.tokens,
                "cost": calls.cost,
                "elapsed": run.gate.elapsed(),
                "phase": run.phase if status.state == "running" else None,
            }
        )

    def elapsed(self) -> float:
        run = self.run
        return run.gate.elapsed() if run is not None else self.banked

    def close_work(self) -> None:
        if self.run is not None:
            self.run.stop()

    # -- messages ---------------------------------------------------------------------------

    def receive(self, message: Any) -> bool:
        if message == "quiet":
            self.step()
        elif isinstance(message, tuple) and message[0] == "evaluated":
            self.ledger.record(message[1])
            self.step()
        elif isinstance(message, tuple) and message[0] == "compiled":
            self._compiled(message[1])
        else:
            return False
        return True

    def step(self, *, force_write: bool = False) -> None:
        ledger, run = self.ledger, self.run
        if ledger.state in ("completed", "cancelled", "failed"):
            self.finish(ledger.state)  # restored finished
        if ledger.state == "paused" and (run is None or run.gate.in_flight == 0):
            self.hibernate()
        if ledger.pending or force_write:
            self.write()
        self.publish()

    def pause(self) -> None:
        if self.ledger.pause():
            if self.run is not None:
                self.run.gate.pause()
            self.step(force_write=True)

    def resume(self) -> None:
        if self.ledger.resume():
            run = self.run
            if run is not None:
                run.gate.resume()
                if not run.started:
                    run.start()
            self.step(force_write=True)

    def _compiled(self, outcome: CompileOutcome) -> None:
        """The run ended: the job ends with it (unless this runner stopped it itself)."""
        run, ledger = self.run, self.ledger
        assert run is not None
        why = run.gate.exhausted_by
        if run.gate.state == "cancelled" or ledger.state not in ("running", "paused"):
            return  # cancelled, hibernated or interrupted here: already settled
        if outcome.program is not None:  # compiled (a spent budget it got past counts)
            ledger.keep(PROGRAM_RESULT, program_json(outcome.program))
            self.record.work.compiled = outcome.program
            self.finish("completed", reason=why.budget if why is not None else None)
        if why is not None:  # a budget stopped it: its program is the best evaluated
            best = ledger.results.get(BEST_RESULT)
            if best is not None:
                ledger.keep(PROGRAM_RESULT, best)
            self.finish("completed", reason=why.budget)
        error = outcome.error or outcome.stopped
        ledger.end("failed", error=f"{type(error).__name__}: {error}")
        self.finish("failed", reason="error")
