"""The ``OptimizationRunner``: one GenServer per optimization job, under the JobSupervisor.

Its mailbox only ever holds short messages: evaluations run on a thread pool of
``concurrency`` workers, and each finished example comes back as a message. The runner
asks the strategy for candidates a round at a time, scores each candidate on the
trainset (or its minibatch), checkpoints every finished candidate to the job's state
store, keeps the best, and stops at a budget. Its :class:`JobStatus` is published into
a cell the :class:`JobHandle` reads without a message, so ``status()`` answers at once
whatever the runner is doing.

On start it reads the job's checkpoint (if any) and goes on from there: candidates
already scored are never evaluated again; a job not finished is recorded as owned by this
runtime again (the store's ``owner``), so that a restart after a crash keeps the owner
current. It is a ``transient`` child: restarted after a crash, not after it finished.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from otpy.actors._job_state import Candidate, JobCell
from otpy.clock import Clock
from otpy.optimize import ExampleResult, SearchSpace, Strategy, Trial, make_strategy
from otpy.optimize._checkpoint import Checkpoint, JobStore
from otpy.optimize._evaluate import evaluate_example, examples_for
from otpy.optimize._job import JobSpec, JobState, JobStatus, Metric, planned_evaluations
from otpy.optimize._trials import is_better
from otpy.pipelines import Plan, ProviderDirectory, RunProgress, compile_pipeline
from otpy.steps import StepTable
from otpy.supervision import GenServer
from otpy.telemetry import TraceContext, emit_safely, use_context

__all__ = ["OptimizationRunner"]

logger = logging.getLogger("otpy.jobs")


class OptimizationRunner(GenServer):
    """Runs one job (see the module docstring). Calls: ``"pause"``, ``"resume"``,
    ``"cancel"`` (each returns the JobStatus after it)."""

    def __init__(
        self,
        spec: JobSpec,
        metric: Metric,
        cell: JobCell,
        store: JobStore,
        table: Callable[[], StepTable],
        providers: ProviderDirectory | None,
        clock: Clock,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.metric = metric
        self.cell = cell
        self.store = store
        self.table = table
        self.providers = providers
        self.clock = clock
        self.trace = TraceContext(spec.job_id, None)
        self.candidates: dict[int, Candidate] = {}
        self.trials: dict[int, Trial] = {}
        self.queue: deque[tuple[int, int]] = deque()
        self.runs: dict[int, RunProgress] = {}
        self.in_flight = 0
        self.next_round = 0
        self.proposed = 0
        self.exhausted = False
        self.stop_reason: str | None = None
        self.state: JobState = "running"
        self.error: str | None = None
        self.tokens = 0
        self.cost = 0.0
        self.errors = 0
        self.best: Trial | None = None
        self.stale_rounds = 0
        self.round_size: dict[int, int] = {}
        self.round_done: dict[int, int] = {}
        self.unfinished = 0  # candidates proposed and not finished
        self.aborted = 0
        self.final = False
        self.loaded = False  # on_start read the checkpoint: on_stop may write the state

    # -- start: the checkpoint ----------------------------------------------------------------

    def on_start(self) -> None:
        spec, store = self.spec, self.store
        created = not store.holds(spec.job_id)
        if created:
            store.create(spec)  # running, owned by this runtime
        checkpoint = store.load(spec.job_id)
        if not created and checkpoint.state not in ("completed", "cancelled", "failed"):
            state: JobState = "paused" if checkpoint.state == "paused" else "running"
            store.save_state(spec.job_id, state, checkpoint.elapsed)  # this runtime owns it
        self.loaded = True
        self.elapsed_before = checkpoint.elapsed
        self.started = self.clock.monotonic()
        self.pool = ThreadPoolExecutor(
            max_workers=spec.concurrency, thread_name_prefix=f"otpy-job-{spec.job_id}"
        )
        self.space = SearchSpace.from_dict(spec.space)
        self.plan: Plan | None = None
        self.strategy: Strategy | None = None
        try:
            self.plan = compile_pipeline(dict(spec.program), self.table(), base_dir=spec.base_dir)
            self.strategy = make_strategy(
                spec.strategy, self.space, seed=spec.seed, **spec.strategy_options
            )
        except Exception as exc:
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
        self._restore(checkpoint)
        self._publish()
        self.actor_ref.cast("pump")

    def _restore(self, checkpoint: Checkpoint) -> None:
        if checkpoint.state in ("completed", "cancelled", "failed"):
            self.state, self.error = checkpoint.state, checkpoint.error
        elif checkpoint.state == "paused" and self.state != "failed":
            self.state = "paused"
        for round_number in sorted(checkpoint.rounds):
            self._add_round(round_number, checkpoint.rounds[round_number], queue=False)
        for index in sorted(checkpoint.trials):
            self._record(checkpoint.trials[index], save=False)
        for index in sorted(self.candidates):
            candidate = self.candidates[index]
            if not candidate.finished:
                self.queue.extend((index, example) for example in candidate.examples)
        self.proposed = sum(len(r) for r in checkpoint.rounds.values())
        self.next_round = max(checkpoint.rounds, default=-1) + 1
        self._check_budgets()

    def _add_round(
        self, round_number: int, candidates: list[dict[str, Any]], *, queue: bool = True
    ) -> None:
        spec = self.spec
        for item in candidates:
            index = int(item["index"])
            examples = examples_for(len(spec.trainset), spec.minibatch, spec.seed, index)
            candidate = Candidate(index, round_number, dict(item["configuration"]), examples)
            candidate.finished = index in self.trials
            self.candidates[index] = candidate
            self.round_size[round_number] = self.round_size.get(round_number, 0) + 1
            if candidate.finished:
                self.round_done[round_number] = self.round_done.get(round_number, 0) + 1
            else:
                self.unfinished += 1
            if queue and not candidate.finished:
                self.queue.extend((index, example) for example in examples)

    # -- messages -----------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if message == "pump":
            self._pump()
            self._settle()
            return None
        if isinstance(message, tuple) and message[0] == "done":
            self._done(message[1], message[2], message[3])
            self._settle()
            return None
        if message in ("pause", "resume", "cancel"):
            return getattr(self, f"_{message}")()
        return super().on_receive(message)

    def _pause(self) -> JobStatus:
        if self.state == "running":
            self.state = "paused"
            self.store.save_state(self.spec.job_id, "paused", self._elapsed())
            self._publish()
        return self.cell.status

    def _resume(self) -> JobStatus:
        if self.state == "paused":
            self.state = "running"
            self.store.save_state(self.spec.job_id, "running", self._elapsed())
            self._pump()
            self._settle()
        return self.cell.status

    def _cancel(self) -> JobStatus:
        if self.state in ("running", "paused"):
            for progress in self.runs.values():
                progress.cancel.set()
            self._finish("cancelled")
        return self.cell.status

    # -- the loop -----------------------------------------------------------------------------

    def _pump(self) -> None:
        if self.final:
            return
        if self.state in ("completed", "cancelled", "failed"):
            self._finish(self.state)  # restored finished, or could not start
            return
        if self.state != "running":
            return
        while self.in_flight < self.spec.concurrency and self.stop_reason is None:
            task = self._next_task()
            if task is None and not self._propose():
                break
            if task is not None:
                self._submit(*task)
        if self.in_flight == 0 and (self.stop_reason is not None or not self.queue):
            self._finish("completed")

    def _settle(self) -> None:
        """Publish the status once a message has been handled (``_finish`` publishes the
        final one itself), so status() shows the evaluations now in flight."""
        if not self.final:
            self._publish()

    def _next_task(self) -> tuple[int, int] | None:
        while self.queue:
            index, example = self.queue.popleft()
            if not self.candidates[index].finished:
                return index, example
        return None

    def _propose(self) -> bool:
        spec, strategy = self.spec, self.strategy
        if self.exhausted or strategy is None or self.stop_reason is not None:
            return False
        if strategy.adaptive and self.unfinished:
            return False  # the next round waits for this one (see Strategy.adaptive)
        n = spec.batch_size
        if spec.max_evaluations is not None:
            n = min(n, spec.max_evaluations - self.proposed)
        if n <= 0:
            return False
        history = [self.trials[i] for i in sorted(self.trials)]
        try:
            configurations = strategy.propose(
                history, n, start=self.proposed, round=self.next_round
            )
        except Exception as exc:
            self.error = f"strategy {spec.strategy!r} failed: {type(exc).__name__}: {exc}"
            self.stop_reason = "failed"
            logger.exception("job %s: the strategy failed", spec.job_id)
            return False
        if not configurations:
            self.exhausted = True
            return False
        candidates = [
            {"index": self.proposed + i, "configuration": configuration}
            for i, configuration in enumerate(configurations)
        ]
        self.store.save_round(spec.job_id, self.next_round, candidates)
        self._add_round(self.next_round, candidates)
        self.proposed += len(candidates)
        self.next_round += 1
        return True

    def _submit(self, index: int, example: int) -> None:
        candidate = self.candidates[index]
        progress = RunProgress()
        self.runs[id(progress)] = progress
        self.in_flight += 1
        plan = self.plan
        assert plan is not None
        ref = self.actor_ref

        def work() -> tuple[ExampleResult, float]:
            with use_context(self.trace):
                return evaluate_example(
                    plan,
                    example,
                    self.spec.trainset[example],
                    candidate.configuration,
                    self.metric,
                    providers=self.providers,
                    clock=self.clock,
                    progress=progress,
                    prices=self.spec.prices,
                )

        def done(future: Future[tuple[ExampleResult, float]]) -> None:
            try:
                outcome: Any = future.result()
            except BaseException as exc:  # cancelled, or a bug in evaluate_example
                outcome = (ExampleResult(example=example, score=None, error=repr(exc)), 0.0)
            with contextlib.suppress(Exception):  # a runner that is gone drops the result
                ref.cast(("done", index, progress, outcome))

        self.pool.submit(work).add_done_callback(done)

    def _done(
        self, index: int, progress: RunProgress, outcome: tuple[ExampleResult, float]
    ) -> None:
        self.runs.pop(id(progress), None)
        self.in_flight -= 1
        result, cost = outcome
        candidate = self.candidates[index]
        self.tokens += result.tokens
        self.cost += cost
        if not candidate.finished and not self.final:
            candidate.results[result.example] = result
            candidate.tokens += result.tokens
            candidate.cost += cost
            if result.score is None:
                candidate.errors += 1
                self.errors += 1
            max_errors = self.spec.max_errors
            if max_errors is not None and candidate.errors > max_errors:
                self._complete(candidate, "aborted")
            elif len(candidate.results) == len(candidate.examples):
                self._complete(candidate, "completed")
        self._check_budgets()
        self._pump()

    def _complete(self, candidate: Candidate, status: str) -> None:
        self._mark_finished(candidate)
        results = [candidate.results[i] for i in sorted(candidate.results)]
        scores = [r.score if r.score is not None else 0.0 for r in results]
        trial = Trial(
            index=candidate.index,
            round=candidate.round,
            configuration=candidate.configuration,
            status="aborted" if status == "aborted" else "completed",
            score=None if status == "aborted" else sum(scores) / max(1, len(scores)),
            examples=tuple(results),
            errors=candidate.errors,
            tokens=candidate.tokens,
            cost=candidate.cost,
            duration=sum(r.duration for r in results),
        )
        self._record(trial, save=True)

    def _record(self, trial: Trial, *, save: bool) -> None:
        if save:
            self.store.save_trial(self.spec.job_id, trial)  # the checkpoint: one transaction
            emit_safely(
                "job.evaluation",
                {"score": trial.score or 0.0, "tokens": trial.tokens},
                {"job_id": self.spec.job_id, "index": trial.index, "status": trial.status},
            )
        self.trials[trial.index] = trial
        candidate = self.candidates.get(trial.index)
        if candidate is not None:
            self._mark_finished(candidate)
        if trial.status == "aborted":
            self.aborted += 1
        if not save:  # restored from the checkpoint
            self.tokens += trial.tokens
            self.cost += trial.cost
            self.errors += trial.errors
        if is_better(trial, self.best):
            self.best = trial
        if self.strategy is not None and save:
            try:
                self.strategy.observe(trial)
            except Exception:
                logger.exception("job %s: strategy.observe failed", self.spec.job_id)
        self._count_rounds(trial.round)

    def _mark_finished(self, candidate: Candidate) -> None:
        if candidate.finished:
            return
        candidate.finished = True
        self.unfinished -= 1
        self.round_done[candidate.round] = self.round_done.get(candidate.round, 0) + 1

    def _count_rounds(self, round_number: int) -> None:
        """When round ``round_number`` has finished: a round that did not give the best
        trial so far is one more round without improvement (``patience``). O(1): the
        runner keeps each round's size and finished count."""
        size = self.round_size.get(round_number, 0)
        if size == 0 or self.round_done.get(round_number, 0) != size:
            return
        if self.best is not None and self.best.round == round_number:
            self.stale_rounds = 0
        else:
            self.stale_rounds += 1

    def _check_budgets(self) -> None:
        spec = self.spec
        if self.stop_reason is not None:
            return
        best = self.best.score if self.best is not None else None
        if spec.max_tokens is not None and self.tokens >= spec.max_tokens:
            self.stop_reason = "max_tokens"
        elif spec.max_seconds is not None and self._elapsed() >= spec.max_seconds:
            self.stop_reason = "max_seconds"
        elif spec.target_score is not None and best is not None and best >= spec.target_score:
            self.stop_reason = "target_score"
        elif spec.patience is not None and self.stale_rounds >= spec.patience:
            self.stop_reason = "patience"
        if self.stop_reason is not None:
            self.queue.clear()

    def _finish(self, state: JobState) -> None:
        if self.final:
            return
        if self.stop_reason == "failed":
            state = "failed"
        self.final = True
        self.state = state
        self.queue.clear()
        self.store.save_state(self.spec.job_id, state, self._elapsed(), self.error)
        self._publish()
        self.pool.shutdown(wait=False, cancel_futures=True)
        emit_safely(
            "job.finished",
            {"evaluations": len(self.trials), "tokens": self.tokens},
            {"job_id": self.spec.job_id, "state": state, "reason": self.stop_reason or ""},
        )
        self.stop_after("normal")

    # -- status -------------------------------------------------------------------------------

    def _elapsed(self) -> float:
        return self.elapsed_before + max(0.0, self.clock.monotonic() - self.started)

    def _publish(self) -> None:
        spec, best = self.spec, self.best
        done = len(self.trials)
        total = planned_evaluations(spec, self.space.size)
        elapsed = self._elapsed()
        eta = None
        if total is not None and done and self.state == "running":
            eta = elapsed / done * max(0, total - done)
        status = JobStatus(
            job_id=spec.job_id,
            name=str(spec.program.get("name", "")),
            state=self.state,
            strategy=spec.strategy,
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
            error=self.error,
        )
        self.cell.publish(status, best)

    # -- exits --------------------------------------------------------------------------------

    def _close(self) -> None:
        for progress in self.runs.values():
            progress.cancel.set()
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def on_stop(self) -> None:
        if not self.final and self.loaded:
            self.state = "interrupted"  # the runtime stopped: resumable from the checkpoint
            self.store.save_state(self.spec.job_id, "interrupted", self._elapsed(), None)
            self._publish()
        self._close()

    def on_failure(self, *exc_info: Any) -> None:
        self._close()
