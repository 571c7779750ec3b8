"""Job ownership: a stored job's lease records the runtime (process) that runs it, so
another runtime on the same store reads a job whose process died (or whose lease expired)
as ``interrupted`` and refuses to resume one whose lease is live unless ``force=True``.

Subprocesses run jobs with ``tests/job_worker.py`` and say on stdout when they are ready;
nothing waits on a sleep."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from job_support import (
    QA,
    SPACE,
    Answers,
    candidates,
    job_worker,
    kill_worker,
    start,
    trainset,
    wait_status,
)

from otpy.__main__ import main
from otpy.errors import JobClaimedError, JobError
from otpy.optimize import SQLiteJobStore
from otpy.optimize._owner import Owner, process_token
from otpy.supervision import whereis
from otpy.testing import wait_until

WORKER = Path(__file__).parent.parent / "job_worker.py"
LINUX = sys.platform.startswith("linux")
POSIX = sys.platform != "win32"


# -- Owner ---------------------------------------------------------------------------------


def test_the_owner_of_this_process_is_alive_and_round_trips() -> None:
    owner = Owner.current("rt-a")
    assert (owner.runtime, owner.pid, owner.host) == ("rt-a", os.getpid(), socket.gethostname())
    assert (owner.token is not None) == LINUX
    assert owner.alive() is True
    assert Owner.from_dict(owner.to_dict()) == owner
    assert owner.describe() == f"runtime rt-a, pid {os.getpid()} on {socket.gethostname()}"


def test_an_owner_on_another_host_is_unknown() -> None:
    owner = dataclasses.replace(Owner.current("rt-a"), host="elsewhere.invalid")
    assert owner.alive() is None


@pytest.mark.skipif(not POSIX, reason="os.kill(pid, 0) probes on POSIX only")
def test_the_owner_of_a_process_that_exited_is_dead() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        owner = Owner("rt-child", child.pid, socket.gethostname(), process_token(child.pid))
        assert owner.alive() is True
    finally:
        assert child.stdin is not None
        child.stdin.close()  # it reads EOF and exits
        child.wait(10)
    # the token also tells it from a process that might be given the PID meanwhile
    assert owner.alive() is False


@pytest.mark.skipif(not LINUX, reason="a zombie is read from /proc")
def test_the_owner_of_an_exited_process_not_yet_reaped_is_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, still a zombie
        os.kill(child.pid, 0)  # the PID still answers
        owner = Owner("rt-child", child.pid, socket.gethostname(), None)
        assert owner.alive() is False
    finally:
        child.wait(10)


@pytest.mark.skipif(not LINUX, reason="the start token is read from /proc")
def test_an_owner_whose_pid_now_belongs_to_another_process_is_dead() -> None:
    owner = Owner.current("rt-a")
    assert owner.token is not None
    assert dataclasses.replace(owner, token=owner.token + 1).alive() is False  # a reused PID


@pytest.mark.skipif(not POSIX, reason="os.kill(pid, 0) probes on POSIX only")
def test_an_owner_signal_0_may_not_reach_is_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")  # another user's process

    monkeypatch.setattr(os, "kill", refused)
    assert Owner("rt-b", os.getpid(), socket.gethostname(), None).alive() is True


# -- another process ---------------------------------------------------------------------------


@pytest.mark.skipif(not POSIX, reason="SIGKILL is POSIX")
def test_a_job_of_a_killed_process_reads_as_interrupted_and_resumes(tmp_path: Path) -> None:
    store, job_id = tmp_path / "jobs.sqlite", "killed"
    with job_worker(store, job_id) as process:
        kill_worker(process)
        assert process.returncode == -signal.SIGKILL

    rt, _ = start(store)
    with rt:
        stored = rt.jobs.store.load(job_id)
        assert stored.state == "running"  # as the killed process left it
        owner = stored.holder.owner
        assert owner is not None and owner.pid == process.pid
        assert stored.holder.live(rt.clock.time())  # its lease has not expired: it died
        [listed] = rt.jobs.list()
        handle = rt.jobs.get(job_id)
        status = handle.status()
        assert (listed.state, listed.owner) == (status.state, status.owner) == ("interrupted", None)
        assert status.evaluations_done >= 2
        with pytest.raises(JobError, match=r"interrupted.*rt\.jobs\.resume\('killed'\)"):
            handle.resume()
        final = rt.jobs.resume(job_id).wait(20)  # no force needed: its owner is dead
        assert (final.state, final.evaluations_done) == ("completed", 10)
        assert rt.jobs.store.load(job_id).holder.owner is None  # finished: released


@pytest.mark.skipif(not POSIX, reason="SIGKILL is POSIX")
def test_a_job_paused_in_a_live_process_is_not_resumed_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, job_id = tmp_path / "jobs.sqlite", "held"
    rt, _ = start(store)
    with rt:
        with job_worker(store, job_id, pause=True) as process:
            where = f"pid {process.pid} on {socket.gethostname()}"
            there = re.escape(where)
            handle = rt.jobs.get(job_id)
            status = handle.status()
            assert status.state == "paused" and status.owner is not None
            assert status.owner.startswith("runtime jobs-") and status.owner.endswith(where)
            assert [(s.state, s.owner) for s in rt.jobs.list()] == [("paused", status.owner)]
            with pytest.raises(JobError, match=f"'held' is paused in runtime .*{there}") as err:
                rt.jobs.resume(job_id)
            assert "stop it there, or pass force=True if that process is gone" in str(err.value)
            with pytest.raises(JobError, match=f"{there}; resume it there"):
                handle.resume()
            with pytest.raises(JobError, match=f"{there}; cancel it there"):
                handle.cancel()
            # the command line says the same
            assert main(["jobs", "status", job_id, "--store", str(store)]) == 0
            assert f"runs in: {status.owner}" in capsys.readouterr().out.splitlines()
            assert main(["jobs", "resume", job_id, "--store", str(store)]) == 2
            assert f"in {status.owner}; stop it there" in capsys.readouterr().err
            job_file = tmp_path / "job.yaml"
            job_file.write_text(
                f"job_id: {job_id}\nprogram: {{name: p, steps: [{{name: s, type: claude, "
                "prompt: '{{ vars.a }}'}]}\nspace: {a: [1]}\ntrainset: [{inputs: {}}]\n"
                "metric: contains\n"
            )
            assert main(["optimize", str(job_file), "--store", str(store), "-q"]) == 2
            assert f"is paused in {status.owner}; see it with: otpy jobs status held" in (
                capsys.readouterr().err
            )
            kill_worker(process)
        assert rt.jobs.get(job_id).status().state == "interrupted"
        final = rt.jobs.resume(job_id).wait(20)  # its owner is gone: no force needed
    assert (final.state, final.evaluations_done) == ("completed", 10)


# -- one process -------------------------------------------------------------------------------


def _interrupted(store: Path, job_id: str, metric: Any = "exact_match") -> None:
    """Leave job ``job_id`` interrupted in ``store``: its runtime stops mid-evaluation."""
    answers = Answers(hold_from=0)
    rt, _ = start(store, answers)
    try:
        job = rt.jobs.start(
            QA, SPACE, trainset(2), metric, concurrency=2, max_evaluations=3, job_id=job_id
        )
        answers.wait_held(2)
    finally:
        rt.stop()
        answers.release()
    assert job.wait(5).state == "interrupted"


def test_a_job_owned_on_another_host_is_resumed_only_with_force(tmp_path: Path) -> None:
    store = tmp_path / "jobs.sqlite"
    _interrupted(store, "far")
    far = Owner("rt-far", 4242, "elsewhere.invalid", 7, "far-id")
    claim = SQLiteJobStore(store, owner=far)
    claim.claim("far")  # as a runtime on another host would: its lease is live
    claim.close()

    rt, _ = start(store)
    with rt:
        status = rt.jobs.get("far").status()
        assert (status.state, status.owner) == ("running", far.describe())
        with pytest.raises(JobClaimedError, match=re.escape(far.describe())) as err:
            rt.jobs.resume("far")
        assert (err.value.owner, err.value.state) == (far.describe(), "running")
        job = rt.jobs.resume("far", force=True)
        final = job.wait(20)
        assert (final.state, final.evaluations_done) == ("completed", 3)
        assert rt.jobs.store.load("far").holder.owner is None


def test_a_restarted_runner_claims_the_job_again_and_stays_its_runtime_s(tmp_path: Path) -> None:
    store = tmp_path / "jobs.sqlite"
    answers = Answers(free=candidates(0, 1))  # candidate 0 finishes, the others' calls wait
    rt, _ = start(store, answers)
    with rt:
        job = rt.jobs.start(
            QA, SPACE, trainset(2), "exact_match", concurrency=2, max_evaluations=4, job_id="r"
        )
        name = f"{rt.name}.job.r"
        try:
            answers.wait_held(2)
            wait_status(job, lambda s: s.evaluations_done == 1)
            assert job.pause().state == "paused"  # two evaluations still in flight
            first = rt.jobs.store.load("r").holder
            assert (first.owner, first.epoch) == (rt.jobs.store.owner, 1)
            runner = whereis(name)
            assert runner is not None
            runner.kill()
            # the restarted runner claims the job again (a new epoch fences the old one
            # out), finds it paused with nothing in flight, and hibernates
            wait_status(job, lambda s: s.restarts == 1 and s.in_flight == 0)
            wait_until(lambda: whereis(name) is None, 20)
            stored = rt.jobs.store.load("r")
            assert (stored.state, stored.holder.owner) == ("paused", rt.jobs.store.owner)
            assert stored.holder.epoch == 2
            assert rt.jobs.resume("r") is job  # its own runtime: no refusal

            mine = rt.jobs.store.owner
            other, _ = start(store)  # another runtime of this process: the owner is alive
            with other:
                seen = other.jobs.get("r").status()
                assert (seen.state, seen.owner) == ("paused", mine.describe())
                with pytest.raises(JobError, match=f"'r' is paused in runtime {rt.name}, pid"):
                    other.jobs.resume("r")
        finally:
            answers.release()
        assert job.resume().state == "running"  # a new runner, from the checkpoint
        final = job.wait(20)
    assert (final.state, final.evaluations_done, final.restarts) == ("completed", 4, 1)


def _one(example: Mapping[str, Any], result: Any) -> float:
    return 1.0


def test_resume_refuses_a_finished_job_and_asks_for_a_metric_function(tmp_path: Path) -> None:
    store = tmp_path / "jobs.sqlite"
    _interrupted(store, "f", metric=_one)
    rt, _ = start(store)
    with rt:
        done = rt.jobs.start(QA, SPACE, trainset(2), "exact_match", max_evaluations=1)
        assert done.wait(10).state == "completed"
        with pytest.raises(JobError, match=f"'{done.id}' is completed; nothing to resume"):
            rt.jobs.resume(done.id)
        with pytest.raises(JobError, match="pass metric= to resume it"):
            rt.jobs.resume("f")
        final = rt.jobs.resume("f", metric=_one).wait(20)
        assert (final.state, final.evaluations_done, final.best_score) == ("completed", 3, 1.0)
        with pytest.raises(JobError, match="'f' is completed; nothing to resume"):
            rt.jobs.resume("f", metric=_one)
