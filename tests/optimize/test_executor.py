"""``ThreadExecutor``: evaluations on shared threads, their outcomes batched behind one
wake-up, a closed session's outcomes dropped (and its runs told to stop), and threads
made on demand and retired when idle."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import otpy
from otpy.clock import SYSTEM_CLOCK
from otpy.optimize import METRICS, JobOptions, JobSpec, JobWork, Task, ThreadExecutor
from otpy.providers import CompletionRequest, SimulatedProvider
from otpy.testing import wait_until

PROGRAM = {
    "name": "echo",
    "inputs": {"q": {"type": "string"}},
    "steps": [{"name": "answer", "type": "claude", "prompt": "{{ vars.word }} {{ inputs.q }}"}],
    "outputs": {"answer": "{{ steps.answer.output }}"},
}


class Gate:
    """The provider's answers: held until ``open`` is set; counts calls."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, request: CompletionRequest) -> str:
        with self.lock:
            self.calls += 1
        self.open.wait(30)
        return "ok"


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.open.set()


@pytest.fixture
def work(gate: Gate) -> Iterator[JobWork]:
    """A runtime's step table and providers (a simulated provider answering through
    ``gate``), and a job's work on them."""
    config = {"name": f"x-{uuid.uuid4().hex[:6]}", "plugins": False, "providers": {},
              "jobs_store": ":memory:"}  # fmt: skip
    with otpy.start(config) as rt:
        rt.providers.register_provider("sim", SimulatedProvider("sim", responses=gate))
        yield job_work(rt)


def job_work(rt: otpy.Runtime) -> JobWork:
    spec = JobSpec(
        job_id="exec",
        program=PROGRAM,
        space={},
        trainset=[{"inputs": {"q": str(i)}, "expected": "ok"} for i in range(4)],
        metric="exact_match",
        options=JobOptions(),
    )
    plan = rt.compile_pipeline(PROGRAM)
    return JobWork(spec, plan, METRICS["exact_match"], rt.providers, SYSTEM_CLOCK)


def tasks(n: int) -> list[Task]:
    return [Task(i, i % 4, {"word": "w"}) for i in range(n)]


def test_outcomes_come_back_in_batches_with_one_wake_up_per_batch(
    gate: Gate, work: JobWork
) -> None:
    wakes: list[int] = []
    pool = ThreadExecutor(idle_seconds=30, name="t1")
    session = pool.open(work, lambda: wakes.append(1))
    session.submit(tasks(4))
    wait_until(lambda: gate.calls == 4)  # four threads made on demand, all busy
    assert pool.statistics() == {"threads": 4, "busy": 4, "queued": 0}
    gate.open.set()
    wait_until(lambda: pool.statistics()["busy"] == 0)
    outcomes = session.take()
    assert sorted(o.task.candidate for o in outcomes) == [0, 1, 2, 3]
    assert all(o.result.score == 1.0 and o.cost == 0.0 for o in outcomes)
    assert 1 <= len(wakes) <= 4 and session.take() == []
    session.submit(tasks(2))  # idle threads take them: none made
    wait_until(lambda: len(wakes) >= 2 and pool.statistics()["busy"] == 0)
    assert len(session.take()) == 2 and pool.statistics()["threads"] == 4
    pool.shutdown()
    wait_until(lambda: pool.statistics()["threads"] == 0)


def test_a_closed_session_drops_its_outcomes_and_tells_its_runs_to_stop(
    gate: Gate, work: JobWork
) -> None:
    wakes: list[int] = []
    pool = ThreadExecutor(idle_seconds=30, name="t2")
    session: Any = pool.open(work, lambda: wakes.append(1))
    session.submit(tasks(2))
    wait_until(lambda: gate.calls == 2)
    running = list(session._running.values())
    session.close()
    assert all(progress.cancel.is_set() for progress in running)
    session.submit(tasks(2))  # never run: the session is closed
    gate.open.set()
    wait_until(lambda: pool.statistics()["busy"] == 0 and pool.statistics()["queued"] == 0)
    assert (session.take(), wakes, gate.calls) == ([], [], 2)
    pool.shutdown()


def test_threads_are_capped_and_retire_when_idle(gate: Gate, work: JobWork) -> None:
    pool = ThreadExecutor(idle_seconds=0.05, max_threads=2, name="t3")
    session = pool.open(work, lambda: None)
    session.submit(tasks(5))
    wait_until(lambda: gate.calls == 2)
    assert pool.statistics() == {"threads": 2, "busy": 2, "queued": 3}
    gate.open.set()
    wait_until(lambda: gate.calls == 5)
    wait_until(lambda: pool.statistics()["threads"] == 0)  # idle 50 ms: retired
    names = [t.name for t in threading.enumerate() if t.name.startswith("t3-eval")]
    assert names == []
    pool.shutdown()
