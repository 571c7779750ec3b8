"""``DSPyLedger``: the bookkeeping of one DSPy job, as a plain object (no DSPy, no thread).

A DSPy job's candidates are the evaluations its optimizer runs (each ``dspy.Evaluate``
call, reported by a callback as an :class:`Evaluation`); each becomes a
:class:`~otpy.optimize.Trial` (index in the order they finished, its mean score, one
result per example, the evaluated program's instructions and demo counts as its
configuration). The best is the best score among the evaluations on the most examples
(full evaluations beat minibatches: :func:`beats`), ties going to the earlier one.

A resumed job re-runs its compile from the start, so it reports again the evaluations it
had checkpointed: those (same index) are not written again. The job's results are named
texts: ``best`` (DSPy's saved state of the best program so far) and ``program`` (the
compiled program, or the best so far when a budget stopped the compile). The runner
actor owns the ledger and feeds it; the status it gives carries the LLM-call counts the
runner reads from its call gate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from otpy.optimize._job import JobSpec, JobState, JobStatus
from otpy.optimize._ledger_state import LedgerState
from otpy.optimize._store import Checkpoint, CheckpointBatch
from otpy.optimize._trials import ExampleResult, Trial

__all__ = [
    "BEST_RESULT",
    "PROGRAM_RESULT",
    "DSPyLedger",
    "Evaluation",
    "LMCalls",
    "beats",
    "ranked_evaluations",
    "score_of",
]

logger = logging.getLogger("otpy.jobs")

BEST_RESULT = "best"
"""The result holding DSPy's saved state of the best program evaluated so far."""
PROGRAM_RESULT = "program"
"""The result holding the job's program: compiled, or the best so far if a budget stopped it."""


@dataclass(frozen=True)
class Evaluation:
    """One evaluation a DSPy job ran: its ``index`` (in the order evaluations finished),
    the per-example ``scores``, the evaluated program's ``configuration`` and, when it was
    the best so far when it finished, the program's saved ``state`` (DSPy's JSON)."""

    index: int
    scores: tuple[float, ...]
    configuration: Mapping[str, Any] = field(default_factory=dict)
    state: str | None = None
    duration: float = 0.0

    @property
    def score(self) -> float:
        """The mean of the scores (0.0 for none)."""
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


@dataclass(frozen=True)
class LMCalls:
    """What a DSPy job's LLM calls are at: made live (over the job's life), replayed from
    its journal (this run), in flight, tokens and dollars (over the job's life)."""

    calls: int = 0
    replayed: int = 0
    in_flight: int = 0
    tokens: int = 0
    cost: float = 0.0


def beats(examples: int, score: float, index: int, best: tuple[int, float, int] | None) -> bool:
    """Whether an evaluation on ``examples`` examples scoring ``score`` (at ``index``)
    beats ``best`` (examples, score, index): more examples, else a higher score, else the
    same score at a lower index."""
    if best is None:
        return True
    if examples != best[0]:
        return examples > best[0]
    return score > best[1] or (score == best[1] and index < best[2])


def score_of(value: Any) -> float:
    """A metric's value as a finite float (a bool, a number, or an object with ``score``
    as GEPA's feedback metrics return; anything else or not finite: 0.0)."""
    for candidate in (value, getattr(value, "score", None)):
        try:
            number = float(candidate)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        return number if math.isfinite(number) else 0.0
    return 0.0


