"""A round is on record before any of its candidates runs (checked from inside every
evaluation, against the store)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from job_support import QA, SPACE, Answers, config_key, configuration_of, start, trainset

from otpy.providers import CompletionRequest


class Checked(Answers):
    """Answers as usual, after noting each request whose candidate the store lacks."""

    def __init__(self) -> None:
        super().__init__()
        self.job: tuple[Any, str] | None = None  # (store, job id), once known
        self.known = threading.Event()
        self.unrecorded: list[tuple[str, float | None]] = []

    def __call__(self, request: CompletionRequest) -> str:
        assert self.known.wait(10) and self.job is not None
        store, job_id = self.job
        rounds = store.load(job_id).rounds
        stored = {config_key(item["configuration"]) for items in rounds.values() for item in items}
        if configuration_of(request) not in stored:
            self.unrecorded.append(configuration_of(request))
        return super().__call__(request)


def test_every_evaluation_finds_its_candidate_already_checkpointed(tmp_path: Path) -> None:
    answers = Checked()
    rt, _ = start(tmp_path / "jobs.sqlite", answers)
    with rt:
        job = rt.jobs.start(
            QA, SPACE, trainset(1), "exact_match",
            concurrency=4, batch_size=2, max_evaluations=24, seed=5,
            strategy_options={"unique": False},
        )  # fmt: skip
        answers.job = (rt.jobs.store, job.id)
        answers.known.set()
        final = job.wait(30)
    assert (final.state, final.evaluations_done) == ("completed", 24)
    assert answers.calls == 24 and answers.unrecorded == []
