"""Optimization jobs through ``rt.jobs``: status while evaluations run, pause, resume and
cancel, many jobs at once, rate limits shared by jobs, budgets, failed examples, the
strategies end to end, bad input, and jobs listed from the store.

Evaluations are held at the simulated provider (:class:`job_support.Answers`) where a test
needs them in flight; nothing waits on a sleep."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from job_support import (
    PROVIDER,
    QA,
    RAISING_METRIC,
    SPACE,
    Answers,
    candidates,
    config_key,
    start,
    trainset,
    wait_status,
)

from otpy.errors import ConfigurationError, JobError, UnknownStepError
from otpy.optimize._evaluate import examples_for
from otpy.supervision import whereis
from otpy.testing import FakeClock, wait_until

WRONG = [f"Always wrong {n}." for n in range(1, 5)]
COLD: dict[str, Any] = {"temperature": [0.0]}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "jobs.sqlite"


def job_children(rt: Any) -> int:
    """How many jobs run under the runtime's job supervisor."""
    supervisor = whereis(rt.jobs_supervisor)
    assert supervisor is not None
    return len(supervisor.which_children())


# -- status, pause, resume, cancel -------------------------------------------------------------


def test_status_answers_at_once_while_32_evaluations_are_in_flight(store: Path) -> None:
    answers = Answers(hold_from=0)
    rt, _ = start(store, answers)
    with rt:
        job = rt.jobs.start(
            QA, SPACE, trainset(4), "exact_match", concurrency=32, max_evaluations=16, seed=3
        )
        try:
            answers.wait_held(32)
            wait_status(job, lambda s: s.in_flight == 32)  # published after the submissions
            began = time.monotonic()
            statuses = [job.status() for _ in range(100)]
            spent = time.monotonic() - began
            assert spent < 1.0, f"100 status() calls took {spent:.3f} s"
            for status in statuses:
                assert (status.state, status.in_flight, status.evaluations_done) == (
                    "running",
                    32,
                    0,
                )
            assert answers.calls == 32  # never more than the concurrency
            # the runner's mailbox is free too: a call through it answers meanwhile
            assert job.pause().in_flight == 32
            assert job.resume().state == "running"
        finally:
            answers.release()
        final = job.wait(20)
    assert (final.state, final.evaluations_done, final.in_flight) == ("completed", 16, 0)
    assert answers.calls == 16 * 4


def test_pause_starts_no_new_evaluation_keeps_the_ones_in_flight_and_resume_goes_on(
    store: Path,
) -> None:
    answers = Answers(hold_from=0)
    rt, _ = start(store, answers)
    with rt:
        job = rt.jobs.start(
            QA, SPACE, trainset(2), "exact_match", concurrency=2, max_evaluations=5, seed=5
        )
        try:
            answers.wait_held(2)  # candidate 0's two examples
            paused = job.pause()
            assert (paused.state, paused.in_flight) == ("paused", 2)
            assert job.status().state == "paused"
        finally:
            answers.release()
        settled = wait_status(job, lambda s: s.in_flight == 0)
        assert job.pause().state == "paused"  # a call: every result before it is handled
        status = job.status()
        assert (status.state, status.in_flight) == ("paused", 0)
        assert status.evaluations_done == 1 == settled.evaluations_done  # kept
        kept = job.best()
        assert kept is not None and kept.index == 0
        assert answers.calls == 2  # nothing new started while paused
        stored = rt.jobs.store.load(job.id)
        assert (stored.state, sorted(stored.trials)) == ("paused", [0])

        assert job.resume().state == "running"
        final = job.wait(10)
        assert (final.state, final.evaluations_done) == ("completed", 5)
        assert answers.calls == 5 * 2
        with pytest.raises(JobError, match="completed"):
            job.pause()
        with pytest.raises(JobError, match="completed"):
            job.resume()
        assert job.cancel() == final  # cancelling a finished job only reports it


