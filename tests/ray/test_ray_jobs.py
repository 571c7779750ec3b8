"""Jobs on a Ray cluster (``executor: ray``), against a local Ray of 2 CPUs started once
(~3 s, ~1 GB; a module fixture): every test here shares it, and the module runs in one
xdist worker (``ONE_WORKER`` in tests/conftest.py), so a run starts one Ray whatever the
number of pytest workers.

Each test starts a runtime of its own (its executor places two evaluation actors, one per
CPU). The workers import the metric by reference from ``tests/ray_support.py``: this
folder is on their PYTHONPATH through the cluster's runtime environment. How a runtime
config reaches Ray (an ``address``, or none: a local Ray started at the first job) is
tested from a fresh process, ``tests/ray_driver.py``, since this one already runs Ray.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, cast

import pytest
from benchmark_runs import BENCHMARKS, run_quick
from limiter_load import window_peak
from ray_support import (
    PROGRAM,
    SLOW,
    SLOW_STEPS,
    SPACE,
    TESTS,
    TRAINSET,
    config,
    job_file,
    score,
    trials,
)
from redis_server import start_redis

import otpy
from otpy.optimize import parse_job_file
from otpy.resilience import Limit
from otpy.telemetry import Event, get_telemetry
from otpy.testing import wait_until

ray = pytest.importorskip("ray")

from otpy.ray import RayExecutor  # noqa: E402 - after the skip

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    """One local Ray for the module (xdist runs the module's tests in a row: conftest's
    ``ONE_WORKER``), shut down after its last test: an idle Ray costs about 6% of a core,
    so it does not stay up for the rest of the run. The workers find ``ray_support`` on
    their path."""
    path = os.pathsep.join(p for p in (TESTS, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
        namespace=f"otpy-tests-{uuid.uuid4().hex[:6]}",
    )
    yield
    ray.shutdown()


def _driver(*address: str) -> dict[str, Any]:
    """Run ``tests/ray_driver.py`` (a job on Ray from a fresh process); its report."""
    script = os.path.join(TESTS, "ray_driver.py")
    done = subprocess.run(
        [sys.executable, script, *address], capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return cast(dict[str, Any], json.loads(done.stdout.strip().splitlines()[-1]))


def _pool(rt: otpy.Runtime) -> RayExecutor:
    return cast(RayExecutor, rt.jobs.executor("ray"))


def _on_threads(options: dict[str, Any]) -> tuple[Any, list[tuple[Any, ...]]]:
    """The same job on this process's threads, in a runtime of its own whose provider has
    no latency (answers, tokens and scores do not depend on it): the final status and the
    trials a Ray run is compared with."""
    with otpy.start(config(f"ray-ref-{uuid.uuid4().hex[:6]}", executor="threads")) as rt:
        done = rt.jobs.start(PROGRAM, SPACE, TRAINSET, score, **options).wait(60)
        return done, trials(rt, done.job_id)


def _origins(events: list[Event]) -> dict[str, int]:
    """Events per process that emitted them (an event id starts with 12 hex digits drawn
    once per process), this one's under ``"driver"``."""
    driver = get_telemetry().emit("test.probe").event_id[:12]
    counts: dict[str, int] = {}
    for event in events:
        origin = "driver" if event.event_id.startswith(driver) else event.event_id[:12]
        counts[origin] = counts.get(origin, 0) + 1
    return counts


def test_a_200_evaluation_job_on_ray_equals_the_thread_run(tmp_path: Path) -> None:
    """50 candidates x 4 examples, the same seed, the same job file but for ``executor:
    ray``: the same trials, best and tokens; the workers' provider calls reach the
    driver's telemetry."""
    seen: list[Event] = []
    hub = get_telemetry()
    subscription = hub.subscribe(seen.append, "provider.call")
    options: dict[str, Any] = {"max_evaluations": 50, "seed": 11, "concurrency": 16}
    files = {}
    for executor in ("threads", "ray"):
        text = job_file(**options, **({"executor": executor} if executor == "ray" else {}))
        files[executor] = parse_job_file(text, tmp_path / f"{executor}.yaml")
    assert files["ray"].options.executor == "ray" and files["threads"].options.executor is None
    try:
        with otpy.start(config("ray-equal", executor="threads")) as rt:
            on_threads = rt.jobs.start(**files["threads"].start_arguments())  # the default
            on_ray = rt.jobs.start(**files["ray"].start_arguments())
            threads, remote = on_threads.wait(60), on_ray.wait(60)
            assert remote.state == threads.state == "completed"
            assert remote.evaluations_done == 50 and remote.errors == 0
            assert (remote.best_index, remote.best_score, remote.tokens) == (
                threads.best_index, threads.best_score, threads.tokens
            )  # fmt: skip
            assert trials(rt, remote.job_id) == trials(rt, threads.job_id)
            done = sum(worker["done"] for worker in _pool(rt).workers())
    finally:
        hub.unsubscribe(subscription)
    assert done == 200  # each evaluation ran once, on one of the two workers
    origins = _origins(seen)  # one call per evaluation: 200 here, 200 from the workers
    assert origins.pop("driver") == 200 and sum(origins.values()) == 200 and len(origins) == 2


