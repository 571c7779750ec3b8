"""``EvaluationWorker``: the Ray actor a :class:`~otpy.ray.RayExecutor` runs evaluations on.

Why actors rather than one Ray task per evaluation: an evaluation mostly waits on a
provider, so one process runs many at once in threads (``max_concurrency``), and what it
is made of — provider clients, the shared limiter's connection, breakers, compiled plans
— is built once per worker, not once per evaluation. A task per evaluation would need a
process per concurrent evaluation (a Ray worker costs ~100 MB and a second to start) and
rebuild all of it every time.

Two concurrency groups: evaluations run in the default one (``threads`` at once); the
``control`` group answers ``cancel`` and ``info`` at once even while every evaluation
thread is busy, so a cancelled job's running evaluations are told to stop at their next
step (``RunProgress.cancel``) and its queued ones return at once without running.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from typing import Any

import ray

from otpy.optimize import ExampleResult
from otpy.pipelines import RunProgress
from otpy.ray._travel import JobPayload, WorkerSetup
from otpy.ray._worker_env import WorkerEnv
from otpy.telemetry import Event

__all__ = ["CONTROL", "EvaluationWorker"]

CONTROL = "control"
"""The concurrency group of the calls that must not wait for an evaluation thread."""
_KEPT_CANCELLED = 1024

Evaluated = tuple[ExampleResult, float, list[Event]]


class EvaluationWorker:
    """Runs evaluations in a Ray worker process (see the module docstring)."""

    def __init__(self, setup: WorkerSetup) -> None:
        self.env = WorkerEnv(setup)
        self._lock = threading.Lock()
        self._running: dict[int, tuple[str, RunProgress]] = {}
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self._done = 0
        self._ended_at = 0.0  # time.monotonic() when an evaluation last ended

    def evaluate(
        self,
        job_key: str,
        box: list[Any],
        index: int,
        example: dict[str, Any],
        configuration: dict[str, Any],
    ) -> Evaluated | None:
        """Evaluate trainset item ``index`` (``example``) of job ``job_key`` with
        ``configuration``; ``box[0]`` is the ObjectRef of the job's
        :class:`~otpy.ray.JobPayload`, fetched the first time this worker sees the job.
        None if the job was cancelled here before it started."""
        progress = RunProgress()
        mark = id(progress)
        with self._lock:
            if job_key in self._cancelled:
                return None
            self._running[mark] = (job_key, progress)
        try:
            job = self.env.job(job_key, lambda: _payload(box))
            return self.env.evaluate(job, index, example, configuration, progress)
        finally:
            with self._lock:
                self._running.pop(mark, None)
                self._done += 1
                self._ended_at = time.monotonic()

    @ray.method(concurrency_group=CONTROL)
    def cancel(self, job_key: str) -> int:
        """Job ``job_key`` is over: its running evaluations stop before their next step,
        its queued ones return None; how many were running."""
        with self._lock:
            self._cancelled[job_key] = None
            while len(self._cancelled) > _KEPT_CANCELLED:
                self._cancelled.popitem(last=False)
            hits = [progress for key, progress in self._running.values() if key == job_key]
        for progress in hits:
            progress.cancel.set()
        self.env.forget(job_key)
        return len(hits)

    @ray.method(concurrency_group=CONTROL)
    def info(self) -> dict[str, Any]:
        """This worker now: ``pid``, ``node`` id, evaluations ``running`` and ``done``,
        when an evaluation last ended (``ended_at``, its node's ``time.monotonic()``) and
        the ``cpu`` seconds its process has used."""
        with self._lock:
            running, done, ended_at = len(self._running), self._done, self._ended_at
        node = ray.get_runtime_context().get_node_id()
        cpu = time.process_time()
        return {"pid": os.getpid(), "node": node, "running": running, "done": done,
                "ended_at": ended_at, "cpu": cpu}  # fmt: skip


def _payload(box: list[Any]) -> JobPayload:
    payload = ray.get(box[0])
    if not isinstance(payload, JobPayload):
        raise TypeError(f"a job payload was expected, got {type(payload).__name__}")
    return payload