def test_cancel_ends_the_job_keeping_the_best_so_far(store: Path) -> None:
    answers = Answers(free=candidates(5, 1))  # candidate 0 runs, the others' calls wait
    rt, _ = start(store, answers)
    with rt:
        job = rt.jobs.start(
            QA, SPACE, trainset(2), "exact_match", concurrency=2, max_evaluations=5, seed=5
        )
        try:
            answers.wait_held(2)  # candidate 1 is in flight
            wait_status(job, lambda s: s.evaluations_done == 1)
            best = job.best()
            assert best is not None and best.index == 0
            cancelled = job.cancel()
            assert cancelled.state == "cancelled"
            final = job.wait(5)  # returns although two evaluations are still held
        finally:
            answers.release()
        assert (final.state, final.evaluations_done, final.best_index) == ("cancelled", 1, 0)
        assert final.best_score == best.score and job.best() == best
        wait_until(lambda: whereis(f"{rt.name}.job.{job.id}") is None)  # the runner ends
        assert rt.jobs.get(job.id).status().state == "cancelled"
        assert rt.jobs.store.load(job.id).state == "cancelled"
        with pytest.raises(JobError, match="cancelled"):
            job.resume()
        with pytest.raises(JobError, match="cancelled"):
            job.pause()
        assert job.cancel() == final


# -- many jobs, shared limits ------------------------------------------------------------------


def test_100_concurrent_jobs_in_one_runtime_all_finish(store: Path) -> None:
    answers = Answers(hold_from=0)
    rt, provider = start(store, answers)
    with rt:
        try:
            jobs = [
                rt.jobs.start(
                    QA,
                    SPACE,
                    trainset(2),
                    "exact_match",
                    concurrency=2,
                    max_evaluations=3,
                    seed=i,
                    job_id=f"many-{i:03d}",
                )
                for i in range(100)
            ]
            answers.wait_held(200, timeout=30)  # every job has its two evaluations running
            assert job_children(rt) == 100
        finally:
            answers.release()
        finals = [job.wait(30) for job in jobs]
        listed = rt.jobs.list()
    assert [(f.state, f.evaluations_done) for f in finals] == [("completed", 3)] * 100
    assert provider.calls == 100 * 3 * 2
    assert [s.job_id for s in listed] == [f"many-{i:03d}" for i in range(100)]
    assert all(s.state == "completed" for s in listed)


def test_a_rate_limit_shared_by_all_jobs_is_never_exceeded(store: Path) -> None:
    clock = FakeClock()
    answers = Answers(clock=clock)  # records the (fake) time of every call
    rpm = 5
    rt, _ = start(store, answers, clock=clock, limits={"rpm": rpm})
    with rt:
        jobs = [
            rt.jobs.start(
                QA, SPACE, trainset(2), "exact_match", concurrency=2, max_evaluations=4, seed=i
            )
            for i in range(4)
        ]  # 32 calls, up to 8 at once, 5 a minute
        limiter = rt.providers.get_provider(PROVIDER).limiter
        assert limiter is not None

        def finished() -> bool:
            return all(job.status().finished for job in jobs)

        def window_full() -> bool:
            # a caller waits, the minute is used up, and every call admitted has reached
            # the provider: moving the clock now cannot change when a call happened
            stats = limiter.statistics()
            return (
                stats.waiting > 0
                and stats.buckets[0].remaining == 0
                and stats.acquired == answers.calls
            )

        while not finished():
            wait_until(lambda: finished() or window_full(), 10, "a full window or the end")
            if finished():
                break
            admitted = limiter.statistics().acquired
            clock.advance(61)
            wait_until(lambda n=admitted: limiter.statistics().acquired > n, 10, "an admission")
        finals = [job.wait(10) for job in jobs]
        waited = limiter.statistics().waited
    assert [(f.state, f.evaluations_done) for f in finals] == [("completed", 4)] * 4
    assert answers.calls == len(answers.times) == 32
    times = answers.times
    busiest = max(sum(1 for t in times if t0 <= t < t0 + 60) for t0 in times)
    assert busiest == rpm  # reached, never exceeded, in any minute
    assert waited > 0 and clock.monotonic() >= 6 * 61  # 32 calls need 7 minutes


# -- budgets and failures ----------------------------------------------------------------------


