"""Steering DSPy jobs: pause (no call starts; the job hibernates once none is in flight),
resume (the journal replays what was paid for), cancel within a second with a call in
flight, budgets enforced before a call, and resuming after a runner crash in this process
or after SIGKILL in a new one, paying for no call twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import dspy
import dspy_job_fixtures as fx
import pytest
from dspy_support import exact, examples, half_right, runtime, simulated

from otpy.__main__ import main
from otpy.errors import StateError
from otpy.optimize import JobStatus
from otpy.providers._prompt_formats import StructuredPrompt
from otpy.testing import wait_until

TESTS = Path(__file__).resolve().parents[1]
WAIT = 30


pytestmark = pytest.mark.usefixtures("quiet_dspy")


class Held:
    """The ``answer`` field's value, holding call number ``at`` (counting from 1) until
    ``release`` is set; ``reached`` is set when that call arrives."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.calls = 0
        self.reached = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, prompt: StructuredPrompt) -> str:
        with self._lock:
            self.calls += 1
            number = self.calls
        if number == self.at:
            self.reached.set()
            assert self.release.wait(WAIT)
        return half_right(prompt)


def _random_search(rt: Any, sim_answers: Any = None, **settings: Any) -> Any:
    optimizer = dspy.BootstrapFewShotWithRandomSearch(
        metric=exact,
        max_bootstrapped_demos=2,
        max_labeled_demos=1,
        num_candidate_programs=2,
        num_threads=1,
    )
    return rt.jobs.start_dspy(
        dspy.Predict("question -> answer"),
        optimizer,
        examples(6),
        valset=examples(4, 6),
        metric=exact,
        threads=1,
        **settings,
    )


def _uninterrupted() -> tuple[int, str]:
    """The calls and saved program of the random-search job run straight through."""
    sim = simulated()
    with runtime(sim) as rt:
        job = _random_search(rt)
        assert job.wait(WAIT).state == "completed"
        return sim.calls, rt.jobs.saved_program(job.id)


def _hibernated(rt: Any) -> bool:
    return all(record.phase == "hibernated" for record in rt.jobs.records())


def test_pause_holds_every_call_then_resume_replays_and_finishes() -> None:
    total, program = _uninterrupted()
    held = Held(at=5)
    sim = simulated(field_values={"answer": held})
    with runtime(sim) as rt:
        job = _random_search(rt)
        assert held.reached.wait(WAIT)
        status = job.pause()  # call 5 is in flight: it finishes, nothing else starts
        assert status.state == "paused" and status.in_flight == 1 and status.lm_calls == 4
        held.release.set()
        wait_until(lambda: _hibernated(rt), timeout=WAIT, message="the paused job hibernated")
        run = rt.jobs.records()[0].run
        assert run.done.wait(WAIT)  # its compile stopped: no thread is left to call
        paused = job.status()
        assert (paused.state, paused.lm_calls, paused.in_flight) == ("paused", 5, 0)
        assert sim.calls == 5
        resumed = job.resume()
        assert resumed.state == "running"
        final = job.wait(WAIT)
        assert final.state == "completed" and rt.jobs.saved_program(job.id) == program
    assert sim.calls == final.lm_calls == total  # the 5 paid before were replayed
    assert final.replayed_calls == 5


def test_cancel_stops_within_a_second_with_a_call_in_flight() -> None:
    held = Held(at=3)
    sim = simulated(field_values={"answer": held})
    with runtime(sim) as rt:
        job = _random_search(rt)
        assert held.reached.wait(WAIT)
        started = time.monotonic()
        status = job.cancel()
        final = job.wait(1.0)
        took = time.monotonic() - started
        assert status.state == final.state == "cancelled" and took < 1.0
        assert final.stop_reason == "cancelled" and final.in_flight == 0
        held.release.set()  # the call in flight ends; the compile makes no other
        assert rt.jobs.records()[0].run.done.wait(WAIT)
        assert sim.calls == 3 and job.status().state == "cancelled"


