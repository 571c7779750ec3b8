"""``JobLedger``: the bookkeeping of one optimization job, as a plain object.

It holds the candidates proposed (a round at a time, by the strategy), the examples still
to run, the finished trials, the budgets and early stops, and the records to checkpoint;
it says what to run next and what the status is. It runs no thread and reads no clock:
the runner actor that owns it feeds it finished examples and the elapsed seconds, writes
what :meth:`JobLedger.batch` gives (a new round before any of its tasks starts), starts
what :meth:`JobLedger.next_tasks` gives, and publishes :meth:`JobLedger.status`.

Order of work: candidates in index order, each candidate's examples in order; a round of
``round_size`` candidates is proposed when the queue runs dry (an adaptive strategy's
next round waits for the rounds before it to finish). Every operation is O(1) amortised
per example (the history is only built when a strategy reads it).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from otpy.optimize._evaluate import examples_for
from otpy.optimize._executor import Task
from otpy.optimize._job import JobSpec, JobState, JobStatus, planned_evaluations
from otpy.optimize._ledger_state import LedgerState
from otpy.optimize._store import Checkpoint, CheckpointBatch
from otpy.optimize._strategy import Strategy
from otpy.optimize._trials import ExampleResult, History, Trial, is_better

__all__ = ["Candidate", "JobLedger"]

logger = logging.getLogger("otpy.jobs")


@dataclass(slots=True)
class Candidate:
    """A proposed configuration not finished yet, its examples and the results in so far."""

    index: int
    round: int
    configuration: dict[str, Any]
    examples: list[int]
    results: dict[int, ExampleResult] = field(default_factory=dict)
    errors: int = 0
    tokens: int = 0
    cost: float = 0.0
    started: int = 0
    """Its examples handed out so far (by this ledger: a restored one starts at 0)."""


class JobLedger(LedgerState):
    """One job's candidates, trials, budgets and status (see the module docstring).

    ``state`` is ``running``, ``paused`` or, once :meth:`end` is called, how the job
    ended; ``stop_reason`` says why it stops (None while it goes on)."""

    def __init__(self, spec: JobSpec, strategy: Strategy, *, space_size: int | None) -> None:
        self.spec = spec
        self.options = spec.options
        self.strategy = strategy
        self.total = planned_evaluations(spec.options, space_size)
        self.name = str(spec.program.get("name", ""))
        self.candidates: dict[int, Candidate] = {}
        self.trials: dict[int, Trial] = {}
        self.queue: deque[Task] = deque()
        self.in_flight = 0
        self.state: JobState = "running"
        self.stop_reason: str | None = None
        self.error: str | None = None
        self.best: Trial | None = None
        self.tokens = 0
        self.cost = 0.0
        self.errors = 0
        self.aborted = 0
        self._next_round = 0
        self._proposed = 0
        self._exhausted = False
        self._stale_rounds = 0
        self._round_size: dict[int, int] = {}
        self._round_done: dict[int, int] = {}
        self._rounds_out: list[tuple[int, list[dict[str, Any]]]] = []
        self._trials_out: list[Trial] = []

    # -- restore ----------------------------------------------------------------------------

    def restore(self, checkpoint: Checkpoint) -> None:
        """Take up a checkpoint: its rounds and trials (never evaluated again), its state
        (a finished one stays finished, a paused one paused)."""
        for number in sorted(checkpoint.rounds):
            self._add_round(number, checkpoint.rounds[number])
        for index in sorted(checkpoint.trials):
            self._count(checkpoint.trials[index], restored=True)
        for index in sorted(self.candidates):  # the unfinished ones
            candidate = self.candidates[index]
            self.queue.extend(
                Task(index, example, candidate.configuration) for example in candidate.examples
            )
        self._proposed = sum(len(items) for items in checkpoint.rounds.values())
        self._next_round = max(checkpoint.rounds, default=-1) + 1
        self.restore_state(checkpoint)
        self._check_budgets()

    def _add_round(self, number: int, items: list[dict[str, Any]]) -> None:
        options, count = self.options, len(self.spec.trainset)
        for item in items:
            index = int(item["index"])
            examples = examples_for(count, options.minibatch, options.seed, index)
            self.candidates[index] = Candidate(index, number, dict(item["configuration"]), examples)
        self._round_size[number] = self._round_size.get(number, 0) + len(items)

    # -- what to run ------------------------------------------------------------------------

    def next_tasks(self) -> list[Task]:
        """The examples to start now, up to the concurrency left, in order; proposes new
        rounds as needed (write :meth:`batch` before starting them: a round is recorded
        before any of its candidates runs). Paused, only the rest of the candidates
        already started (a checkpoint keeps whole candidates: a finished example of a
        candidate left half done would be paid for again after the resume)."""
        tasks: list[Task] = []
        if self.state not in ("running", "paused") or self.stop_reason is not None:
            return tasks
        free = self.options.concurrency - self.in_flight
        if self.state == "paused":
            return self._finish_started(free)
        while free > 0:
            if not self.queue and not self._propose():
                break
            while self.queue and free > 0:
                task = self.queue.popleft()
                candidate = self.candidates.get(task.candidate)
                if candidate is not None:  # not finished
                    candidate.started += 1
                    tasks.append(task)
                    free -= 1
        self.in_flight += len(tasks)
        return tasks

    def _finish_started(self, free: int) -> list[Task]:
        tasks: list[Task] = []
        kept: deque[Task] = deque()
        for task in self.queue:
            candidate = self.candidates.get(task.candidate)
            if candidate is None:
                continue  # finished
            if candidate.started and free > 0:
                candidate.started += 1
                tasks.append(task)
                free -= 1
            else:
                kept.append(task)
        self.queue = kept
        self.in_flight += len(tasks)
        return tasks

    def put_back(self, tasks: list[Task]) -> None:
        """``tasks``, the last :meth:`next_tasks` gave, were not started after all (the job
        was paused before they could be): back at the head of the queue, not in flight."""
        for task in tasks:
            candidate = self.candidates.get(task.candidate)
            if candidate is not None:
                candidate.started -= 1
        self.queue.extendleft(reversed(tasks))
        self.in_flight -= len(tasks)

    @property
    def idle(self) -> bool:
        """Nothing in flight and nothing queued: running, the job is over (call
        :meth:`next_tasks` first, so that it proposes what it can)."""
        return self.in_flight == 0 and not self.queue

    def _propose(self) -> bool:
        options, strategy = self.options, self.strategy
        if self._exhausted or self.stop_reason is not None:
            return False
        if strategy.adaptive and self.candidates:
            return False  # the next round waits for this one (see Strategy.adaptive)
        n = options.round_size
        if options.max_evaluations is not None:
            n = min(n, options.max_evaluations - self._proposed)
        if n <= 0:
            return False
        try:
            configurations = strategy.propose(
                History(self.trials), n, start=self._proposed, round=self._next_round
            )
        except Exception as exc:
            self.error = f"strategy {options.strategy!r} failed: {type(exc).__name__}: {exc}"
            self._stop("failed")
            logger.exception("job %s: the strategy failed", self.spec.job_id)
            return False
        if not configurations:
            self._exhausted = True
            return False
        items = [
            {"index": self._proposed + i, "configuration": configuration}
            for i, configuration in enumerate(configurations)
        ]
        self._rounds_out.append((self._next_round, items))
        self._add_round(self._next_round, items)
        for index in range(self._proposed, self._proposed + len(items)):
            candidate = self.candidates[index]
            self.queue.extend(
                Task(index, example, candidate.configuration) for example in candidate.examples
            )
        self._proposed += len(items)
        self._next_round += 1
        return True

    # -- what came back ---------------------------------------------------------------------

    def record(self, task: Task, result: ExampleResult, cost: float) -> Trial | None:
        """One example finished (counted even after a stop); the candidate's trial if it
        is now finished (completed, or aborted at ``max_errors``)."""
        self.in_flight -= 1
        self.tokens += result.tokens
        self.cost += cost
        candidate = self.candidates.get(task.candidate)  # None: finished
        if candidate is None or self.state not in ("running", "paused"):
            return None
        candidate.results[result.example] = result
        candidate.tokens += result.tokens
        candidate.cost += cost
        if result.score is None:
            candidate.errors += 1
            self.errors += 1
        trial = None
        max_errors = self.options.max_errors
        if max_errors is not None and candidate.errors > max_errors:
            trial = self._complete(candidate, aborted=True)
        elif len(candidate.results) == len(candidate.examples):
            trial = self._complete(candidate, aborted=False)
        self._check_budgets()
        return trial

    def _complete(self, candidate: Candidate, *, aborted: bool) -> Trial:
        results = [candidate.results[i] for i in sorted(candidate.results)]
        score = None
        if not aborted:
            score = sum(r.score or 0.0 for r in results) / max(1, len(results))
        trial = Trial.model_construct(
            index=candidate.index,
            round=candidate.round,
            configuration=candidate.configuration,
            status="aborted" if aborted else "completed",
            score=score,
            examples=tuple(results),
            errors=candidate.errors,
            tokens=candidate.tokens,
            cost=candidate.cost,
            duration=sum(r.duration for r in results),
        )
        self._trials_out.append(trial)
        self._count(trial, restored=False)
        try:
            self.strategy.observe(trial)
        except Exception:
            logger.exception("job %s: strategy.observe failed", self.spec.job_id)
        return trial

    def _count(self, trial: Trial, *, restored: bool) -> None:
        # a strategy that does not read the history (not adaptive) is given the trials
        # without their examples: a long job keeps a few hundred bytes per candidate
        kept = trial if self.strategy.adaptive else trial.model_copy(update={"examples": ()})
        self.trials[trial.index] = kept
        candidate = self.candidates.pop(trial.index, None)  # the trial holds it all now
        if candidate is not None:
            self._round_done[candidate.round] = self._round_done.get(candidate.round, 0) + 1
        if trial.status == "aborted":
            self.aborted += 1
        if restored:
            self.tokens += trial.tokens
            self.cost += trial.cost
            self.errors += trial.errors
        if is_better(trial, self.best):
            self.best = trial
        size = self._round_size.get(trial.round, 0)
        if size and self._round_done.get(trial.round, 0) == size:  # the round is over
            best_round = self.best.round if self.best is not None else None
            self._stale_rounds = 0 if best_round == trial.round else self._stale_rounds + 1

    # -- budgets and stops ------------------------------------------------------------------

    def _check_budgets(self) -> None:
        options, best = self.options, self.best
        if options.max_tokens is not None and self.tokens >= options.max_tokens:
            self._stop("max_tokens")
        elif (
            options.target_score is not None
            and best is not None
            and best.score is not None
            and best.score >= options.target_score
        ):
            self._stop("target_score")
        elif options.patience is not None and self._stale_rounds >= options.patience:
            self._stop("patience")

    def _stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.queue.clear()

    def seconds_left(self, elapsed: float) -> float | None:
        """Running seconds left before ``max_seconds`` (None: no time budget)."""
        limit = self.options.max_seconds
        return None if limit is None else limit - elapsed

    def expire(self) -> None:
        """The time budget is spent: stop now. What is in flight is dropped (not
        counted); the job is over."""
        self._stop("max_seconds")
        self.in_flight = 0

    def end(self, state: JobState, *, reason: str | None = None, error: str | None = None) -> None:
        """The job ends in ``state`` (completed: the reason it stopped, or what stopped
        it); a strategy failure ends it ``failed``."""
        if state == "completed" and self.stop_reason == "failed":
            state = "failed"
        if reason is not None and self.stop_reason is None:
            self.stop_reason = reason
        if state == "completed" and self.stop_reason is None:
            self.stop_reason = "max_evaluations" if not self._exhausted else "exhausted"
        self.state = state
        self.error = error if error is not None else self.error
        self.queue.clear()

    # -- what to write and show -------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """Rounds or trials not yet handed out by :meth:`batch`."""
        return bool(self._rounds_out or self._trials_out)

    @property
    def new_rounds(self) -> bool:
        """Rounds proposed and not yet handed out: their tasks wait for the write."""
        return bool(self._rounds_out)

    def batch(
        self, elapsed: float, *, state: JobState | None = None, release: bool = False
    ) -> CheckpointBatch:
        """The records to checkpoint now (new rounds, finished trials) with the job's
        state (``state`` overrides it: ``interrupted``), in one batch; they are handed out
        once."""
        batch = CheckpointBatch(
            state=state or self.state,
            elapsed=elapsed,
            rounds=self._rounds_out,
            trials=self._trials_out,
            error=self.error,
            release=release,
        )
        self._rounds_out, self._trials_out = [], []
        return batch

    def status(
        self,
        elapsed: float,
        *,
        state: JobState | None = None,
        owner: str | None = None,
        restarts: int = 0,
        error: str | None = None,
        reason: str | None = None,
    ) -> JobStatus:
        """The job's status now (``state`` and the rest override the ledger's)."""
        state = state or self.state
        done, total, best = len(self.trials), self.total, self.best
        eta = None
        if total is not None and done and state == "running":
            eta = elapsed / done * max(0, total - done)
        return JobStatus.model_construct(
            job_id=self.spec.job_id,
            name=self.name,
            state=state,
            strategy=self.options.strategy,
            evaluations_done=done,
            evaluations_total=total,
            in_flight=self.in_flight,
            best_score=best.score if best is not None else None,
            best_configuration=dict(best.configuration) if best is not None else None,
            best_index=best.index if best is not None else None,
            errors=self.errors,
            aborted=self.aborted,
            tokens=self.tokens,
            cost=self.cost,
            elapsed=elapsed,
            eta=eta,
            error=error or self.error,
            owner=owner,
            stop_reason=reason or self.stop_reason,
            restarts=restarts,
        )