def test_max_evaluations_bounds_the_candidates(store: Path) -> None:
    rt, provider = start(store)
    with rt:
        job = rt.jobs.start(
            QA, SPACE, trainset(3), "exact_match", concurrency=3, max_evaluations=7, seed=2
        )
        final = job.wait(10)
        trials = rt.jobs.store.load(job.id).trials
    assert (final.state, final.evaluations_done, final.evaluations_total) == ("completed", 7, 7)
    assert sorted(trials) == list(range(7)) and provider.calls == 7 * 3
    assert len({config_key(t.configuration) for t in trials.values()}) == 7  # no repeats


def test_max_tokens_stops_the_job_at_the_example_that_reaches_it(store: Path) -> None:
    rt, provider = start(store)
    with rt:
        job = rt.jobs.start(
            QA,
            SPACE,
            trainset(3),
            "exact_match",
            concurrency=1,
            max_evaluations=10,
            max_tokens=40,
            seed=2,
        )
        final = job.wait(10)
        trials = rt.jobs.store.load(job.id).trials
    stats = provider.statistics()
    assert final.state == "completed" and final.evaluations_done < 10
    assert final.tokens == stats.input_tokens + stats.output_tokens >= 40
    largest = max(e.tokens for t in trials.values() for e in t.examples)
    assert final.tokens - largest < 40  # one call at a time: none after the one that reached it
    assert sum(t.tokens for t in trials.values()) <= final.tokens


def test_max_seconds_ends_the_job_at_its_deadline_dropping_what_is_in_flight(
    store: Path,
) -> None:
    clock = FakeClock()
    answers = Answers(hold_from=2)
    rt, _ = start(store, answers, clock=clock)
    with rt:
        job = rt.jobs.start(
            QA,
            SPACE,
            trainset(2),
            "exact_match",
            concurrency=1,
            max_evaluations=6,
            max_seconds=50,
            seed=3,
        )
        try:
            answers.wait_held(1)  # candidate 1's first example
            assert job.status().evaluations_done == 1
            clock.advance(60)  # the deadline's timer fires at 50
            final = job.wait(10)  # at once: the held evaluation is dropped, not waited for
        finally:
            answers.release()
    assert (final.state, final.evaluations_done, final.stop_reason) == (
        "completed", 1, "max_seconds",
    )  # fmt: skip
    assert final.elapsed >= 50 and answers.calls == 3  # nothing started past the budget


def test_target_score_stops_early(store: Path) -> None:
    space = {"instruction": [WRONG[0], WRONG[1], "Always right.", WRONG[2], WRONG[3]], **COLD}
    rt, provider = start(store)
    with rt:
        job = rt.jobs.start(
            QA, space, trainset(2), "exact_match", "grid", concurrency=1, target_score=1.0
        )
        final = job.wait(10)
    assert (final.state, final.evaluations_done, final.best_index) == ("completed", 3, 2)
    assert final.best_score == 1.0
    assert final.best_configuration == {"instruction": "Always right.", "temperature": 0.0}
    assert provider.calls == 3 * 2


def test_patience_stops_after_rounds_without_improvement(store: Path) -> None:
    space = {"instruction": ["Always right.", *WRONG], **COLD}
    rt, provider = start(store)
    with rt:
        job = rt.jobs.start(
            QA,
            space,
            trainset(2),
            "exact_match",
            "grid",
            concurrency=1,
            batch_size=1,
            patience=2,
        )
        final = job.wait(10)
    assert (final.state, final.evaluations_done, final.best_index) == ("completed", 3, 0)
    assert provider.calls == 3 * 2


def test_max_errors_aborts_the_candidate_not_the_job(store: Path) -> None:
    space = {"instruction": [WRONG[0], "Always right.", WRONG[1]], **COLD}
    answers = Answers()
    rt, _ = start(store, answers)
    with rt:
        job = rt.jobs.start(
            QA, space, trainset(4), RAISING_METRIC, "grid", concurrency=1, max_errors=1
        )  # the metric raises on every wrong answer
        final = job.wait(10)
        trials = rt.jobs.store.load(job.id).trials
    assert (final.state, final.evaluations_done, final.aborted, final.errors) == (
        "completed",
        3,
        2,
        4,
    )
    assert [(t.status, t.score, t.errors) for t in map(trials.get, range(3))] == [
        ("aborted", None, 2),
        ("completed", 1.0, 0),
        ("aborted", None, 2),
    ]
    assert final.best_configuration == {"instruction": "Always right.", "temperature": 0.0}
    # one call at a time: an aborted candidate stops at its (max_errors + 1)th failure
    assert answers.per_config[(WRONG[0], 0.0)] == answers.per_config[(WRONG[1], 0.0)] == 2
    assert answers.per_config[("Always right.", 0.0)] == 4


