"""What a strategy sees of the past: the trials evaluated so far, one result per example.

Both models are frozen and round-trip through ``model_dump(mode="json")`` /
``model_validate`` (the runner's checkpoints). Scores are finite floats.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, overload

from pydantic import BaseModel, ConfigDict

__all__ = ["ExampleResult", "History", "Trial", "is_better", "ranked"]


class ExampleResult(BaseModel):
    """One example of the trainset run with a candidate."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    example: int
    """The example's index in the trainset."""
    score: float | None
    """The metric's score; ``None`` if the run failed."""
    error: str | None = None
    """``"TypeName: message"`` when the run failed."""
    inputs: dict[str, Any] = {}
    """The example's inputs (a bootstrapped demo's inputs)."""
    expected: Any = None
    output: Any = None
    """What the program produced (the pipeline's outputs)."""
    tokens: int = 0
    duration: float = 0.0


class Trial(BaseModel):
    """One evaluated candidate: its configuration, status and score."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    index: int
    """The candidate's index: 0, 1, 2, ... in proposal order."""
    round: int
    """The proposal round it came from."""
    configuration: dict[str, Any]
    status: Literal["completed", "aborted"]
    """``aborted``: ``max_errors`` was reached."""
    score: float | None
    """Mean over the examples, a failed one counting 0.0; ``None`` if aborted."""
    examples: tuple[ExampleResult, ...] = ()
    errors: int = 0
    tokens: int = 0
    cost: float = 0.0
    """What its examples cost (by the job's ``prices``)."""
    duration: float = 0.0


def is_better(trial: Trial, best: Trial | None) -> bool:
    """Whether ``trial`` beats ``best``: it has a score and ``best`` has none or a lower
    one, or the same score at a lower index (the earlier candidate wins ties, so the best
    of a job does not depend on the order its candidates finished in)."""
    if trial.score is None:
        return False
    if best is None or best.score is None:
        return True
    return trial.score > best.score or (trial.score == best.score and trial.index < best.index)


def ranked(trials: Iterable[Trial]) -> list[Trial]:
    """``trials`` best first, in :func:`is_better`'s order (aborted ones last)."""
    return sorted(trials, key=lambda t: (t.score is None, -(t.score or 0.0), t.index))


class History(Sequence[Trial]):
    """The finished trials by index, built the first time a strategy reads them (an
    adaptive strategy's with their examples; the others' without)."""

    def __init__(self, trials: dict[int, Trial]) -> None:
        self._trials = trials
        self._list: list[Trial] | None = None

    def _items(self) -> list[Trial]:
        if self._list is None:
            self._list = [self._trials[index] for index in sorted(self._trials)]
        return self._list

    def __len__(self) -> int:
        return len(self._trials)

    @overload
    def __getitem__(self, index: int) -> Trial: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Trial]: ...
    def __getitem__(self, index: int | slice) -> Trial | Sequence[Trial]:
        return self._items()[index]

    def __iter__(self) -> Iterator[Trial]:
        return iter(self._items())