class DSPyLedger(LedgerState):
    """One DSPy job's evaluations, results, state and status (see the module docstring)."""

    def __init__(self, spec: JobSpec) -> None:
        assert spec.dspy is not None
        self.spec = spec
        self.name = str(spec.program.get("name", ""))
        self.trials: dict[int, Trial] = {}
        self.results: dict[str, str] = {}
        self.state: JobState = "running"
        self.stop_reason: str | None = None
        self.error: str | None = None
        self.best: Trial | None = None
        self._trials_out: list[Trial] = []
        self._results_out: dict[str, str] = {}

    def restore(self, checkpoint: Checkpoint) -> DSPyLedger:
        """Take up a checkpoint: its evaluations, results and state."""
        for index in sorted(checkpoint.trials):
            self._count(checkpoint.trials[index])
        self.results.update(checkpoint.results)
        self.restore_state(checkpoint)
        return self

    @property
    def best_key(self) -> tuple[int, float, int] | None:
        """The best evaluation as :func:`beats` compares it."""
        best = self.best
        if best is None or best.score is None:
            return None
        return len(best.examples), best.score, best.index

    def record(self, evaluation: Evaluation) -> Trial | None:
        """Count ``evaluation``: its trial, to be written (None if the job had it already:
        a resumed run reporting it again). Its ``state`` becomes the ``best`` result."""
        known = self.trials.get(evaluation.index)
        if known is not None:
            if known.score is not None and not math.isclose(known.score, evaluation.score):
                logger.warning(
                    "job %s: evaluation #%d scored %.4g in this run, %.4g before: the "
                    "re-run is not an exact replay (the checkpointed one is kept)",
                    self.spec.job_id, evaluation.index, evaluation.score, known.score,
                )  # fmt: skip
            return None
        trial = Trial(
            index=evaluation.index,
            round=0,
            configuration=dict(evaluation.configuration),
            status="completed",
            score=evaluation.score,
            examples=tuple(
                ExampleResult(example=i, score=s) for i, s in enumerate(evaluation.scores)
            ),
            duration=evaluation.duration,
        )
        self._count(trial)
        self._trials_out.append(trial)
        if evaluation.state is not None:
            self.keep(BEST_RESULT, evaluation.state)
        return trial

    def _count(self, trial: Trial) -> None:
        self.trials[trial.index] = trial
        score = trial.score if trial.score is not None else 0.0
        if beats(len(trial.examples), score, trial.index, self.best_key):
            self.best = trial

    def keep(self, name: str, text: str) -> None:
        """Keep result ``name`` (written with the next batch)."""
        self.results[name] = text
        self._results_out[name] = text

    def end(self, state: JobState, *, reason: str | None = None, error: str | None = None) -> None:
        """The job ended in ``state`` (``reason``: why it stopped; ``error``: a failure)."""
        self.state = state
        self.stop_reason = reason or self.stop_reason
        self.error = error or self.error

    @property
    def pending(self) -> bool:
        return bool(self._trials_out or self._results_out)

    def batch(
        self, elapsed: float, *, state: JobState | None = None, release: bool = False
    ) -> CheckpointBatch:
        """What to checkpoint (what is new since the last batch)."""
        batch = CheckpointBatch(
            state=state or self.state,
            elapsed=elapsed,
            trials=self._trials_out,
            results=self._results_out,
            error=self.error,
            release=release,
        )
        self._trials_out, self._results_out = [], {}
        return batch

    def status(
        self,
        elapsed: float,
        calls: LMCalls,
        *,
        phase: str | None = None,
        state: JobState | None = None,
        restarts: int = 0,
    ) -> JobStatus:
        best = self.best
        dspy = self.spec.dspy
        return JobStatus(
            job_id=self.spec.job_id,
            name=self.name,
            state=state or self.state,
            strategy=dspy.optimizer if dspy is not None else "",
            kind="dspy",
            evaluations_done=len(self.trials),
            in_flight=calls.in_flight,
            best_score=best.score if best is not None else None,
            best_configuration=dict(best.configuration) if best is not None else None,
            best_index=best.index if best is not None else None,
            tokens=calls.tokens,
            cost=calls.cost,
            elapsed=elapsed,
            error=self.error,
            stop_reason=self.stop_reason,
            restarts=restarts,
            lm_calls=calls.calls,
            replayed_calls=calls.replayed,
            phase=phase,
        )


def ranked_evaluations(trials: Sequence[Trial]) -> list[Trial]:
    """``trials`` best first by :func:`beats` (the most examples, then the score)."""
    return sorted(trials, key=lambda t: (-len(t.examples), -(t.score or 0.0), t.index))
