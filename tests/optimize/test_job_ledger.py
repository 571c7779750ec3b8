"""``JobLedger`` on its own, no threads: what it runs next, what it checkpoints, when it
stops, and how it takes up a checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from otpy.optimize import (
    Checkpoint,
    ExampleResult,
    JobLedger,
    JobOptions,
    JobSpec,
    SearchSpace,
    Strategy,
    Task,
    Trial,
    make_strategy,
)

SPACE = {"a": [0, 1, 2, 3, 4, 5, 6, 7], "b": ["x", "y"]}  # 16 configurations
PROGRAM = {"name": "p", "steps": [{"name": "s", "type": "claude", "prompt": "{{ vars.a }}"}]}


def ledger(examples: int = 2, strategy: str | Strategy = "grid", **options: Any) -> JobLedger:
    opts = JobOptions(strategy=strategy if isinstance(strategy, str) else "custom", **options)
    spec = JobSpec(
        job_id="j",
        program=PROGRAM,
        space=SearchSpace.parse(SPACE).to_dict(),
        trainset=[{"inputs": {"q": str(i)}} for i in range(examples)],
        metric="exact_match",
        options=opts,
    )
    space = SearchSpace.from_dict(spec.space)
    made = strategy if isinstance(strategy, Strategy) else make_strategy(strategy, space)
    return JobLedger(spec, made, space_size=space.size)


def result(task: Task, score: float | None = 1.0, tokens: int = 10) -> ExampleResult:
    error = None if score is not None else "ValueError: no"
    return ExampleResult(example=task.example, score=score, error=error, tokens=tokens)


def finish(book: JobLedger, tasks: Sequence[Task], score: float | None = 1.0) -> list[Trial]:
    trials = [book.record(t, result(t, score), 0.5) for t in tasks]
    return [t for t in trials if t is not None]


def test_it_proposes_a_round_and_hands_out_examples_in_order_up_to_the_concurrency() -> None:
    book = ledger(examples=3, concurrency=4, batch_size=2)
    tasks = book.next_tasks()
    assert [(t.candidate, t.example) for t in tasks] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert tasks[0].configuration == {"a": 0, "b": "x"} and book.in_flight == 4
    assert book.next_tasks() == []  # nothing free
    batch = book.batch(1.5)
    assert batch.rounds == [(0, [{"index": 0, "configuration": {"a": 0, "b": "x"}},
                                 {"index": 1, "configuration": {"a": 0, "b": "y"}}])]  # fmt: skip
    assert (batch.trials, batch.state, batch.elapsed) == ([], "running", 1.5)
    assert not book.pending and book.batch(2.0).rounds == []  # handed out once
    assert finish(book, tasks[:3]) != [] and book.in_flight == 1
    more = book.next_tasks()  # candidate 1 is queued first, then round 1 is proposed
    assert [(t.candidate, t.example) for t in more] == [(1, 1), (1, 2), (2, 0)]
    assert [number for number, _ in book.batch(3.0).rounds] == [1]


def test_a_finished_candidate_is_one_trial_with_its_examples_sorted() -> None:
    book = ledger(examples=3, concurrency=3, batch_size=1)
    tasks = book.next_tasks()
    assert book.record(tasks[2], result(tasks[2], 0.0, tokens=5), 0.25) is None
    assert book.record(tasks[0], result(tasks[0], 1.0, tokens=7), 0.25) is None
    trial = book.record(tasks[1], result(tasks[1], None, tokens=1), 0.5)
    assert trial is not None
    assert [e.example for e in trial.examples] == [0, 1, 2]
    assert (trial.status, trial.score, trial.errors, trial.tokens, trial.cost) == (
        "completed", pytest.approx(1 / 3), 1, 13, 1.0,
    )  # fmt: skip
    assert book.batch(1.0).trials == [trial]
    status = book.status(4.0)
    assert (status.evaluations_done, status.best_index, status.errors, status.tokens) == (
        1, 0, 1, 13,
    )  # fmt: skip
    assert (status.in_flight, status.evaluations_total, status.eta) == (0, 16, 60.0)
    assert Trial.model_validate_json(trial.model_dump_json()) == trial  # checkpointable


def test_max_errors_aborts_a_candidate_and_its_late_examples_are_ignored() -> None:
    book = ledger(examples=4, concurrency=4, batch_size=1, max_errors=1)
    tasks = book.next_tasks()
    assert finish(book, tasks[:1], None) == []
    [trial] = finish(book, tasks[1:2], None)
    assert (trial.status, trial.score, trial.errors) == ("aborted", None, 2)
    assert finish(book, tasks[2:]) == []  # the candidate has finished
    assert (book.aborted, book.errors, book.in_flight) == (1, 2, 0)


def test_max_tokens_stops_proposing_and_the_job_ends_when_idle() -> None:
    book = ledger(examples=1, concurrency=1, max_tokens=30)
    for _ in range(2):
        finish(book, book.next_tasks())  # 10 tokens each
    assert book.stop_reason is None
    finish(book, book.next_tasks())  # 30
    assert book.stop_reason == "max_tokens"
    assert book.next_tasks() == [] and book.idle
    book.end("completed")
    assert (book.state, book.status(1.0).stop_reason) == ("completed", "max_tokens")


def test_a_target_score_stops_it_and_what_is_in_flight_still_counts() -> None:
    book = ledger(examples=1, concurrency=2, batch_size=2, target_score=1.0)
    first = book.next_tasks()
    finish(book, first[:1])  # score 1.0
    assert book.stop_reason == "target_score" and not book.queue
    assert book.next_tasks() == [] and not book.idle
    finish(book, first[1:], 0.5)
    assert book.idle and len(book.trials) == 2


def test_patience_counts_whole_rounds_without_improvement() -> None:
    book = ledger(examples=1, concurrency=1, batch_size=1, patience=2)
    scores = [0.5, 0.5, 0.2]
    for score in scores:
        assert book.stop_reason is None
        finish(book, book.next_tasks(), score)
    assert book.stop_reason == "patience" and len(book.trials) == 3
    assert book.best is not None and book.best.index == 0  # a tie goes to the earlier


def test_max_evaluations_and_an_exhausted_space_end_the_job_with_their_reason() -> None:
    book = ledger(examples=1, concurrency=8, max_evaluations=3)
    tasks = book.next_tasks()
    assert len(tasks) == 3 and book.status(0.0).evaluations_total == 3
    finish(book, tasks)
    assert book.next_tasks() == [] and book.idle
    book.end("completed")
    assert book.stop_reason == "max_evaluations"
    small = ledger(examples=1, concurrency=32)
    finish(small, small.next_tasks())
    assert small.next_tasks() == [] and small.idle
    small.end("completed")
    assert (small.stop_reason, len(small.trials)) == ("exhausted", 16)


class Adaptive(Strategy):
    """Proposes from what it has seen: records the history it was given."""

    name = "adaptive-test"
    adaptive: ClassVar[bool] = True
    seen: ClassVar[list[list[int]]] = []

    def propose(
        self, history: Sequence[Trial], n: int, *, start: int, round: int
    ) -> list[dict[str, Any]]:
        Adaptive.seen.append([trial.index for trial in history])
        return [{"a": (start + i) % 8, "b": "x"} for i in range(n)]


def test_an_adaptive_strategy_waits_for_its_round_and_sees_the_trials_by_index() -> None:
    Adaptive.seen = []
    book = ledger(examples=1, strategy=Adaptive(SPACE), concurrency=4, batch_size=2)
    first = book.next_tasks()
    assert len(first) == 2  # round 1 waits for round 0
    finish(book, first[1:])
    assert book.next_tasks() == []
    finish(book, first[:1])
    assert len(book.next_tasks()) == 2
    assert Adaptive.seen == [[], [0, 1]]


class Failing(Strategy):
    name = "failing-test"

    def propose(
        self, history: Sequence[Trial], n: int, *, start: int, round: int
    ) -> list[dict[str, Any]]:
        raise RuntimeError("no idea")


def test_a_strategy_that_fails_ends_the_job_failed_with_its_error() -> None:
    book = ledger(strategy=Failing(SPACE))
    assert book.next_tasks() == [] and book.idle
    book.end("completed")
    assert book.state == "failed"
    assert book.error == "strategy 'custom' failed: RuntimeError: no idea"


def test_time_pause_and_expiry() -> None:
    book = ledger(examples=1, concurrency=2, max_seconds=10)
    assert (book.seconds_left(4.0), ledger().seconds_left(4.0)) == (6.0, None)
    tasks = book.next_tasks()
    assert book.pause() and not book.pause() and book.next_tasks() == []
    finish(book, tasks[:1])  # what was in flight is kept while paused
    assert len(book.trials) == 1 and book.status(1.0).state == "paused"
    assert book.resume() and not book.resume()
    book.expire()  # the rest in flight is dropped: not counted
    assert (book.stop_reason, book.in_flight, book.next_tasks()) == ("max_seconds", 0, [])
    book.end("completed")
    status = book.status(10.0)
    assert (status.state, status.stop_reason, status.evaluations_done) == (
        "completed", "max_seconds", 1,
    )  # fmt: skip


def test_paused_it_finishes_the_candidates_already_started_and_starts_no_other() -> None:
    book = ledger(examples=3, concurrency=4, batch_size=3)
    tasks = book.next_tasks()  # candidate 0 whole, candidate 1's first example
    assert [(t.candidate, t.example) for t in tasks] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert book.pause()
    assert book.next_tasks() == []  # nothing free yet
    finish(book, tasks[:2])
    rest = book.next_tasks()  # candidate 1's other examples: a checkpoint keeps whole ones
    assert [(t.candidate, t.example) for t in rest] == [(1, 1), (1, 2)]
    trials = finish(book, [*tasks[2:], *rest])
    assert [t.index for t in trials] == [0, 1] and book.in_flight == 0
    assert book.next_tasks() == [] and book.state == "paused"  # candidate 2 waits
    assert book.resume() and [t.candidate for t in book.next_tasks()][:1] == [2]


def test_tasks_put_back_before_they_start_are_as_if_never_handed_out() -> None:
    book = ledger(examples=3, concurrency=4, batch_size=3)
    first = book.next_tasks()  # candidate 0 whole, candidate 1's first example
    finish(book, first[:3])  # candidate 0 done; candidate 1 started
    tasks = book.next_tasks()  # candidate 1's other two, candidate 2's first
    assert [(t.candidate, t.example) for t in tasks] == [(1, 1), (1, 2), (2, 0)]
    book.put_back(tasks)  # paused before they started
    assert book.in_flight == 1 and book.pause()
    rest = book.next_tasks()  # paused: candidate 1 was started (example 0), 2 was not
    assert [(t.candidate, t.example) for t in rest] == [(1, 1), (1, 2)]
    finish(book, [first[3], *rest])
    assert (book.in_flight, book.next_tasks(), sorted(book.trials)) == (0, [], [0, 1])
    assert book.resume()
    assert [(t.candidate, t.example) for t in book.next_tasks()][:3] == [(2, 0), (2, 1), (2, 2)]


def test_restore_takes_up_a_checkpoint_without_running_a_finished_candidate_again() -> None:
    book = ledger(examples=2, concurrency=4, batch_size=3, patience=5)
    tasks = book.next_tasks()
    finish(book, [t for t in tasks if t.candidate in (0, 1)])
    batch = book.batch(7.0)
    checkpoint = Checkpoint(
        book.spec,
        rounds=dict(batch.rounds),
        trials={trial.index: trial for trial in batch.trials},
        state="paused",
        elapsed=7.0,
    )
    again = ledger(examples=2, concurrency=4, batch_size=3, patience=5)
    again.restore(checkpoint)
    assert (again.state, sorted(again.trials), again.tokens) == ("paused", [0, 1], 40)
    assert again.next_tasks() == []  # paused
    again.resume()
    rest = again.next_tasks()
    assert [(t.candidate, t.example) for t in rest[:2]] == [(2, 0), (2, 1)]
    assert [number for number, _ in again.batch(8.0).rounds] == [1]  # round 0 is stored
    assert again.status(8.0).best_index == book.status(7.0).best_index == 0
