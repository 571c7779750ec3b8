"""otpy.dspy: ``dspy.Evaluate`` of 1,000 examples on a simulated 50 ms model at 32 threads
through a bare DSPy engine against the same through ``otpy.dspy.lm`` (the provider layer:
selection, limiter, breaker, retries, telemetry), with a job's gate and SQLite call
journal, and as a supervised job (``rt.jobs.start_dspy(program, "evaluate", ...)``: its
store, runner, gate, journal, callbacks and saved program); the journal's replay speed
over 10,000 calls; its bytes per call.

Run from the repo root: ``.venv/bin/python benchmarks/dspy.py [--quick]``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

# This script is called dspy.py: its folder, first on sys.path, would shadow the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
import dspy  # noqa: E402
from dspy import lm15  # noqa: E402

sys.path.insert(0, str(_HERE))
from _harness import row  # noqa: E402

import otpy  # noqa: E402
import otpy.dspy  # noqa: E402
from otpy.calls import CallGate, CallJournal, SQLiteJournalStore, request_digest  # noqa: E402
from otpy.dspy import CallScope, OtpyEngine  # noqa: E402
from otpy.providers import (  # noqa: E402
    Completion,
    CompletionRequest,
    Message,
    SimulatedProvider,
    Usage,
)

THREADS = 32
SEED = 3


class BareEngine:
    """The baseline: a DSPy engine calling the simulated provider directly (no limiter,
    breaker, retries, selection or telemetry): what a hand-written engine costs."""

    def __init__(self, provider: SimulatedProvider) -> None:
        self.provider = provider

    def complete(self, request: Any) -> Any:
        messages = tuple(Message(role=m.role, content=m.text) for m in request.messages)
        answer = self.provider.complete(CompletionRequest(messages=messages, system=request.system))
        usage = lm15.Usage(
            input_tokens=answer.usage.input_tokens, output_tokens=answer.usage.output_tokens
        )
        return lm15.Response(
            id=None,
            model=answer.model,
            message=lm15.Message.assistant([lm15.TextPart(answer.text)]),
            finish_reason="stop",
            usage=usage,
        )

    def stream(self, request: Any) -> Any:
        return lm15.response_to_events(self.complete(request))

    def close(self) -> None:
        return None


def devset(n: int) -> list[Any]:
    return [dspy.Example(question=f"question {i}?").with_inputs("question") for i in range(n)]


def evaluate(lm: Any, n: int, scope: Callable[[], Any] | None = None) -> tuple[float, float]:
    """(wall, process CPU) seconds to Evaluate ``n`` examples with ``lm`` on 32 threads
    (every one answered)."""
    program = dspy.Predict("question -> answer")
    run = dspy.Evaluate(
        devset=devset(n),
        metric=lambda example, prediction, trace=None: float(bool(prediction.answer)),
        num_threads=THREADS,
        display_progress=False,
    )
    with dspy.context(lm=lm):
        cpu, start = time.process_time(), time.perf_counter()
        if scope is None:
            result = run(program)
        else:
            with scope():
                result = run(program)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert result.score == 100.0, result.score
    return seconds, cpu


def bench_evaluate(n: int, latency: float, rounds: int, folder: Path) -> None:
    def simulated(name: str) -> SimulatedProvider:
        return SimulatedProvider(name, seed=SEED, latency=latency, keep_requests=0)

    config = {
        "name": f"bench-{uuid.uuid4().hex[:6]}",
        "plugins": False,
        "providers": {},
        "jobs_store": str(folder / "bench-jobs.sqlite"),
    }
    with otpy.start(config) as rt:
        rt.providers.register_provider("sim", simulated("sim"), limits={"timeout": None})
        limits = {"timeout": None, "rpm": 1_000_000, "tpm": 1_000_000_000}
        rt.providers.register_provider("limited", simulated("limited"), limits=limits)
        bare = dspy.LM("bare/sim", engine=BareEngine(simulated("bare")), cache=False, num_retries=0)
        through, limited = otpy.dspy.lm(rt, "sim"), otpy.dspy.lm(rt, "limited")
        store = SQLiteJournalStore(folder / "bench.sqlite.journal")

        def job_scope() -> Any:
            journal = CallJournal(store, f"job-{uuid.uuid4().hex}")  # a new job: all live
            return otpy.dspy.call_scope(CallGate(), journal)

        def as_job() -> tuple[float, float]:
            cpu, start = time.process_time(), time.perf_counter()
            job = rt.jobs.start_dspy(
                dspy.Predict("question -> answer"),
                "evaluate",
                devset(n),
                metric=lambda example, prediction, trace=None: float(bool(prediction.answer)),
                threads=THREADS,
                lm=through,
            )
            status = job.wait(600)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            assert status.state == "completed" and status.best_score == 1.0, status
            assert status.lm_calls == n, status
            return seconds, cpu

        kinds: dict[str, Callable[[], tuple[float, float]]] = {
            "(a) dspy.LM(engine=BareEngine) (baseline)": lambda: evaluate(bare, n),
            "(b) otpy.dspy.lm(rt): the provider layer": lambda: evaluate(through, n),
            "(c) (b) with rpm + tpm limits (moving window)": lambda: evaluate(limited, n),
            "(d) (b) + a job's gate and SQLite journal": lambda: evaluate(through, n, job_scope),
            "(e) (d) as a job: rt.jobs.start_dspy('evaluate')": as_job,
        }
        for fn in kinds.values():
            evaluate(bare, THREADS)  # warm-up: threads, imports
            fn()
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
        for r in range(rounds):
            for name in list(kinds) if r % 2 == 0 else list(kinds)[::-1]:
                times[name].append(kinds[name]())
        store.close()
    waves = math.ceil(n / THREADS) * latency
    row(
        "",
        "median s",
        "x ideal",
        "x (a)",
        "CPU ms/ex",
        title=f"1. dspy.Evaluate of {n:,} examples, simulated {latency * 1000:.0f} ms/call, "
        f"{THREADS} threads, {rounds} interleaved rounds; ideal (waves of {THREADS}) "
        f"{waves:.2f} s" + ("" if n >= 1000 else "; the goal (<= 1.1x) is for 1,000"),
    )
    base = statistics.median(wall for wall, _ in times[next(iter(kinds))])
    for name, samples in times.items():
        median = statistics.median(wall for wall, _ in samples)
        cpu = statistics.median(cpu for _, cpu in samples) / n * 1000
        row(name, f"{median:.3f}", f"{median / waves:.2f}", f"{median / base:.3f}", f"{cpu:.2f}")


def bench_replay(calls: int, folder: Path) -> None:
    """Record ``calls`` answers (with repeats), then replay them three ways."""
    requests = [
        CompletionRequest(prompt=f"[[ ## question ## ]]\nquestion {i % (calls // 2)}?")
        for i in range(calls)
    ]
    answer = Completion(
        text="[[ ## answer ## ]]\nSimulated answer [0f3a9c21]\n\n[[ ## completed ## ]]",
        usage=Usage(input_tokens=180, output_tokens=16),
        model="sim-1",
        provider="sim",
    )
    path = folder / "replay.sqlite.journal"
    store = SQLiteJournalStore(path)
    journal = CallJournal(store, "job")
    start = time.perf_counter()
    for request in requests:
        journal.record(request_digest(request, "sim"), answer)
    record_s = time.perf_counter() - start
    store.close()

    def opened() -> CallJournal:
        return CallJournal(SQLiteJournalStore(path), "job")

    start = time.perf_counter()
    fresh = opened()
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    for request in requests:
        assert fresh.take(request_digest(request, "sim")) is not None
    take_s = time.perf_counter() - start

    engine = OtpyEngine(_NoProviders(), provider="sim")
    canonical = [
        lm15.Request(model="otpy/sim", messages=(lm15.Message.user(r.prompt or ""),))
        for r in requests
    ]
    scope = CallScope(CallGate(), opened())
    start = time.perf_counter()
    with dspy.context(**{otpy.dspy.SCOPE_KEY: scope}):
        for request in canonical:
            response = engine.complete(request)
            assert response.provider_data["replayed"]
    engine_s = time.perf_counter() - start

    lm = dspy.LM("otpy/sim", engine=engine, cache=False, num_retries=0)
    scope = CallScope(CallGate(), opened())
    start = time.perf_counter()
    with dspy.context(**{otpy.dspy.SCOPE_KEY: scope}):
        for request in canonical:
            lm(request)
    lm_s = time.perf_counter() - start

    row("", "calls/s", "µs/call", title=f"2. the call journal, {calls:,} calls (half repeats)")
    for name, seconds in (
        ("record: digest + durable SQLite insert", record_s),
        ("open: load every entry", load_s),
        ("replay: digest + take (the journal)", take_s),
        ("replay through OtpyEngine.complete (lm15 in/out)", engine_s),
        ("replay through dspy.LM(request) (DSPy's LM layer)", lm_s),
    ):
        row(name, f"{calls / seconds:,.0f}", f"{seconds / calls * 1e6:.1f}")
    print("  goal: replay >= 20,000 calls/s")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (answers,) = conn.execute("SELECT SUM(LENGTH(answer)) FROM call_journal").fetchone()
    size = os.path.getsize(path)
    row("", "bytes/call", title="3. journal size")
    row("SQLite file after checkpoint", f"{size / calls:.0f}")
    row("of which the answer's JSON", f"{answers / calls:.0f}")
    row("the answer's text alone", f"{len(answer.text.encode()):.0f}")


class _NoProviders:
    """A provider directory no replayed call reaches (a live call would fail loudly)."""

    @property
    def table(self) -> Any:
        raise AssertionError("a replayed call reached the providers")

    def select(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a replayed call reached the providers")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run of a few seconds")
    quick = parser.parse_args().quick
    print(
        f"otpy.dspy benchmark{' (--quick)' if quick else ''}: {platform.machine()}, "
        f"Python {platform.python_version()}, DSPy {dspy.__version__}"
    )
    with tempfile.TemporaryDirectory() as folder:
        if quick:
            bench_evaluate(64, 0.01, 1, Path(folder))
            bench_replay(500, Path(folder))
        else:
            bench_evaluate(1_000, 0.05, 3, Path(folder))
            bench_replay(10_000, Path(folder))


if __name__ == "__main__":
    main()