def test_a_crashed_step_or_a_raising_metric_fails_that_example_alone(store: Path) -> None:
    space = {"instruction": ["Always right.", WRONG[0]], **COLD}
    answers = Answers()
    rt, _ = start(store, answers)
    with rt:
        job = rt.jobs.start(
            QA, space, trainset(3, crash=(1,)), RAISING_METRIC, "grid", concurrency=3
        )
        final = job.wait(10)
        trials = rt.jobs.store.load(job.id).trials
    right, wrong = trials[0], trials[1]
    assert final.state == "completed" and final.errors == 1 + 3
    assert (right.status, right.score, right.errors) == ("completed", pytest.approx(2 / 3), 1)
    crashed = right.examples[1]
    assert crashed.score is None and crashed.error is not None
    assert "RuntimeError" in crashed.error and "shaky step crashed" in crashed.error
    assert [e.score for e in right.examples] == [1.0, None, 1.0]
    assert (wrong.status, wrong.score, wrong.errors) == ("completed", 0.0, 3)
    assert all("ValueError: cannot score" in (e.error or "") for e in wrong.examples[::2])
    # the crashed example never reached the provider; the others ran once each
    assert answers.per_config == {("Always right.", 0.0): 2, (WRONG[0], 0.0): 2}


def test_tokens_and_cost_are_counted(store: Path) -> None:
    rt, provider = start(store)
    with rt:
        job = rt.jobs.start(
            QA,
            SPACE,
            trainset(3),
            "exact_match",
            concurrency=2,
            max_evaluations=4,
            seed=9,
            prices={PROVIDER: (2.0, 10.0)},
        )
        final = job.wait(10)
        trials = rt.jobs.store.load(job.id).trials
    stats = provider.statistics()
    assert stats.input_tokens > 0 and stats.output_tokens > 0
    assert final.tokens == stats.input_tokens + stats.output_tokens
    assert final.tokens == sum(t.tokens for t in trials.values())
    expected = (stats.input_tokens * 2.0 + stats.output_tokens * 10.0) / 1e6
    assert final.cost == pytest.approx(expected)
    assert sum(t.cost for t in trials.values()) == pytest.approx(expected)  # checkpointed
    again, _ = start(store)
    with again:  # another runtime reads the cost from the store
        assert again.jobs.get(job.id).status().cost == pytest.approx(expected)


def test_a_minibatch_scores_each_candidate_on_its_seeded_sample(store: Path) -> None:
    rt, provider = start(store)
    with rt:
        job = rt.jobs.start(
            QA,
            SPACE,
            trainset(6),
            "exact_match",
            concurrency=2,
            max_evaluations=5,
            minibatch=2,
            seed=4,
        )
        final = job.wait(10)
        trials = rt.jobs.store.load(job.id).trials
    assert final.evaluations_done == 5 and provider.calls == 5 * 2
    chosen = {i: [e.example for e in t.examples] for i, t in trials.items()}
    assert chosen == {i: examples_for(6, 2, 4, i) for i in range(5)}
    assert len({tuple(c) for c in chosen.values()}) > 1  # not one sample for all


# -- the strategies end to end -----------------------------------------------------------------

SMALL = {"instruction": ["Always right.", WRONG[0]], "temperature": [0.0, 1.0]}


def test_grid_search_runs_the_whole_grid(store: Path) -> None:
    rt, provider = start(store)
    with rt:
        final = rt.jobs.start(QA, SMALL, trainset(2), "exact_match", "grid").wait(10)
    assert (final.state, final.evaluations_done, final.evaluations_total) == ("completed", 4, 4)
    assert final.best_score == 1.0 and final.best_index == 0
    assert final.best_configuration == {"instruction": "Always right.", "temperature": 0.0}
    assert provider.calls == 4 * 2


