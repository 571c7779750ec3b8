"""Two processes, one job store: resuming one job from both at the same moment lets exactly
one run it (the other is told who has it, at once), and a job whose process was killed
is taken over by another process once its lease has expired, without ``force``.

Subprocesses run ``tests/job_racer.py`` and ``tests/job_worker.py`` and talk on their
stdin and stdout; nothing waits on a sleep."""

from __future__ import annotations

import dataclasses
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from job_support import PLAIN_QA, SPACE, job_worker, kill_worker, start, trainset

from otpy.errors import JobClaimedError
from otpy.optimize import (
    CheckpointBatch,
    JobOptions,
    JobSpec,
    Owner,
    SearchSpace,
    SQLiteJobStore,
)
from otpy.pipelines import load_pipeline
from otpy.testing import FakeClock

RACER = Path(__file__).parent.parent / "job_racer.py"
POSIX = sys.platform != "win32"
ROUNDS = 50


class Racer:
    """A job_racer.py process: ``send`` a line, ``line()`` the next one it prints."""

    def __init__(self, store: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(RACER), str(store)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.line()
        assert ready.startswith("READY "), ready
        self.owner = ready.removeprefix("READY ")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("(exited)")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def line(self, timeout: float = 30) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return f"(nothing within {timeout} s)"

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("quit")
                self.process.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@contextmanager
def racers(store: Path) -> Iterator[tuple[Racer, Racer]]:
    first = Racer(store)
    try:
        second = Racer(store)
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def interrupted_jobs(store: Path, count: int) -> None:
    """``count`` jobs ``race-N`` in ``store``, interrupted (no lease), none evaluated."""
    jobs = SQLiteJobStore(store, owner=Owner.current("setup"))
    program = load_pipeline(PLAIN_QA).model_dump(mode="json", exclude_unset=True)
    space = SearchSpace.parse(SPACE).to_dict()
    options = JobOptions(concurrency=2, max_evaluations=3, seed=5)
    for n in range(count):
        spec = JobSpec(job_id=f"race-{n}", program=program, space=space, trainset=trainset(2),
                       metric="exact_match", options=options)  # fmt: skip
        jobs.write(jobs.create(spec), CheckpointBatch("interrupted", 0.0, release=True))
    jobs.close()


@pytest.mark.slow
def test_two_processes_resuming_one_job_at_once_run_it_once(tmp_path: Path) -> None:
    store = tmp_path / "jobs.sqlite"
    interrupted_jobs(store, ROUNDS)
    wins = {}
    with racers(store) as (a, b):
        for n in range(ROUNDS):
            job_id = f"race-{n}"
            a.send(f"resume {job_id}")  # both at once: each claims in its own process
            b.send(f"resume {job_id}")
            said = {a.owner: a.line(), b.owner: b.line()}  # the loser answers at once too
            won = [owner for owner, line in said.items() if line.startswith(f"WON {job_id} ")]
            lost = [line for line in said.values() if line.startswith(f"LOST {job_id} ")]
            assert len(won) == 1 and len(lost) == 1, said
            winner = won[0]
            assert lost[0].startswith(f"LOST {job_id} JobClaimedError: job '{job_id}' is ")
            assert f"in {winner}; stop it there" in lost[0]
            runner = a if winner == a.owner else b
            runner.send(f"release {job_id}")
            done = runner.line()
            assert done == f"DONE {job_id} completed 3 6", done  # 3 candidates x 2 examples
            wins[winner] = wins.get(winner, 0) + 1
    jobs = SQLiteJobStore(store)
    try:
        for n in range(ROUNDS):
            checkpoint = jobs.load(f"race-{n}")
            assert (checkpoint.state, sorted(checkpoint.trials)) == ("completed", [0, 1, 2])
            assert checkpoint.holder.epoch == 2  # one claim, by the winner
    finally:
        jobs.close()
    assert sum(wins.values()) == ROUNDS


@pytest.mark.skipif(not POSIX, reason="SIGKILL is POSIX")
def test_the_expired_lease_of_a_killed_process_is_taken_over_without_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, job_id = tmp_path / "jobs.sqlite", "orphan"
    with job_worker(store, job_id) as process:
        kill_worker(process)  # its heartbeat stops; its lease runs out in lease_seconds
    # seen from another host: whether that process lives cannot be told, only the lease
    monkeypatch.setattr(socket, "gethostname", lambda: "another-host.invalid")
    clock = FakeClock(epoch=time.time())
    rt, _ = start(store, clock=clock)
    with rt:
        holder = rt.jobs.store.load(job_id).holder
        assert holder.owner is not None and holder.owner.pid == process.pid
        assert holder.expires is not None
        status = rt.jobs.get(job_id).status()
        assert (status.state, status.owner) == ("running", holder.describe())
        with pytest.raises(JobClaimedError, match=f"in {holder.describe()}"):
            rt.jobs.resume(job_id)
        clock.advance(holder.expires - clock.time() + 0.001)  # no renewal came: expired
        assert rt.jobs.get(job_id).status().state == "interrupted"
        final = rt.jobs.resume(job_id).wait(20)
        assert (final.state, final.evaluations_done) == ("completed", 10)
        assert rt.jobs.store.load(job_id).holder.epoch == holder.epoch + 1
    assert dataclasses.replace(holder.owner, host="x").alive() is None
