"""A job read from the store, as a handle shows it: :func:`stored_cell`."""

from __future__ import annotations

from collections.abc import Callable

from otpy.actors._job_record import JobCell
from otpy.calls import CallJournal, JournalStore
from otpy.optimize import (
    Checkpoint,
    DSPyLedger,
    JobState,
    JobStatus,
    JobStore,
    LMCalls,
    SearchSpace,
    Trial,
    is_better,
    planned_evaluations,
)

__all__ = ["stored_cell"]


def stored_cell(
    store: JobStore, job_id: str, journals: Callable[[], JournalStore] | None = None
) -> JobCell:
    """A cell with the status a stored checkpoint tells (the best trial included), that
    never changes (``done`` is set). A job that has not finished reads as ``interrupted``
    when its lease has expired or was released, or its process on this host has exited;
    with a live lease it keeps its state (``running`` if just claimed), ``owner`` naming
    the holder. A DSPy job's LLM calls, tokens and cost are what its call journal (in
    ``journals()``) holds."""
    checkpoint = store.load(job_id)
    spec, holder, state = checkpoint.spec, checkpoint.holder, checkpoint.state
    owner = None
    if state not in ("completed", "cancelled", "failed"):
        alive = holder.owner is not None and holder.owner.alive() is not False
        if holder.live(store.clock.time()) and alive:
            owner = holder.describe()
            state = "running" if state == "interrupted" else state  # claimed, not yet written
        else:
            state = "interrupted"
    if checkpoint.spec.kind == "dspy":
        status, dspy_best = _dspy_status(checkpoint, state, journals)
        cell = JobCell(status.model_copy(update={"owner": owner}))
        cell.publish(cell.status, dspy_best)
        cell.done.set()
        return cell
    best: Trial | None = None
    for trial in checkpoint.trials.values():
        if is_better(trial, best):
            best = trial
    trials = checkpoint.trials.values()
    status = JobStatus(
        job_id=job_id,
        name=str(spec.program.get("name", "")),
        state=state,
        strategy=spec.options.strategy,
        evaluations_done=len(checkpoint.trials),
        evaluations_total=planned_evaluations(spec.options, SearchSpace.from_dict(spec.space).size),
        best_score=best.score if best is not None else None,
        best_configuration=dict(best.configuration) if best is not None else None,
        best_index=best.index if best is not None else None,
        errors=sum(t.errors for t in trials),
        aborted=sum(1 for t in trials if t.status == "aborted"),
        tokens=sum(t.tokens for t in trials),
        cost=sum(t.cost for t in trials),
        elapsed=checkpoint.elapsed,
        error=checkpoint.error,
        owner=owner,
    )
    cell = JobCell(status)
    cell.publish(status, best)
    cell.done.set()  # a snapshot that never changes: nothing to wait for
    return cell


def _dspy_status(
    checkpoint: Checkpoint, state: JobState, journals: Callable[[], JournalStore] | None
) -> tuple[JobStatus, Trial | None]:
    """A DSPy job's status and best evaluation, from one ledger restored from the store."""
    ledger = DSPyLedger(checkpoint.spec).restore(checkpoint)
    calls = LMCalls()
    if journals is not None:
        spent = CallJournal(journals(), checkpoint.spec.job_id).spent(
            checkpoint.spec.options.prices
        )
        calls = LMCalls(calls=spent.calls, tokens=spent.tokens, cost=spent.cost)
    status = ledger.status(checkpoint.elapsed, calls, state=state)
    return status.model_copy(update={"error": checkpoint.error}), ledger.best