def test_tpe_runs_end_to_end(store: Path) -> None:
    pytest.importorskip("optuna")
    space = {"instruction": ["Always right.", *WRONG], "temperature": {"low": 0.0, "high": 1.0}}
    rt, provider = start(store)
    with rt:
        job = rt.jobs.start(
            QA, space, trainset(2), "exact_match", "tpe", concurrency=2, max_evaluations=6, seed=1
        )
        final = job.wait(20)
        trials = rt.jobs.store.load(job.id).trials
    assert (final.state, final.evaluations_done) == ("completed", 6)
    assert provider.calls == 6 * 2
    for trial in trials.values():
        assert 0.0 <= trial.configuration["temperature"] <= 1.0
        assert trial.score == (
            1.0 if trial.configuration["instruction"] == "Always right." else 0.0
        )


DEMO_QA = QA.replace(
    '    temperature: "{{ vars.temperature }}"\n', '    system: "Examples: {{ vars.demos }}"\n'
)


def test_bootstrap_fewshot_takes_demos_from_passing_traces(store: Path) -> None:
    pool = [{"inputs": {"q": f"{n}+{n}"}, "output": {"answer": str(2 * n)}} for n in (10, 20, 30)]
    space = {"instruction": ["Always right."], "demos": {"demos": pool, "k": 2}}
    answers = Answers()
    rt, _ = start(store, answers)
    with rt:
        job = rt.jobs.start(
            DEMO_QA,
            space,
            trainset(3),
            "exact_match",
            "bootstrap_fewshot",
            concurrency=2,
            batch_size=2,
            max_evaluations=4,
            seed=3,
        )
        final = job.wait(20)
        trials = rt.jobs.store.load(job.id).trials
        requests = rt.providers.get_provider(PROVIDER).provider.requests
    assert (final.state, final.evaluations_done) == ("completed", 4)
    assert [t.round for t in map(trials.get, sorted(trials))] == [0, 0, 1, 1]
    passing = [{"inputs": e["inputs"], "output": {"answer": e["expected"]}} for e in trainset(3)]
    for trial in trials.values():
        if trial.round == 0:
            assert len(trial.configuration["demos"]) == 2
            assert all(d in pool for d in trial.configuration["demos"])
        else:  # from the traces that passed (then the pool): two of them
            demos = trial.configuration["demos"]
            assert len(demos) == 2 and all(d in [*passing, *pool] for d in demos)
            assert any(d in passing for d in demos)
    assert any(r.system and '"q": "0+1"' in r.system for r in requests)  # demos in the prompt


# -- bad input ---------------------------------------------------------------------------------


def test_bad_input_is_refused_with_a_clear_error_and_nothing_starts(store: Path) -> None:
    rt, provider = start(store)
    with rt:
        with pytest.raises(ConfigurationError, match="space variable 'instruction'"):
            rt.jobs.start(QA, {"instruction": []}, trainset(2), "exact_match")
        with pytest.raises(ConfigurationError, match="did you mean 'random_search'"):
            rt.jobs.start(QA, SPACE, trainset(2), "exact_match", "random_serch")
        with pytest.raises(ConfigurationError, match="unknown option 'shufle'"):
            options = {"shufle": True}
            rt.jobs.start(QA, SPACE, trainset(2), "exact_match", "grid", strategy_options=options)
        with pytest.raises(UnknownStepError, match="did you mean 'claude'"):
            rt.jobs.start(QA.replace("type: claude", "type: claud"), SPACE, trainset(2), "contains")
        with pytest.raises(ConfigurationError, match="unknown metric 'exact'"):
            rt.jobs.start(QA, SPACE, trainset(2), "exact")
        with pytest.raises(JobError, match="no job 'nope'"):
            rt.jobs.resume("nope")
        with pytest.raises(JobError, match="no job 'nope'"):
            rt.jobs.get("nope")
        assert rt.jobs.list() == [] and rt.jobs.store.job_ids() == []
        assert job_children(rt) == 0 and provider.calls == 0

        first = rt.jobs.start(QA, SPACE, trainset(2), "exact_match", max_evaluations=1, job_id="j")
        first.wait(10)
        wait_until(lambda: job_children(rt) == 0, 20)  # its runner's supervisor exits after it
        calls = provider.calls
        with pytest.raises(JobError, match="'j' already exists"):
            rt.jobs.start(QA, SPACE, trainset(2), "exact_match", job_id="j")
        assert provider.calls == calls and job_children(rt) == 0
        lambda_job = rt.jobs.start(
            QA, SPACE, trainset(2), lambda example, result: 1.0, max_evaluations=1, job_id="f"
        )
        lambda_job.wait(10)
        wait_until(lambda: job_children(rt) == 0, 20)
        calls = provider.calls
        with pytest.raises(JobError, match="'f' is completed; nothing to resume"):
            rt.jobs.resume("f")  # (tests/test_jobs_owner.py: the metric of an interrupted job)
        assert provider.calls == calls and job_children(rt) == 0
        assert [s.job_id for s in rt.jobs.list()] == ["f", "j"]


