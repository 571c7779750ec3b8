"""The Ray section of ``benchmarks/jobs.py``: the same job on a local Ray and on threads in
one run (wall time against the ideal, the overhead per evaluation, the driver's CPU), and
the driver's memory per evaluation in flight, Ray against threads.

Ray is started here (``ray.init(num_cpus=2)``), or joined at ``--address`` (the test suite
runs the quick mode on the cluster its Ray tests share); in ``--quick`` mode the section
is skipped, saying so, if Ray is not installed or does not start within ``QUICK_START``
seconds.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml
from _harness import row

import otpy
from otpy.optimize import ExecutorSession, JobSpec, JobWork, Task, ThreadExecutor

if TYPE_CHECKING:  # Ray is imported only when this section runs
    from otpy.ray import RayExecutor

QUICK_START = 60.0
KEEPERS: list[threading.Thread] = []
PROGRAM = """\
name: qa
inputs:
  question: {type: string}
steps:
  - name: answer
    type: claude
    prompt: "{{ vars.instruction }} Q: {{ inputs.question }}"
    temperature: "{{ vars.temperature }}"
"""
"""The program both benchmarks time (``jobs.py`` imports it from here)."""
SPACE: dict[str, Any] = {
    "temperature": {"low": 0.0, "high": 1.5},
    "instruction": ["Answer briefly.", "Think step by step, then answer."],
}
TRAINSET: list[dict[str, Any]] = [{"inputs": {"question": "What is 2 + 2?"}, "expected": "4"}]


def start_ray(quick: bool, stop: threading.Event, address: str | None = None) -> str | None:
    """Start a local Ray of 2 CPUs (or join the cluster at ``address``), from a thread that
    lives until ``stop`` is set (Ray's processes die with the thread that started them)
    and then shuts it down (or disconnects); None, or why the section is skipped."""
    try:
        import ray
    except ImportError:
        return "Ray is not installed (pip install 'otpy[ray]')"
    failure: list[BaseException] = []
    ready = threading.Event()

    def keep() -> None:
        try:
            if address is None:
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except BaseException as exc:
            failure.append(exc)
            return
        finally:
            ready.set()
        stop.wait()
        ray.shutdown()

    keeper = threading.Thread(target=keep, name="bench-ray", daemon=True)
    started = time.perf_counter()
    keeper.start()
    KEEPERS.append(keeper)
    if not ready.wait(QUICK_START if quick else None):
        return f"Ray did not start within {QUICK_START:.0f} s"
    if failure:
        return f"Ray did not start: {failure[0]}"
    what = "a local Ray of 2 CPUs started" if address is None else f"joined {address}"
    print(f"  ({what} in {time.perf_counter() - started:.1f} s)")
    return None


def runtime(folder: Path, latency: float) -> otpy.Runtime:
    """A runtime whose simulated provider comes from its config, so the Ray workers build
    the same one."""
    provider = {"options": {"seed": 7, "latency": latency}, "limits": {"timeout": None}}
    return otpy.start(
        {
            "name": f"bench-{uuid.uuid4().hex[:6]}",
            "plugins": False,
            "jobs_store": str(folder / f"ray-{uuid.uuid4().hex[:6]}.sqlite"),
            "providers": {"simulated": provider},
            "jobs": {"max_threads": 32, "executor": {"threads": 32}},
        }
    )


Timing = tuple[float, float, float]
"""Wall seconds, driver CPU seconds, Ray workers' CPU seconds (0 on threads)."""


def bench_throughput(
    folder: Path, n: int, rounds: int, latency: float, goals: list[Any], *, single: int = 20
) -> None:
    """The same jobs on threads and on Ray, interleaved: ``n`` evaluations at concurrency
    32 (``rounds`` times), and ``single`` at concurrency 1 (the latency Ray adds to one)."""
    rt = runtime(folder, latency)
    with rt:

        def job(executor: str, count: int, concurrency: int) -> Timing:
            pool = cast("RayExecutor", rt.jobs.executor("ray"))
            gc.collect()
            before = sum(w["cpu"] for w in pool.workers()) if executor == "ray" else 0.0
            cpu, t = time.process_time(), time.perf_counter()
            status = rt.jobs.start(
                PROGRAM, SPACE, TRAINSET, "exact_match", max_evaluations=count, seed=7,
                concurrency=concurrency, executor=executor,
            ).wait(3600)  # fmt: skip
            wall, used = time.perf_counter() - t, time.process_time() - cpu
            assert status.state == "completed" and status.evaluations_done == count, status
            after = sum(w["cpu"] for w in pool.workers()) if executor == "ray" else 0.0
            return wall, used, after - before

        job("ray", 2, 1)  # the Ray workers start here
        runs: dict[tuple[str, int], list[Timing]] = {}
        for r in range(rounds):
            for executor in ("threads", "ray") if r % 2 == 0 else ("ray", "threads"):
                job(executor, min(64, n), 32)  # warm
                runs.setdefault((executor, 32), []).append(job(executor, n, 32))
                runs.setdefault((executor, 1), []).append(job(executor, single, 1))
    title = (
        f"8. Ray: {n:,} evaluations x {latency * 1000:.0f} ms at concurrency 32 (ideal "
        f"{n * latency / 32 * 1000:.0f} ms), and {single} at concurrency 1, on a local Ray of "
        "2 CPUs (2 actors x 32 threads, on the same 2 cores as this driver) against the runtime's "
        f"threads, interleaved; median of {rounds}. ms/eval: wall x concurrency / evaluations "
        "(the time one evaluation held its slot; 50 ms ideal)"
    )
    row("", "wall ms", "wall/ideal", "ms/eval", "driver µs/eval", "workers µs/eval",
        title=title, w=26, cell=16)  # fmt: skip
    slot: dict[tuple[str, int], float] = {}
    for (executor, concurrency), values in runs.items():
        count = n if concurrency == 32 else single
        wall, cpu, remote = (statistics.median(v[i] for v in values) for i in range(3))
        ideal = count * latency / concurrency
        slot[executor, concurrency] = wall * concurrency / count
        row(f"{executor} @{concurrency}", f"{wall * 1000:.0f}", f"{wall / ideal:.2f}x",
            f"{slot[executor, concurrency] * 1000:.1f}", f"{cpu / count * 1e6:.0f}",
            f"{remote / count * 1e6:.0f}" if executor == "ray" else "-", w=26, cell=16)  # fmt: skip
    added = (slot["ray", 1] - slot["threads", 1]) * 1000
    goals.append(("Ray: latency added to one evaluation (concurrency 1)", f"{added:.1f} ms",
                  "<= 5 ms", added <= 5))  # fmt: skip
    loaded = slot["ray", 32] / latency
    goals.append((f"Ray @32: {n:,} x 50 ms, wall / ideal (local Ray, same 2 cores)",
                  f"{loaded:.2f}x", "<= 1.5x", loaded <= 1.5))  # fmt: skip


def rss_kib() -> int:
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.exists() else []
    return next((int(line.split()[1]) for line in lines if line.startswith("VmRSS:")), 0)


def bench_in_flight(folder: Path, count: int, goals: list[Any]) -> None:
    """``count`` evaluations submitted at once to each executor's session (1 s each, so
    none finishes while measured): the driver's RSS and Python heap growth per evaluation
    in flight, then how long ``close()`` takes to cancel them all."""
    rt = runtime(folder, 1.0)
    results: dict[str, tuple[float, float, float]] = {}
    with rt:
        plan = rt.compile_pipeline(PROGRAM)
        program = yaml.safe_load(PROGRAM)
        spec = JobSpec(job_id="inflight", program=program, space=SPACE, trainset=TRAINSET)
        work = JobWork(spec, plan, _zero, rt.providers, rt.clock, rt.steps.table)
        tasks = [Task(i, 0, {"instruction": "Answer briefly.", "temperature": 0.1})
                 for i in range(count)]  # fmt: skip
        for name in ("threads", "ray"):
            executor = rt.jobs.executor(name)
            executor.prepare(work)
            session: ExecutorSession = executor.open(work, _nothing)
            results[name] = _measure(session, tasks)
        threads = cast(ThreadExecutor, rt.jobs.executor("threads"))
        deadline = time.monotonic() + 30  # the 32 running evaluations end within a second
        while threads.statistics()["busy"] and time.monotonic() < deadline:
            time.sleep(0.01)
    title = (
        f"9. Driver memory per evaluation in flight: {count:,} submitted at once to one "
        "session (1 s each: none finishes meanwhile), RSS and Python heap (tracemalloc) "
        "growth, and the close() that cancels them all"
    )
    row("", "RSS KiB/eval", "heap B/eval", "close ms", title=title, w=22, cell=16)
    for name, (rss, heap, closing) in results.items():
        row(name, f"{rss:.2f}", f"{heap:.0f}", f"{closing * 1000:.0f}", w=22, cell=16)
    per_10k = results["ray"][0] * 10_000 / 1024
    goals.append(("Ray: driver RSS per 10,000 in flight", f"{per_10k:.1f} MiB", "<= 10 MiB",
                  per_10k <= 10))  # fmt: skip


def _zero(example: Any, result: Any) -> float:
    """The metric of the in-flight measurement (module-level: it travels by reference)."""
    return 0.0


def _nothing() -> None:
    """A session's wake callback that no runner listens to."""


def _measure(session: ExecutorSession, tasks: list[Task]) -> tuple[float, float, float]:
    gc.collect()
    tracemalloc.start()
    rss, heap = rss_kib(), tracemalloc.get_traced_memory()[0]
    session.submit(tasks)
    time.sleep(0.5)  # what Ray does with the submissions, in its threads, shows in the RSS
    gc.collect()
    grown_rss, grown_heap = rss_kib() - rss, tracemalloc.get_traced_memory()[0] - heap
    tracemalloc.stop()
    started = time.perf_counter()
    session.close()
    closing = time.perf_counter() - started
    return grown_rss / len(tasks), grown_heap / len(tasks), closing


def bench_ray(folder: Path, quick: bool, goals: list[Any], address: str | None = None) -> None:
    """The section, on a local Ray or the cluster at ``address``: skipped (saying why)
    when Ray cannot start."""
    print("\n8-9. Jobs on Ray (executor: ray)")
    stop = threading.Event()
    why = start_ray(quick, stop, address)
    if why is not None:
        print(f"  skipped: {why}")
        return
    try:
        if quick:
            bench_throughput(folder, 100, 1, 0.05, goals, single=5)
        else:
            bench_throughput(folder, 1_000, 3, 0.05, goals)
        bench_in_flight(folder, 300 if quick else 10_000, goals)
    finally:
        stop.set()
        for keeper in KEEPERS:
            keeper.join(60)
