"""The job store's sections of benchmarks/jobs.py: the checkpoint's cost against a bare
sqlite3 insert of the same JSON (section 4) and lease renewal (section 6)."""

from __future__ import annotations

import sqlite3
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from _harness import percentiles, row, verdict

from otpy.optimize import (
    CheckpointBatch,
    ExampleResult,
    JobOptions,
    JobSpec,
    Lease,
    Owner,
    SQLiteJobStore,
    Trial,
)

Goals = list[tuple[str, str, str, bool]]
perf = time.perf_counter_ns
BASE = "sqlite3 INSERT of the JSON text (baseline)"
SPEC = JobSpec(
    job_id="bench",
    program={"name": "p", "steps": [{"name": "s", "type": "claude", "prompt": "{{ vars.a }}"}]},
    space={"a": {"kind": "choice", "values": [1]}},
    trainset=[{"inputs": {}}],
    options=JobOptions(),
)


def realistic_trial(examples: int) -> Trial:
    """A candidate as the runner records it: its configuration, and per example the
    inputs, expected value, the program's outputs (a short paragraph), tokens, duration."""
    results = tuple(
        ExampleResult(
            example=i,
            score=float(i % 3 == 0),
            inputs={"question": f"Question {i}: what is the capital of the country with code {i}?"},
            expected=f"City {i}",
            output={"answer": f"Answer {i}: " + "The capital is a city on a river. " * 10},
            tokens=180 + i,
            duration=0.05 + i / 1000,
        )
        for i in range(examples)
    )
    return Trial(
        index=0, round=0, status="completed", examples=results,
        configuration={"temperature": 0.7163482268202525, "instruction": "Think first."},
        score=sum(r.score or 0.0 for r in results) / examples,
        tokens=sum(r.tokens for r in results), duration=sum(r.duration for r in results),
    )  # fmt: skip


def raw_store(path: Path) -> sqlite3.Connection:
    """The baseline: one sqlite3 connection set up as the job store sets its own (WAL,
    synchronous NORMAL, autocommit with explicit transactions), one table."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE trials (job TEXT, idx INTEGER, value TEXT, PRIMARY KEY (job, idx))")
    return conn


def insert(conn: sqlite3.Connection, job: str, index: int, text: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO trials VALUES (?, ?, ?)", (job, index, text))
    conn.execute("COMMIT")


def kinds_of(
    conn: sqlite3.Connection, store: SQLiteJobStore, base: Trial, examples: int
) -> dict[str, Callable[[int], None]]:
    """Ways to checkpoint finished candidate ``i`` (a new row each)."""
    text = base.model_dump_json()
    job = f"bench-{examples}"
    leases = {"one": store.create(SPEC.model_copy(update={"job_id": f"{job}-one"}))}
    leases["many"] = store.create(SPEC.model_copy(update={"job_id": f"{job}-many"}))
    pending: list[Trial] = []

    def write_one(i: int) -> None:
        trial = base.model_copy(update={"index": i})
        leases["one"] = store.write(leases["one"], CheckpointBatch("running", 1.0, trials=[trial]))

    def write_batched(i: int) -> None:  # one transaction per 32 finished candidates
        pending.append(base.model_copy(update={"index": i}))
        if len(pending) == 32:
            batch = CheckpointBatch("running", 1.0, trials=list(pending))
            leases["many"] = store.write(leases["many"], batch)
            pending.clear()

    return {
        BASE: lambda i: insert(conn, f"{job}-a", i, text),
        "+ model_dump_json each time": lambda i: insert(
            conn, f"{job}-b", i, base.model_copy(update={"index": i}).model_dump_json()
        ),
        "SQLiteJobStore.write: 1 trial, fenced": write_one,
        "SQLiteJobStore.write: 32 trials a transaction": write_batched,
    }


def bench_checkpoint(folder: Path, goals: Goals, n: int, rounds: int) -> None:
    """µs per checkpoint of one finished candidate, on a file."""
    conn = raw_store(folder / "raw.sqlite")
    store = SQLiteJobStore(folder / "checkpoints.sqlite")
    for examples in (1, 10):
        base = realistic_trial(examples)
        kinds = kinds_of(conn, store, base, examples)
        per: dict[str, list[float]] = {k: [] for k in kinds}
        for r in range(rounds + 1):  # round 0 is the warm-up
            for name in list(kinds) if r % 2 == 0 else list(kinds)[::-1]:
                fn = kinds[name]
                for i in range(r * n, (r + 1) * n):
                    t = perf()
                    fn(i)
                    if r:
                        per[name].append((perf() - t) / 1000)
        title = (
            f"4{'ab'[examples > 1]}. Checkpoint of one finished candidate with {examples} "
            f"example{'s' * (examples > 1)} ({len(base.model_dump_json()):,} bytes of JSON) on "
            f"a file (WAL, synchronous NORMAL); {n:,} ops x {rounds} rounds"
        )
        row("", "mean µs", "p50 µs", "p99 µs", "vs base", "goal", "", title=title, w=54)
        base_mean = statistics.fmean(per[BASE])
        for name, values in per.items():
            v50, v99, _ = percentiles(values)
            mean = statistics.fmean(values)
            goal: tuple[str, ...] = ()
            if examples == 1 and name == "SQLiteJobStore.write: 1 trial, fenced":
                met = mean / base_mean <= 2 and v99 < 200
                goal = ("2x, 200µs", verdict(met))
            row(name, f"{mean:.0f}", f"{v50:.0f}", f"{v99:.0f}", f"{mean / base_mean:.2f}x",
                *goal, w=54)  # fmt: skip
        if examples == 1:
            one = per["SQLiteJobStore.write: 1 trial, fenced"]
            ratio, p99 = statistics.fmean(one) / base_mean, percentiles(one)[1]
            goals.append(("JobStore write of a trial vs a bare insert", f"{ratio:.2f}x",
                          "<= 2x", ratio <= 2))  # fmt: skip
            goals.append(("JobStore write of a trial, p99", f"{p99:.0f} µs", "< 200 µs",
                          p99 < 200))  # fmt: skip
    conn.close()
    store.close()


def bench_renewal(folder: Path, goals: Goals, counts: list[int]) -> None:
    """One heartbeat: every lease of a runtime renewed in one transaction."""
    title = (
        "6. Lease renewal: one heartbeat renews every lease the runtime holds in one "
        "transaction (median of 5 beats)"
    )
    row("", "leases", "ms/beat", "µs/lease", "goal < 1 s", title=title, w=24, cell=13)
    for count in counts:
        store = SQLiteJobStore(folder / f"leases{count}.sqlite", owner=Owner.current("bench"))
        leases: list[Lease] = [
            store.create(SPEC.model_copy(update={"job_id": f"j{i}"})) for i in range(count)
        ]
        beats = []
        for _ in range(5):
            t = time.perf_counter()
            assert store.renew(leases) == {}
            beats.append(time.perf_counter() - t)
        beat = statistics.median(beats)
        row(f"{count:,} jobs", f"{count:,}", f"{beat * 1000:.1f}", f"{beat / count * 1e6:.1f}",
            verdict(beat < 1.0), w=24, cell=13)  # fmt: skip
        store.close()
    goals.append((f"heartbeat renewing {counts[-1]:,} leases", f"{beat * 1000:.0f} ms",
                  "< 1 s (10% of its period)", beat < 1.0))  # fmt: skip