def test_a_bad_job_option_is_a_configuration_error(store: Path) -> None:
    rt, _ = start(store)
    with rt:
        with pytest.raises(ConfigurationError, match="concurrency"):
            rt.jobs.start(QA, SPACE, trainset(2), "exact_match", concurrency=0)
        with pytest.raises(ConfigurationError, match="trainset"):
            rt.jobs.start(QA, SPACE, [{"q": "1+1"}], "exact_match")
        assert rt.jobs.list() == [] and job_children(rt) == 0


# -- jobs listed from the store, interrupted by a stop -----------------------------------------


def test_list_and_get_show_live_and_stored_jobs_and_a_stopped_job_resumes(
    store: Path,
) -> None:
    rt, _ = start(store)
    with rt:
        done = rt.jobs.start(
            QA, SPACE, trainset(2), "exact_match", max_evaluations=2, seed=1, job_id="done"
        ).wait(10)

    answers = Answers(free=candidates(1, 1))  # candidate 0 runs, the others' calls wait
    rt, _ = start(store, answers)
    with rt:
        job = rt.jobs.start(
            QA,
            SPACE,
            trainset(2),
            "exact_match",
            concurrency=2,
            max_evaluations=4,
            seed=1,
            job_id="live",
        )
        try:
            answers.wait_held(2)
            wait_status(job, lambda s: (s.evaluations_done, s.in_flight) == (1, 2))
            assert rt.jobs.get("live") is job
            stored = rt.jobs.get("done")
            fields = ("state", "evaluations_done", "best_score", "best_configuration", "tokens")
            assert [getattr(stored.status(), f) for f in fields] == [
                getattr(done, f) for f in fields
            ]
            best = stored.best()
            assert best is not None and best.score == done.best_score
            listed = {s.job_id: s for s in rt.jobs.list()}
            assert sorted(listed) == ["done", "live"]
            assert (listed["done"].state, listed["done"].evaluations_done) == ("completed", 2)
            assert (listed["live"].state, listed["live"].in_flight) == ("running", 2)
            first = job.best()
            assert first is not None
        finally:
            rt.stop()  # with two evaluations held: the job is interrupted
            answers.release()
    interrupted = job.wait(5)
    assert (interrupted.state, interrupted.evaluations_done) == ("interrupted", 1)

    answers = Answers()
    rt, _ = start(store, answers)
    with rt:
        again = rt.jobs.get("live")
        assert (again.status().state, again.status().evaluations_done) == ("interrupted", 1)
        assert {s.job_id: s.state for s in rt.jobs.list()} == {
            "done": "completed",
            "live": "interrupted",
        }
        with pytest.raises(JobError, match="interrupted"):
            again.pause()
        resumed = rt.jobs.resume("live")
        final = resumed.wait(10)
        assert (final.state, final.evaluations_done) == ("completed", 4)
        assert rt.jobs.get("live") is resumed
    assert answers.calls == 3 * 2  # candidate 0 was checkpointed: not evaluated again
    assert answers.per_config[config_key(first.configuration)] == 0
