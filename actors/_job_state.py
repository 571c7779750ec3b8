"""What a job's runner and handle keep: the :class:`JobCell` they share (across runner
restarts) and the runner's record of one candidate being evaluated."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from otpy.optimize import ExampleResult, JobStatus, Trial

__all__ = ["Candidate", "JobCell"]


class JobCell:
    """What a job's handle and its runners (one after another, across restarts) share:
    the published status, the best trial, and the event set when the job ends."""

    def __init__(self, status: JobStatus) -> None:
        self.status = status
        self.best: Trial | None = None
        self.done = threading.Event()

    def publish(self, status: JobStatus, best: Trial | None) -> None:
        self.best = best
        self.status = status  # one assignment: readers see the old or the new, whole
        if status.finished or status.state == "interrupted":
            self.done.set()
        else:
            self.done.clear()


@dataclass
class Candidate:
    """A proposed configuration, its examples and the results in so far."""

    index: int
    round: int
    configuration: dict[str, Any]
    examples: list[int]
    results: dict[int, ExampleResult] = field(default_factory=dict)
    errors: int = 0
    tokens: int = 0
    cost: float = 0.0
    finished: bool = False
