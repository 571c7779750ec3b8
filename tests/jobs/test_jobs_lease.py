"""Jobs that cannot run twice and never hang a waiter, in one process: a checkpoint that
cannot be written crashes the runner (restarted from the checkpoint, then ``failed`` once
its restart budget is spent, while the other jobs go on); a runner whose lease was taken
stops and its job reads ``taken_over``; a stopped runtime releases its jobs.

Checkpoint failures are real: a trigger in the store's SQLite file refuses the insert.
Evaluations are held at the simulated provider where a test needs them in flight."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from job_support import QA, SPACE, Answers, start, trainset, wait_status

from otpy.errors import CallTimeoutError, JobError
from otpy.supervision import whereis
from otpy.testing import FakeClock, wait_until

FAIL = "job_support_fail"


def refuse_trial(store: str | Path, index: int | None, job_id: str | None = None) -> None:
    """Make the store refuse to insert trial ``index`` (None: any) of job ``job_id`` (None:
    any) until :func:`allow`."""
    conn = sqlite3.connect(store)
    when = "" if index is None else f"AND NEW.idx = {index}"
    when += "" if job_id is None else f" AND NEW.job_id = '{job_id}'"
    conn.execute(
        f"CREATE TRIGGER {FAIL} BEFORE INSERT ON otpy_job_trials "
        f"WHEN 1 {when} BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END"
    )
    conn.commit()
    conn.close()


def allow(store: str | Path) -> None:
    conn = sqlite3.connect(store)
    conn.execute(f"DROP TRIGGER {FAIL}")
    conn.commit()
    conn.close()


def supervisor_of(rt: Any) -> Any:
    ref = whereis(rt.jobs_supervisor)
    assert ref is not None
    return ref


def test_a_failed_checkpoint_crashes_the_runner_and_the_restart_goes_on_from_it(
    tmp_path: Path,
) -> None:
    answers = Answers(hold_from=2)  # candidates 0 and 1 run, then calls wait
    rt, _ = start(tmp_path / "jobs.sqlite", answers)
    with rt:
        refuse_trial(rt.jobs.store.path, 1)
        job = rt.jobs.start(
            QA, SPACE, trainset(1), "exact_match", concurrency=1, max_evaluations=4, seed=3
        )
        try:
            # trial 1 cannot be written: the runner crashes, is restarted, reads trial 0
            # from the checkpoint and runs candidate 1 again (its call 3 waits)
            answers.wait_held(1)
            status = wait_status(job, lambda s: s.restarts == 1)
            assert (status.state, status.evaluations_done) == ("running", 1)
            allow(rt.jobs.store.path)
        finally:
            answers.release()
        final = job.wait(20)
        trials = rt.jobs.store.load(job.id).trials
    assert (final.state, final.evaluations_done, final.restarts) == ("completed", 4, 1)
    assert sorted(trials) == [0, 1, 2, 3]
    assert answers.calls == 5  # candidate 1 twice: its first result was never stored


def test_restarts_spent_end_the_job_failed_and_the_other_jobs_go_on(tmp_path: Path) -> None:
    answers = Answers()
    rt, _ = start(tmp_path / "jobs.sqlite", answers)
    with rt:
        jobs_supervisor = supervisor_of(rt)
        held = Answers(hold_from=0)
        other, _ = start(tmp_path / "other.sqlite", held)  # unaffected, for the count
        with other:
            steady = rt.jobs.start(
                QA, SPACE, trainset(1), "exact_match", concurrency=1, max_evaluations=30,
                job_id="steady",
            )  # fmt: skip
            wait_status(steady, lambda s: s.evaluations_done >= 1)
            refuse_trial(rt.jobs.store.path, None, "doomed")
            doomed = rt.jobs.start(
                QA, SPACE, trainset(1), "exact_match", concurrency=1, max_evaluations=4,
                max_restarts=4, job_id="doomed",
            )  # fmt: skip
            final = doomed.wait(20)  # returns: the job failed for good
            assert (final.state, final.stop_reason, final.restarts) == ("failed", "restarts", 4)
            assert final.error is not None
            assert "crashed more than max_restarts (4) times within 60 s" in final.error
            assert "disk I/O error (injected)" in final.error
            assert rt.jobs.store.load("doomed").state == "failed"
            assert rt.jobs.store.load("doomed").holder.owner is None  # released
            with pytest.raises(JobError, match="'doomed' is failed; it cannot resume"):
                doomed.resume()
            allow(rt.jobs.store.path)
            assert (steady.wait(20).state, steady.status().restarts) == ("completed", 0)
            # five crashes of one job did not use up the JobSupervisor's intensity
            assert supervisor_of(rt) is jobs_supervisor and jobs_supervisor.is_alive()
            again = rt.jobs.start(
                QA, SPACE, trainset(1), "exact_match", concurrency=1, max_evaluations=2
            )
            assert again.wait(20).state == "completed"


def test_max_seconds_ends_the_job_on_time_with_its_evaluations_in_flight(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    answers = Answers(hold_from=0)  # every evaluation takes "forever"
    rt, _ = start(tmp_path / "jobs.sqlite", answers, clock=clock)
    with rt:
        job = rt.jobs.start(QA, SPACE, trainset(2), "exact_match", concurrency=4, max_seconds=1)
        try:
            answers.wait_held(4)
            clock.advance(0.5)
            assert job.status().state == "running"
            clock.advance(0.5)  # the deadline's timer fires: the job ends now
            final = job.wait(10)
            assert answers.held == 4  # its evaluations are still running: dropped
        finally:
            answers.release()
        assert (final.state, final.stop_reason) == ("completed", "max_seconds")
        assert final.elapsed <= 1.5 and (final.evaluations_done, final.tokens) == (0, 0)
        stored = rt.jobs.store.load(job.id)
        assert (stored.state, stored.trials, stored.holder.owner) == ("completed", {}, None)


def test_max_seconds_with_ten_second_evaluations_on_the_real_clock(tmp_path: Path) -> None:
    rt, provider = start(tmp_path / "jobs.sqlite")
    with rt:
        provider.latency = 10.0  # each call sleeps 10 s
        began = time.monotonic()
        job = rt.jobs.start(QA, SPACE, trainset(2), "exact_match", concurrency=2, max_seconds=1)
        final = job.wait(10)
        waited = time.monotonic() - began
    assert (final.state, final.stop_reason, final.evaluations_done) == (
        "completed", "max_seconds", 0,
    )  # fmt: skip
    assert final.elapsed <= 1.5, final.elapsed
    assert waited < 9  # not the evaluation's 10 s


def test_a_paused_job_holds_no_thread_and_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    answers = Answers(hold_from=2)
    rt, _ = start(tmp_path / "jobs.sqlite", answers)
    with rt:
        job = rt.jobs.start(
            QA, SPACE, trainset(2), "exact_match", concurrency=2, max_evaluations=4, job_id="p"
        )
        try:
            answers.wait_held(2)
            assert job.pause().state == "paused"
        finally:
            answers.release()
        # the two in flight finish, then the runner checkpoints and exits: no thread left
        wait_until(lambda: whereis(f"{rt.name}.job.p") is None, 20)
        wait_until(lambda: not supervisor_of(rt).which_children(), 20)
        status = job.status()
        assert (status.state, status.in_flight, status.evaluations_done) == ("paused", 0, 2)
        stored = rt.jobs.store.load("p")
        assert (stored.state, stored.holder.owner) == ("paused", rt.jobs.store.owner)
        assert job.pause() == status  # nothing to do
        with pytest.raises(CallTimeoutError):
            job.wait(0.05)  # paused: not ended
        calls = answers.calls
        assert job.resume().state == "running"  # a new runner from the checkpoint
        final = job.wait(20)
    assert (final.state, final.evaluations_done, final.restarts) == ("completed", 4, 0)
    assert answers.calls == calls + 2 * 2  # candidates 2 and 3 only


def test_a_paused_job_is_cancelled_without_a_runner_and_a_stop_releases_the_rest(
    tmp_path: Path,
) -> None:
    store = tmp_path / "jobs.sqlite"
    answers = Answers(hold_from=0)  # nothing finishes before the pause
    rt, _ = start(store, answers)
    with rt:
        handles = []
        for job_id in ("a", "b"):
            handle = rt.jobs.start(
                QA, SPACE, trainset(1), "exact_match", concurrency=1, max_evaluations=10,
                job_id=job_id,
            )  # fmt: skip
            handle.pause()
            handles.append(handle)
        answers.release()
        for handle in handles:
            wait_status(handle, lambda s: s.state == "paused" and s.in_flight == 0)
        wait_until(lambda: not supervisor_of(rt).which_children(), 20)
        a, b = handles
        cancelled = a.cancel()
        assert (cancelled.state, cancelled.stop_reason) == ("cancelled", "cancelled")
        assert a.wait(1) == cancelled and rt.jobs.store.load("a").state == "cancelled"
    stopped = b.wait(5)  # the runtime stopped: interrupted, its lease released
    assert (stopped.state, stopped.stop_reason) == ("interrupted", "stopped")
    again, _ = start(store)
    with again:
        stored = again.jobs.store.load("b")
        assert (stored.state, stored.holder.owner) == ("interrupted", None)
        final = again.jobs.resume("b").wait(20)  # no wait for an expiry, no force
    assert (final.state, final.evaluations_done) == ("completed", 10)


def writing(thread_prefix: str) -> bool:
    """Whether a thread named ``thread_prefix...`` is inside a job store transaction (a
    write waiting for the SQLite lock, say): nothing signals it, its stack shows it."""
    frames = sys._current_frames()
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or 0) if thread.name.startswith(thread_prefix) else None
        while frame is not None:
            if frame.f_code.co_name == "_transaction":
                return True
            frame = frame.f_back
    return False


def test_a_pause_called_while_the_next_round_is_written_starts_none_of_its_candidates(
    tmp_path: Path,
) -> None:
    answers = Answers(hold_from=0)
    rt, _ = start(tmp_path / "jobs.sqlite", answers)
    with rt:
        job = rt.jobs.start(
            QA, SPACE, trainset(1), "exact_match", concurrency=1, max_evaluations=3, seed=3
        )
        answers.wait_held(1)  # candidate 0 runs
        (record,) = rt.jobs.records()
        lock = sqlite3.connect(rt.jobs.store.path, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the store's next write waits for this
        pausing = threading.Thread(target=job.pause)
        try:
            answers.release()  # candidate 0 ends: the runner writes it with round 1 (waits)
            wait_until(lambda: writing("OptimizationRunner"), 10, "the runner's write")
            pausing.start()
            wait_until(lambda: len(record.pausing) == 1, 10, "the pause call")
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        pausing.join(10)
        status = wait_status(job, lambda s: s.state == "paused" and s.in_flight == 0)
        assert (answers.calls, status.evaluations_done) == (1, 1)  # candidate 1 never started
        stored = rt.jobs.store.load(job.id)
        assert (stored.state, sorted(stored.rounds), sorted(stored.trials)) == (
            "paused", [0, 1], [0],
        )  # fmt: skip
        assert job.resume().state == "running"
        final = job.wait(20)
    assert (final.state, final.evaluations_done, answers.calls) == ("completed", 3, 3)


def test_a_runner_whose_lease_was_taken_stops_and_its_job_reads_taken_over(
    tmp_path: Path,
) -> None:
    store = tmp_path / "jobs.sqlite"
    clock = FakeClock(epoch=time.time())
    answers, theirs = Answers(), Answers(hold_from=0)
    rt, _ = start(store, answers, clock=clock)
    thief, _ = start(store, theirs)  # its calls wait: it cannot finish before we look
    with rt, thief:
        other = rt.jobs.start(
            QA, SPACE, trainset(1), "exact_match", concurrency=1, max_evaluations=9, job_id="u"
        )
        other.pause()
        wait_status(other, lambda s: s.state == "paused" and s.in_flight == 0)
        answers.hold_from = answers.calls + 2
        job = rt.jobs.start(
            QA, SPACE, trainset(1), "exact_match", concurrency=2, max_evaluations=6, job_id="t"
        )
        try:
            answers.wait_held(2)
            taken = thief.jobs.resume("t", force=True)
            theirs.wait_held(2)
        finally:
            answers.release()
        # its next checkpoint is refused: it stops at once and writes nothing more
        lost = job.wait(10)
        assert (lost.state, lost.stop_reason) == ("taken_over", "taken_over")
        assert lost.owner == thief.jobs.store.owner.describe()
        assert lost.error is not None and "taken over" in lost.error
        with pytest.raises(JobError, match=f"taken over by {lost.owner}"):
            job.resume()
        # the paused one hears of it from the heartbeat
        thief.jobs.resume("u", force=True)
        clock.advance(rt.jobs.store.lease_seconds)
        gone = other.wait(10)
        assert (gone.state, gone.owner) == ("taken_over", thief.jobs.store.owner.describe())
        theirs.release()
        final = taken.wait(20)
        assert (final.state, final.evaluations_done) == ("completed", 6)
        stored = thief.jobs.store.load("t")
        assert sorted(stored.trials) == list(range(6))


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="RSS is read from /proc")
def test_1000_paused_jobs_hold_no_thread_and_little_memory(tmp_path: Path) -> None:
    rt, _ = start(tmp_path / "jobs.sqlite", jobs={"idle_seconds": 0.2})
    endless = {"strategy_options": {"unique": False}, "concurrency": 4}  # never runs out
    with rt:
        warm = rt.jobs.start(QA, SPACE, trainset(1), "exact_match", **endless)
        warm.pause()
        warm.cancel()
        threads, rss = threading.active_count(), rss_kib()
        handles = []
        for _ in range(1000):
            handle = rt.jobs.start(QA, SPACE, trainset(1), "exact_match", **endless)
            handle.pause()
            handles.append(handle)
        for handle in handles:
            wait_status(handle, lambda s: s.state == "paused" and s.in_flight == 0)
        wait_until(lambda: not supervisor_of(rt).which_children(), 30)
        wait_until(lambda: threading.active_count() <= threads, 10)  # idle threads retired
        grown = rss_kib() - rss
        assert threading.active_count() < 50
        assert grown < 100 * 1024, f"{grown} KiB for 1,000 paused jobs"  # 1 GiB / 10,000
        assert [h.status().state for h in handles] == ["paused"] * 1000
        assert len(rt.jobs.store.renew([r.held_lease() for r in rt.jobs.records()
                                        if r.held_lease()])) == 0  # fmt: skip
