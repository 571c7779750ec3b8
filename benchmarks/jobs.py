"""otpy's optimization jobs: evaluation overhead against the ideal and against the same
plan on a bare thread pool, the cost per evaluation at 1,000 / 10,000 / 100,000
evaluations (flat?), ``status()`` latency while evaluations run, the checkpoint's cost
against a bare sqlite3 insert, threads and memory per paused job, and lease renewal.

With ``--executor ray`` it runs the Ray section alone (the same job on a local Ray and on
threads, and the driver's memory per evaluation in flight; ``--quick``: small, and skipped,
saying so, if Ray cannot start in a few seconds; ``--address``: on that cluster instead of
a local Ray); without it, every other section.

Run from the repo root:
``.venv/bin/python benchmarks/jobs.py [--quick] [--executor ray [--address GCS]]``.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from _harness import percentiles, row, run, verdict
from _jobs_ray import PROGRAM, bench_ray
from _jobs_store import bench_checkpoint, bench_renewal

import otpy
from otpy.actors import JobHandle
from otpy.optimize import SearchSpace, make_strategy
from otpy.pipelines import run_plan
from otpy.providers import CompletionRequest, SimulatedProvider

SEED = 7
CONCURRENCY = 32
LATENCY = 0.05
INSTRUCTIONS = ["Answer briefly.", "Think step by step, then answer.", "Reply with a number only."]
SPACE: dict[str, Any] = {"temperature": {"low": 0.0, "high": 1.5}, "instruction": INSTRUCTIONS}
TRAINSET: list[dict[str, Any]] = [{"inputs": {"question": "What is 2 + 2?"}, "expected": "4"}]
GOALS: list[tuple[str, str, str, bool]] = []
"""The summary: (measure, figure, goal, met)."""


def answer(request: CompletionRequest) -> str:
    """The simulated model: right (exact_match) only when told to reply with a number and
    cool enough, so the job has a best configuration to find."""
    if "number only" in (request.prompt or "") and (request.temperature or 0.0) < 0.7:
        return "4"
    return "The answer is four."


def runtime(store: str, latency: float, **jobs: Any) -> tuple[otpy.Runtime, SimulatedProvider]:
    """A runtime whose only provider is a simulated one we hold (to count its calls)."""
    provider = SimulatedProvider(seed=SEED, latency=latency, responses=answer, keep_requests=0)
    name = f"bench-{uuid.uuid4().hex[:6]}"
    rt = otpy.start({"name": name, "plugins": False, "jobs_store": store, "jobs": jobs})
    try:  # replaces the embedded default of the same name
        rt.providers.register_provider(
            "simulated", provider, limits={"timeout": None}, replace=True
        )
    except BaseException:
        rt.stop()
        raise
    return rt, provider


def start_job(rt: otpy.Runtime, evaluations: int | None, **options: Any) -> JobHandle:
    return rt.jobs.start(
        PROGRAM, SPACE, TRAINSET, "exact_match",
        max_evaluations=evaluations, seed=SEED, **{"concurrency": CONCURRENCY, **options},
    )  # fmt: skip


# -- 1. evaluation overhead and cost per evaluation -------------------------------------------

Kind = Callable[[int], None]
"""Runs ``count`` one-example candidates and checks them."""


def contenders(rt: otpy.Runtime, n: int, pool: ThreadPoolExecutor) -> dict[str, Kind]:
    """The job and its baseline: the same configurations (from the job's strategy and seed)
    run by ``run_plan`` on a bare ThreadPoolExecutor(32)."""
    space = SearchSpace.parse(SPACE)
    configurations = make_strategy("random_search", space, seed=SEED).propose(
        [], n, start=0, round=0
    )
    plan, providers, inputs = rt.compile_pipeline(PROGRAM), rt.providers, TRAINSET[0]["inputs"]

    def bare(count: int) -> None:
        futures = [
            pool.submit(run_plan, plan, inputs, providers=providers, variables=c)
            for c in configurations[:count]
        ]
        assert all(future.result(600).status == "completed" for future in futures)

    def job(count: int) -> None:
        status = start_job(rt, count).wait(3600)
        assert status.state == "completed" and status.evaluations_done == count, status

    return {"run_plan on a bare ThreadPoolExecutor(32)": bare, "rt.jobs.start(...).wait()": job}


def measure(
    kinds: dict[str, Kind], sim: SimulatedProvider, sizes: list[int]
) -> dict[str, list[tuple[float, float]]]:
    """(wall s, process CPU s) per kind for each size (interleaved, the order flipped each
    time), after a warm-up; checks one provider call per evaluation."""
    per: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
    for fn in kinds.values():
        fn(2 * CONCURRENCY)
    for r, size in enumerate(sizes):
        for name in list(kinds) if r % 2 == 0 else list(kinds)[::-1]:
            gc.collect()
            calls, cpu, t = sim.calls, time.process_time(), time.perf_counter()
            kinds[name](size)
            per[name].append((time.perf_counter() - t, time.process_time() - cpu))
            assert sim.calls - calls == size, (name, sim.calls - calls)
    return per


def bench_throughput(folder: Path, n: int, rounds: int) -> None:
    rt, sim = runtime(str(folder / "throughput.sqlite"), LATENCY)
    with rt, ThreadPoolExecutor(CONCURRENCY) as pool:
        per = measure(contenders(rt, n, pool), sim, [n] * rounds)
    ideal = n * LATENCY / CONCURRENCY
    title = (
        f"1. {n:,} evaluations (one provider call each, checked), simulated provider "
        f"{LATENCY * 1000:.0f} ms/call, concurrency {CONCURRENCY}: ideal {ideal * 1000:.0f} ms "
        f"(in waves of {CONCURRENCY}: {math.ceil(n / CONCURRENCY) * LATENCY * 1000:.0f} ms); "
        f"median of {rounds} rounds"
    )
    row("", "wall ms", "best ms", "cpu ms", "wall/ideal", "goal", "", title=title, w=54, cell=12)
    job = statistics.median(v[0] for v in per["rt.jobs.start(...).wait()"]) / ideal
    for name, values in per.items():
        wall = statistics.median(v[0] for v in values)
        cells = (f"{wall * 1000:.0f}", f"{min(v[0] for v in values) * 1000:.0f}")
        cpu = statistics.median(v[1] for v in values)
        goal = ("<= 1.05x", verdict(job <= 1.05)) if name.startswith("rt.jobs") else ("-", "")
        row(name, *cells, f"{cpu * 1000:.0f}", f"{wall / ideal:.2f}x", *goal, w=54, cell=12)
    GOALS.append((f"{n:,} evaluations x 50 ms @32 vs ideal", f"{job:.2f}x", "<= 1.05x",
                  job <= 1.05))  # fmt: skip


def bench_cost(folder: Path, sizes: list[int], rounds: int) -> None:
    """CPU per evaluation with a 0 ms provider (CPU-bound: what is left is the work each
    evaluation costs), bare pool against the job, at each size."""
    rt, sim = runtime(str(folder / "cost.sqlite"), 0.0)
    with rt:
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            kinds = contenders(rt, max(sizes), pool)
            runs = [size for size in sizes for _ in range(rounds if size == sizes[0] else 1)]
            per = measure(kinds, sim, runs)
        parts = tenths(rt, sizes[-1])
    title = (
        f"2. The same with a 0 ms provider: process CPU µs per evaluation at each size "
        f"({sizes[0]:,}: median of {rounds} runs, the others one run), and the job's against "
        "the bare pool's"
    )
    row("", *(f"@{size:,}" for size in sizes), "goal", title=title, w=54, cell=12)
    cost: dict[str, list[float]] = {}
    for name, values in per.items():
        first = statistics.median(cpu for _, cpu in values[:rounds]) / sizes[0]
        later = zip(values[rounds:], sizes[1:], strict=True)
        cost[name] = [first] + [cpu / size for (_, cpu), size in later]
        row(name, *(f"{c * 1e6:.0f}" for c in cost[name]), w=54, cell=12)
    bare, job = cost.values()
    ratio = max(j / b for j, b in zip(job, bare, strict=True))
    ratios = (f"{j / b:.2f}x" for j, b in zip(job, bare, strict=True))
    row("job / bare (goal <= 1.3x)", *ratios, verdict(ratio <= 1.3), w=54, cell=12)
    GOALS.append(("CPU per evaluation, job vs bare pool (worst size)", f"{ratio:.2f}x",
                  "<= 1.3x", ratio <= 1.3))  # fmt: skip
    growth = parts[-1] / parts[0]
    title = (
        f"   one more job of {sizes[-1]:,} evaluations, its process CPU µs per evaluation by "
        "tenth (the same process all along: is the last tenth dearer than the first?)"
    )
    row("", "first", "5th", "last", "last/first", "goal <=1.1x", title=title, w=54, cell=12)
    row("rt.jobs.start(...).wait()", *(f"{parts[i] * 1e6:.0f}" for i in (0, 4, 9)),
        f"{growth:.2f}x", verdict(growth <= 1.1), w=54, cell=12)  # fmt: skip
    GOALS.append((f"cost per evaluation, last vs first tenth of {sizes[-1]:,}", f"{growth:.2f}x",
                  "flat (<= 1.1x)", growth <= 1.1))  # fmt: skip


def tenths(rt: otpy.Runtime, n: int) -> list[float]:
    """Process CPU seconds per evaluation in each tenth of one job of ``n`` evaluations."""
    handle, step, marks = start_job(rt, n), n // 10, [(0, time.process_time())]
    while len(marks) <= 10:
        done = handle.status().evaluations_done
        if done >= len(marks) * step or handle.status().finished:
            marks.append((done, time.process_time()))
        time.sleep(0.002)
    assert handle.wait(600).evaluations_done == n
    return [(c1 - c0) / max(1, d1 - d0) for (d0, c0), (d1, c1) in itertools.pairwise(marks)]


# -- 3. status() while evaluations are in flight ------------------------------------------------


def bench_status(folder: Path, n: int) -> None:
    """Another thread calls ``status()`` in a loop while a job of ``n`` evaluations runs."""
    rt, _ = runtime(str(folder / "status.sqlite"), LATENCY)
    samples: list[float] = []
    stop = threading.Event()
    with rt:
        handle = start_job(rt, n)

        def sample() -> None:
            while not stop.is_set():
                t0 = time.perf_counter_ns()
                handle.status()
                samples.append((time.perf_counter_ns() - t0) / 1000)
                stop.wait(0.0002)

        sampler = threading.Thread(target=sample, name="bench-status-sampler")
        sampler.start()
        status = handle.wait(300)
        stop.set()
        sampler.join()
    assert status.state == "completed" and status.evaluations_done == n, status
    v50, v99, top = percentiles(samples)
    title = f"3. JobHandle.status() from another thread while a job of {n:,} evaluations runs"
    row("", "samples", "p50 µs", "p99 µs", "max µs", "goal <50ms", title=title, w=54)
    row("every sample", f"{len(samples):,}", f"{v50:.1f}", f"{v99:.1f}", f"{top:.0f}",
        verdict(v99 < 50_000), w=54)  # fmt: skip


# -- 5. paused jobs -----------------------------------------------------------------------------


def rss_kib() -> int:
    """This process's resident set now, in KiB (0 where there is no /proc)."""
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.exists() else []
    return next((int(line.split()[1]) for line in lines if line.startswith("VmRSS:")), 0)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 600) -> None:
    """Until ``predicate()`` (polled: nothing signals these states)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def paused_child(count: int) -> None:
    """In a process of its own (a clean RSS): start ``count`` jobs and pause each at once;
    once all have hibernated and the idle evaluation threads have retired, print
    ``PAUSED <threads> <RSS KiB per job> <ms per job> <CPU ms per job>``."""
    endless = {"strategy_options": {"unique": False}, "concurrency": 4}
    with tempfile.TemporaryDirectory(prefix="otpy-bench-") as name:
        rt, _ = runtime(str(Path(name) / "paused.sqlite"), 0.0, idle_seconds=0.2)
        with rt:
            warm = start_job(rt, None, **endless)
            warm.cancel()
            gc.collect()
            threads, rss, t = threading.active_count(), rss_kib(), time.perf_counter()
            cpu = time.process_time()
            handles = []
            for _ in range(count):
                handle = start_job(rt, None, **endless)
                handle.pause()
                handles.append(handle)
            for handle in handles:
                wait_for(lambda h=handle: h.status().in_flight == 0, "paused")  # type: ignore[misc]
            spent, used = time.perf_counter() - t, time.process_time() - cpu
            wait_for(partial(lambda n: threading.active_count() <= n, threads + 1), "retired")
            gc.collect()
            grown, now = (rss_kib() - rss) / count, threading.active_count()
            assert all(h.status().state == "paused" for h in handles)
            per_job = f"{spent / count * 1000:.2f} {used / count * 1000:.2f}"
            print(f"PAUSED {now} {grown:.2f} {per_job}", flush=True)


def bench_paused(counts: list[int]) -> None:
    """Threads and RSS per paused job, each count in a fresh process."""
    title = (
        "5. Paused jobs (each started, then paused at once: the evaluations already started "
        "finish, then its runner checkpoints and exits); once all are paused and the pool's "
        "idle threads have retired: threads in the process, RSS growth per paused job (a "
        "fresh process per row), and the time to start and pause one (wall, and the "
        "process's CPU: the runners and evaluations too)"
    )
    row("", "jobs", "threads", "RSS KiB/job", "ms/job", "CPU ms/job", "goal", title=title,
        w=24, cell=13)  # fmt: skip
    for count in counts:
        child = subprocess.run(
            [sys.executable, __file__, "--paused", str(count)],
            capture_output=True, text=True, timeout=3600, check=False,
        )  # fmt: skip
        line = next((x for x in child.stdout.splitlines() if x.startswith("PAUSED ")), "")
        assert child.returncode == 0 and line, child.stdout + child.stderr
        now, grown, spent, used = int(line.split()[1]), float(line.split()[2]), *line.split()[3:5]
        ok = now < 50 and grown <= 1024 * 1024 / 10_000
        row(f"{count:,} paused", f"{count:,}", f"{now}", f"{grown:.1f}", spent, used,
            verdict(ok), w=24, cell=13)  # fmt: skip
    GOALS.append((f"{counts[-1]:,} paused jobs: threads in the process", f"{now}", "< 50",
                  now < 50))  # fmt: skip
    GOALS.append(("RSS per paused job", f"{grown:.1f} KiB", "<= 104.9 KiB (1 GiB/10k)",
                  grown <= 1024 * 1024 / 10_000))  # fmt: skip


def summary() -> None:
    row("", "now", "goal", "", title="7. The job path against its goals (issue 24)", w=52, cell=26)
    for measure_, figure, goal, met in GOALS:
        row(measure_, figure, goal, verdict(met), w=52, cell=26)


def sections(args: argparse.Namespace) -> None:
    if args.paused is not None:
        paused_child(args.paused)
        return
    quick = args.quick
    with tempfile.TemporaryDirectory(prefix="otpy-bench-") as name:
        folder = Path(name)
        if args.executor == "ray":
            bench_ray(folder, quick, GOALS, args.address)
            summary()
            return
        bench_throughput(folder, 100 if quick else 1_000, 1 if quick else 3)
        bench_cost(folder, [100, 400] if quick else [1_000, 10_000, 100_000], 1 if quick else 3)
        bench_status(folder, 100 if quick else 1_000)
        bench_checkpoint(folder, GOALS, 100 if quick else 1_000, 1 if quick else 5)
        bench_paused([10] if quick else [10, 1_000, 10_000])
        bench_renewal(folder, GOALS, [100, 1_000] if quick else [1_000, 10_000])
    summary()


def main() -> None:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--paused", type=int, metavar="N", help=argparse.SUPPRESS)
        parser.add_argument(
            "--executor", choices=["threads", "ray"], default="threads",
            help="ray: the Ray section alone (a local Ray against threads)",
        )  # fmt: skip
        parser.add_argument(
            "--address", metavar="GCS",
            help="with --executor ray: join this Ray cluster instead of starting one",
        )  # fmt: skip

    run("jobs", __doc__, sections, options=options)


if __name__ == "__main__":
    main()
