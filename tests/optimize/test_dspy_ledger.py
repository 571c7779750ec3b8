"""DSPyLedger: a DSPy job's evaluations as trials, the best among the fullest evaluations,
what a batch writes once, and a checkpoint taken up again (no thread, no DSPy)."""

from __future__ import annotations

import logging

import pytest

from otpy.optimize import (
    BEST_RESULT,
    PROGRAM_RESULT,
    Checkpoint,
    DSPyJob,
    DSPyLedger,
    Evaluation,
    JobOptions,
    JobSpec,
    LMCalls,
    beats,
    ranked_evaluations,
    score_of,
)


def _spec() -> JobSpec:
    return JobSpec(
        job_id="j",
        kind="dspy",
        dspy=DSPyJob(optimizer="MIPROv2", program="m:program", metric="m:exact"),
        program={"name": "program"},
        space={},
        trainset=[{"inputs": {"question": "q0"}, "expected": {"answer": "A0"}}],
        options=JobOptions(strategy="MIPROv2"),
    )


def test_the_fullest_evaluation_wins_then_the_score_then_the_earliest() -> None:
    assert beats(10, 0.1, 5, (3, 1.0, 0))  # more examples beat a perfect minibatch
    assert not beats(3, 1.0, 5, (10, 0.1, 0))
    assert beats(10, 0.6, 5, (10, 0.5, 0)) and not beats(10, 0.5, 5, (10, 0.5, 0))
    assert beats(10, 0.5, 0, (10, 0.5, 5)) and beats(1, 0.0, 0, None)


def test_scores_of_every_kind_of_metric_value() -> None:
    class Feedback:
        score = 0.75

    assert [score_of(v) for v in (True, 0, 0.5, Feedback(), "x", float("nan"))] == [
        1.0, 0.0, 0.5, 0.75, 0.0, 0.0,
    ]  # fmt: skip


def test_evaluations_become_trials_and_the_best_keeps_its_program() -> None:
    ledger = DSPyLedger(_spec())
    first = ledger.record(Evaluation(0, (1.0, 1.0, 1.0), {"p.demos": 0}, state="s0"))
    second = ledger.record(Evaluation(1, (0.0,) * 8 + (1.0, 1.0), {"p.demos": 2}, state="s1"))
    third = ledger.record(Evaluation(2, (1.0,) * 5 + (0.0,) * 5, {"p.demos": 1}, state="s2"))
    assert first is not None and second is not None and third is not None
    assert (first.score, second.score, third.score) == (1.0, 0.2, 0.5)
    assert ledger.best is third and ledger.results == {BEST_RESULT: "s2"}
    assert [t.index for t in ranked_evaluations(list(ledger.trials.values()))] == [2, 1, 0]
    batch = ledger.batch(3.0)
    assert [t.index for t in batch.trials] == [0, 1, 2] and batch.results == {BEST_RESULT: "s2"}
    assert not ledger.pending and ledger.batch(4.0).trials == []
    ledger.keep(PROGRAM_RESULT, "compiled")
    assert ledger.batch(5.0).results == {PROGRAM_RESULT: "compiled"}
    status = ledger.status(5.0, LMCalls(calls=7, replayed=2, in_flight=1, tokens=90, cost=0.5))
    assert (status.kind, status.strategy, status.evaluations_done) == ("dspy", "MIPROv2", 3)
    assert (status.best_index, status.best_score) == (2, 0.5)
    assert status.best_configuration == {"p.demos": 1}
    assert (status.lm_calls, status.replayed_calls, status.in_flight) == (7, 2, 1)
    assert (status.tokens, status.cost) == (90, 0.5)


def test_a_resumed_run_reports_again_what_was_checkpointed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = DSPyLedger(_spec())
    before.record(Evaluation(0, (1.0, 0.0), state="s0"))
    before.pause()
    written = before.batch(2.0)
    checkpoint = Checkpoint(
        _spec(),
        trials={t.index: t for t in written.trials},
        results=written.results,
        state=written.state,
        elapsed=2.0,
    )
    ledger = DSPyLedger(_spec()).restore(checkpoint)
    assert ledger.state == "paused" and ledger.best_key == (2, 0.5, 0)
    assert ledger.resume() and ledger.state == "running" and not ledger.resume()
    assert ledger.record(Evaluation(0, (1.0, 0.0))) is None  # the same evaluation again
    with caplog.at_level(logging.WARNING, logger="otpy.jobs"):
        assert ledger.record(Evaluation(0, (0.0, 0.0))) is None
    assert "not an exact replay" in caplog.text
    assert ledger.record(Evaluation(1, (1.0, 1.0), state="s1")) is not None
    assert [t.index for t in ledger.batch(3.0).trials] == [1]
    finished = Checkpoint(_spec(), state="failed", error="boom")
    ended = DSPyLedger(_spec()).restore(finished)
    assert ended.state == "failed" and ended.error == "boom" and not ended.pause()