def test_max_cost_stops_the_compile_at_the_limit_and_keeps_the_best_program() -> None:
    sim = simulated()
    prices = {"sim": (10_000.0, 0.0)}  # a call of ~150 input tokens costs ~$1.5
    with runtime(sim) as rt:
        job = _random_search(rt, prices=prices, max_cost=25.0)
        final = job.wait(WAIT)
        program = job.program()
    per_call = 2 * final.cost / final.lm_calls  # a bound on one call's cost
    assert final.state == "completed" and final.stop_reason == "max_cost"
    assert 25.0 <= final.cost < 25.0 + per_call  # one thread: one call in flight at most
    assert final.lm_calls == sim.calls and final.evaluations_done >= 1
    assert isinstance(program, dspy.Predict)  # the best evaluated before the stop


def test_max_calls_is_never_overshot_on_eight_threads() -> None:
    sim = simulated(latency=0.002)
    with runtime(sim) as rt:
        job = rt.jobs.start_dspy(
            dspy.Predict("question -> answer"),
            "evaluate",
            examples(40),
            metric=exact,
            threads=8,
            max_calls=10,
        )
        final = job.wait(WAIT)
    assert final.state == "completed" and final.stop_reason == "max_calls"
    assert final.lm_calls == sim.calls == 10 and final.evaluations_done == 0


def test_a_crashed_runner_restarts_and_replays_without_paying_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    total, program = _uninterrupted()
    sim = simulated()
    with runtime(sim) as rt:
        store, write = rt.jobs.store, rt.jobs.store.write
        failed = threading.Event()

        def flaky(lease: Any, batch: Any) -> Any:
            if batch.trials and batch.trials[0].index == 2 and not failed.is_set():
                failed.set()  # the runner crashes on this checkpoint; its supervisor restarts it
                raise StateError("disk full")
            return write(lease, batch)

        monkeypatch.setattr(store, "write", flaky)
        job = _random_search(rt)
        final = job.wait(WAIT)
        assert failed.is_set() and final.restarts == 1
        assert final.state == "completed" and rt.jobs.saved_program(job.id) == program
        assert final.evaluations_done == 5 and len(rt.jobs.trials(job.id)) == 5
    assert sim.calls == final.lm_calls == total and final.replayed_calls > 0


def _worker(store: Path, job_id: str, kill_at: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.Popen(
        [sys.executable, str(TESTS / "dspy_job_worker.py"), str(store), job_id, str(kill_at)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigkill_at_call_n_then_resume_in_a_new_process_pays_no_call_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A single-threaded, seeded MIPROv2 job is killed at call N of M; resumed by its
    references in a new process, it makes only the M - N calls never answered (the one in
    flight at the kill among them) and saves the program an uninterrupted run saves."""
    straight = fx.provider()
    with runtime(straight) as rt:
        job = rt.jobs.start_dspy(trainset=fx.examples(10), base_dir=TESTS, **fx.MIPRO_JOB)
        assert job.wait(WAIT).state == "completed"
        total, program = straight.calls, rt.jobs.saved_program(job.id)
    kill_at = total // 2
    store = tmp_path / "jobs.sqlite"
    worker = _worker(store, "mipro", kill_at)
    try:
        assert worker.stdout is not None
        line = ""
        for line in worker.stdout:  # DSPy prints its progress on stdout too
            if line.startswith(("CALLS", "ERROR")):
                break
        assert line.split()[:2] == ["CALLS", str(kill_at)], line
        in_flight = int(line.split()[3])
        assert main(["jobs", "pause", "mipro", "--store", str(store)]) == 1
        assert f", pid {worker.pid} on " in capsys.readouterr().err  # it runs there
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(WAIT)
        if worker.stdout:
            worker.stdout.close()
    sim = fx.provider()
    with runtime(sim, store=str(store)) as rt:
        stopped = rt.jobs.get("mipro").status()
        assert stopped.state == "interrupted" and stopped.lm_calls == kill_at
        job = rt.jobs.resume("mipro")  # by its references: nothing given again
        final: JobStatus = job.wait(WAIT)
        assert final.state == "completed"
        assert rt.jobs.saved_program("mipro") == program
    assert sim.calls <= total - kill_at + in_flight
    assert sim.calls == total - kill_at  # exactly the calls never answered
    assert final.lm_calls == total and final.replayed_calls == kill_at