def test_a_worker_killed_mid_job_loses_nothing_and_counts_nothing_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGKILL one evaluation actor's process while it runs evaluations: they are sent
    again, the job completes, and its trials (tokens included: a double count would add
    them twice) equal a thread run's."""
    slow = {"simulated": {"options": {"seed": 3, "latency": 0.05}}}
    options: dict[str, Any] = {"max_evaluations": 24, "seed": 5, "concurrency": 8}
    caplog.set_level(logging.WARNING, "otpy.jobs")
    with otpy.start(config("ray-kill", **slow)) as rt:
        pool = _pool(rt)
        handle = rt.jobs.start(PROGRAM, SPACE, TRAINSET, score, **options)
        victim = wait_until(
            lambda: next((w for w in pool.workers() if w["running"] > 0), None), 30, "busy"
        )
        os.kill(victim["pid"], signal.SIGKILL)
        remote = handle.wait(60)
        threads, reference = _on_threads(options)
        assert remote.state == "completed" and remote.evaluations_done == 24, remote
        assert remote.errors == 0 and remote.tokens == threads.tokens
        assert trials(rt, remote.job_id) == reference
        assert all(w["pid"] != victim["pid"] for w in pool.workers())  # restarted by Ray
    assert any("Ray worker was lost" in r.getMessage() for r in caplog.records)


def test_cancel_ends_the_job_and_stops_remote_work_within_a_second(
    alone: Callable[[], AbstractContextManager[None]],
) -> None:
    """A job of ten-call evaluations (0.2 s a call) with evaluations running on both
    workers and more queued: cancel returns the job cancelled at once, and within a
    second no evaluation of it runs anywhere (the running ones stop before their next
    call; the queued ones never start). The job runs while no other test does (a busy
    machine starves Ray's processes of the CPU that bound is about)."""
    slow = {"simulated": {"options": {"seed": 3, "latency": 0.2}}}
    with otpy.start(config("ray-cancel", **slow)) as rt:
        pool = _pool(rt)
        warm = rt.jobs.start(PROGRAM, SPACE, TRAINSET[:1], score, max_evaluations=1)
        assert warm.wait(60).state == "completed"  # the actors are up before the quiet part
        before = sum(w["done"] for w in pool.workers())
        with alone():
            handle = rt.jobs.start(
                SLOW, {"instruction": SPACE["instruction"]}, TRAINSET, score, concurrency=48,
                max_evaluations=40, strategy_options={"unique": False},
            )  # fmt: skip
            wait_until(lambda: all(w["running"] > 0 for w in pool.workers()), 30, "running")
            started = time.monotonic()
            status = handle.cancel()
            assert status.state == "cancelled" and status.in_flight == 0

            # when the last evaluation ended, by the workers' clocks (one machine: one
            # monotonic clock), not when this thread, asking over Ray, got to hear of it
            def stopped() -> list[dict[str, Any]] | None:
                workers = pool.workers()
                return workers if sum(w["running"] for w in workers) == 0 else None

            workers = wait_until(stopped, 10.0, "stopped")
        assert max(w["ended_at"] for w in workers) - started < 1.0
        done = sum(w["done"] for w in workers) - before
        assert done <= 2 * 16  # at most what ran at once (2 actors x 16 threads): none queued ran
        assert handle.status().evaluations_done == 0  # nothing came back after the cancel
    assert SLOW_STEPS * 0.2 > 1.0  # an evaluation left to finish would have taken longer


