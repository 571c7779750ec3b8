"""Optimization jobs survive: a runner killed mid-job is restarted by its supervisor and
goes on from its checkpoint, and a job of a process killed with SIGKILL is resumed by
another runtime; neither evaluates a checkpointed candidate again, and both end as an
uninterrupted run with the same seed does.

Calls are counted per configuration at the simulated provider (:class:`job_support.Answers`).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from job_support import (
    PLAIN_QA,
    PROVIDER,
    QA,
    SPACE,
    Answers,
    config_key,
    job_worker,
    start,
    trainset,
    trials_of,
)

from otpy.optimize import Trial
from otpy.supervision import whereis
from otpy.testing import wait_idle, wait_until


def uninterrupted(store: Path, program: str, **options: Any) -> tuple[Any, list[Trial]]:
    """The final status and the trials of the job run start to end in a fresh runtime."""
    rt, _ = start(store)
    with rt:
        job = rt.jobs.start(program, SPACE, **options)
        final = job.wait(20)
        trials = list(rt.jobs.store.load(job.id).trials.values())
    assert final.state == "completed"
    return final, trials


def checkpointed(rt: Any, job_id: str) -> dict[int, Trial]:
    return rt.jobs.store.load(job_id).trials


def test_a_killed_runner_is_restarted_and_reruns_no_finished_candidate(tmp_path: Path) -> None:
    options: dict[str, Any] = {
        "trainset": trainset(3),
        "metric": "exact_match",
        "concurrency": 2,
        "max_evaluations": 8,
        "seed": 11,
        "prices": {PROVIDER: (1.0, 3.0)},
    }
    reference, reference_trials = uninterrupted(tmp_path / "reference.sqlite", QA, **options)

    answers = Answers(hold_from=3 * 3)  # three candidates' worth, then calls wait
    rt, _ = start(tmp_path / "jobs.sqlite", answers)
    with rt:
        job = rt.jobs.start(QA, SPACE, **options)
        name = f"{rt.name}.job.{job.id}"
        try:
            answers.wait_held(2)
            wait_idle()  # the runner has handled every result that came back
            before = answers.snapshot()
            finished = checkpointed(rt, job.id)
            assert len(finished) >= 2 and job.status().evaluations_done == len(finished)
            runner = whereis(name)
            assert runner is not None
            runner.kill()
            restarted = wait_until(lambda: (r := whereis(name)) is not runner and r, 10)
            assert restarted.is_alive()
            # the new runner starts the unfinished candidate again: its calls wait too
            answers.wait_held(4)
            assert job.status().evaluations_done == len(finished)
        finally:
            answers.release()
        final = job.wait(20)
        trials = checkpointed(rt, job.id)
    after = answers.snapshot()
    assert final.state == "completed"
    for trial in finished.values():
        config = config_key(trial.configuration)
        assert before[config] == 3, f"{config}: each example once before the crash"
        assert after[config] == 3, f"{config}: never again after it"
    for index, trial in trials.items():
        if index not in finished:  # scored after the crash: each example once more at most
            config = config_key(trial.configuration)
            assert after[config] - before[config] == 3
    assert trials_of(trials.values()) == trials_of(reference_trials)
    assert (final.best_score, final.best_configuration, final.best_index) == (
        reference.best_score,
        reference.best_configuration,
        reference.best_index,
    )
    # the cost of what finished before the crash is kept: the job's is its trials' sum
    assert final.cost > 0 and final.cost == pytest.approx(sum(t.cost for t in trials.values()))
    assert final.cost == pytest.approx(reference.cost)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_job_of_a_killed_process_is_resumed_by_a_new_one_with_the_same_result(
    tmp_path: Path,
) -> None:
    store, job_id, seed = tmp_path / "jobs.sqlite", "survivor", 21
    with job_worker(store, job_id, seed) as worker:
        pass  # it has checkpointed two candidates and holds the rest: SIGKILL it
    assert worker.returncode == -signal.SIGKILL

    options: dict[str, Any] = {
        "trainset": trainset(2),
        "metric": "exact_match",
        "concurrency": 2,
        "max_evaluations": 10,
        "seed": seed,
    }
    reference, reference_trials = uninterrupted(tmp_path / "reference.sqlite", PLAIN_QA, **options)

    answers = Answers()
    rt, _ = start(store, answers)
    with rt:
        stored = rt.jobs.get(job_id).status()
        finished = checkpointed(rt, job_id)
        assert len(finished) >= 2 and stored.evaluations_done == len(finished)
        assert (stored.state, stored.owner) == ("interrupted", None)  # its process is dead
        assert len(finished) < 10
        job = rt.jobs.resume(job_id)  # the metric has a name: nothing to pass again
        final = job.wait(20)
        trials = checkpointed(rt, job_id)
    assert final.state == "completed"
    assert trials_of(trials.values()) == trials_of(reference_trials)
    assert (final.best_score, final.best_configuration, final.best_index) == (
        reference.best_score,
        reference.best_configuration,
        reference.best_index,
    )
    for index, trial in trials.items():
        expected = 0 if index in finished else 2  # checkpointed: never evaluated again
        assert answers.per_config[config_key(trial.configuration)] == expected, index
    assert answers.calls == (10 - len(finished)) * 2
