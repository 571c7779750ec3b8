"""otpy.sys on a job runner: a suspend loses nothing (in-flight evaluations finish and
their results wait for the runner: one message in its mailbox for the batch); the job's
own pause is what stops the spending."""

from __future__ import annotations

from pathlib import Path

import pytest
from job_support import QA, SPACE, Answers, start, trainset

import otpy.sys
from otpy.errors import NoProcessError
from otpy.testing import wait_until


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "jobs.sqlite"


def test_suspending_a_job_runner_loses_no_evaluation(store: Path) -> None:
    answers = Answers(hold_from=0)
    rt, _ = start(store, answers)
    with rt:
        job = rt.jobs.start(
            QA, SPACE, trainset(2), "exact_match", concurrency=4, max_evaluations=4, seed=1
        )
        try:
            answers.wait_held(4)
            otpy.sys.suspend(job)
            answers.release()  # the 4 in flight finish while the runner is suspended
            # their results wait in the executor, one wake-up message in the runner's mailbox
            wait_until(lambda: answers.held == 0 and otpy.sys.get_status(job).mailbox >= 1)
            status = otpy.sys.get_status(job)
            assert status.suspended and job.status().evaluations_done == 0
            assert job.status().in_flight == 4  # their results wait in the mailbox
            otpy.sys.resume(job)
        finally:
            answers.release()
        final = job.wait(20)
        assert (final.state, final.evaluations_done, final.in_flight) == ("completed", 4, 0)
        assert answers.calls == 4 * 2  # every evaluation ran exactly once
        with pytest.raises(NoProcessError, match="completed: it has no runner"):
            otpy.sys.get_status(job)