def test_pause_stops_submitting_and_resume_finishes_the_same_job(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Paused, the job's in-flight evaluations finish and nothing more is sent; resumed,
    it completes with the trials a thread run checkpoints. At its start, one warning names
    the provider whose limits each worker would keep alone (``fast``: in memory; it has
    the lower priority, so no call goes to it)."""
    providers = {
        "simulated": {"options": {"seed": 3, "latency": 0.1}},
        "fast": {"priority": -1, "limits": {"rpm": 600}},
    }
    options: dict[str, Any] = {"max_evaluations": 12, "seed": 9, "concurrency": 4}
    caplog.set_level(logging.WARNING, "otpy.jobs")
    settings = config("ray-pause", **providers)
    settings["jobs"]["executor"]["workers"] = 1  # one actor process is enough here
    with otpy.start(settings) as rt:
        pool = _pool(rt)
        handle = rt.jobs.start(PROGRAM, SPACE, TRAINSET, score, **options)
        wait_until(lambda: handle.status().evaluations_done >= 2, 30, "two candidates")
        handle.pause()
        paused = wait_until(
            lambda: (s := handle.status()).in_flight == 0 and s.state == "paused" and s, 10,
            "drained",
        )  # fmt: skip
        assert paused.evaluations_done < 12  # it paused mid-job
        # Nothing of the job left anywhere: not queued in the driver, not on an actor, so
        # nothing more can run until it is resumed.
        assert pool.pool.waiting() == 0 and sum(w["busy"] for w in pool.workers()) == 0
        assert sum(w["running"] for w in pool.workers()) == 0
        done = sum(w["done"] for w in pool.workers())
        assert done >= paused.evaluations_done * len(TRAINSET)
        handle.resume()
        remote = handle.wait(60)
        assert remote.state == "completed" and remote.evaluations_done == 12
        assert sum(w["done"] for w in pool.workers()) == 12 * len(TRAINSET)  # each ran once
        assert trials(rt, remote.job_id) == _on_threads(options)[1]
    warnings = [r.getMessage() for r in caplog.records if "on executor 'ray'" in r.getMessage()]
    assert len(warnings) == 1 and "providers limited in memory (fast)" in warnings[0]


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield from start_redis()


def test_two_workers_and_the_driver_keep_one_redis_limit(redis_url: str) -> None:
    """A provider limited to 20 requests a second on Redis, called by a job on both Ray
    workers and a job on the driver's threads at once: the admissions the limiter
    recorded (the Redis server's clock) never hold more than 20 in any rolling second."""
    limited = {"limited": {"limits": {"rps": 20, "storage": redis_url, "timeout": None}}}
    seen: list[Event] = []
    lock = threading.Lock()

    def keep(event: Event) -> None:
        with lock:
            seen.append(event)

    hub = get_telemetry()
    subscription = hub.subscribe(keep, "provider.call")
    options: dict[str, Any] = {"max_evaluations": 6, "seed": 2, "concurrency": 8}
    try:
        with otpy.start(config("ray-limit", **limited)) as rt:
            on_ray = rt.jobs.start(PROGRAM, SPACE, TRAINSET, score, **options)
            on_driver = rt.jobs.start(PROGRAM, SPACE, TRAINSET[:2], score, executor="threads",
                                      **options)  # fmt: skip
            assert on_ray.wait(60).state == on_driver.wait(60).state == "completed"
            workers = _pool(rt).workers()
    finally:
        hub.unsubscribe(subscription)
    origins = _origins(seen)
    assert origins.pop("driver") == 12 and sorted(origins.values()) == sorted(
        w["done"] for w in workers
    )  # the driver's 12 calls, and each worker's, all reported here
    assert len(seen) == 24 + 12 and all(w["done"] > 0 for w in workers)
    timeline = [(e.measurements["admitted_at"], {"requests": 1}) for e in seen]
    peak = window_peak(timeline, Limit("requests", "20/second"))
    assert peak == 20  # the limit bound (36 calls in about 2 s), and was never exceeded


def test_the_runtime_config_joins_the_cluster_its_address_names() -> None:
    """``jobs.executor: {type: ray, address: <this module's cluster>}`` in another process:
    Ray is connected when the first job needs it, not before; the job runs on this
    cluster's node and needs no ``executor=``; the runtime's stop disconnects it and
    leaves the cluster up."""
    here = ray.get_runtime_context()
    report = _driver(here.gcs_address)
    assert report["state"] == "completed" and report["evaluations"] == 2, report
    assert report["initialized_before"] is False and report["initialized_after"] is False
    assert report["gcs"] == here.gcs_address and report["nodes"] == [here.get_node_id()]
    assert ray.is_initialized() and ray.get(ray.put(1)) == 1  # the cluster is still up


@pytest.mark.slow
def test_the_ray_benchmark_runs_quick_on_this_cluster() -> None:
    """``benchmarks/jobs.py --quick --executor ray`` runs to its end on this module's
    cluster (``--address``: no second Ray started); its figures are not checked here."""
    address = ray.get_runtime_context().gcs_address
    done = run_quick(BENCHMARKS / "jobs.py", "--executor", "ray", "--address", address,
                     timeout=110)  # fmt: skip
    assert "skipped:" not in done.stdout, done.stdout[-2000:]
    assert f"joined {address}" in done.stdout


def test_with_no_address_a_local_ray_starts_when_a_job_needs_it() -> None:
    """No ``address`` and no Ray in the process: the first job starts a local Ray (not
    this module's), and the runtime's stop shuts it down."""
    report = _driver()
    assert report["state"] == "completed" and report["evaluations"] == 2, report
    assert report["initialized_before"] is False and report["initialized_after"] is False
    here = ray.get_runtime_context()
    assert report["gcs"] != here.gcs_address
    assert len(report["nodes"]) == 1 and report["nodes"] != [here.get_node_id()]
