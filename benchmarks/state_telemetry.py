"""otpy.state and otpy.telemetry against plain baselines: LocalState get/set vs a dict under a
lock, SQLiteState batch updates vs raw sqlite3, get/set/batch on LocalState, SQLiteState and
RedisState vs one redis-py round trip, telemetry emit cost, histogram record cost and
accuracy.

Run from the repo root: ``.venv/bin/python benchmarks/state_telemetry.py [--quick]``.
"""

from __future__ import annotations

import argparse
import collections
import math
import random
import sqlite3
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

from _harness import Op, run, time_ops
from _harness import row as _row

from otpy.state import LocalState, RedisState, SQLiteState, StateProvider
from otpy.telemetry import Histogram, Telemetry
from otpy.testing import RedisUnavailable, redis_server

perf = time.perf_counter


def row(name: str, *cells: str, title: str = "") -> None:
    _row(name, *cells, title=title, w=46, cell=12)


def table(title: str, kinds: dict[str, tuple[Op, str]], n: int, rounds: int) -> None:
    us = time_ops({k: fn for k, (fn, _) in kinds.items()}, n, rounds)
    row("", "us/op", "ops/s", "vs base", title=f"{title} ({n:,} ops x {rounds} rounds, median)")
    for name, (_, base) in kinds.items():
        ops = 1e6 / us[name] if us[name] else math.inf
        row(name, f"{us[name]:.2f}", f"{ops:,.0f}", f"{us[name] / us[base]:.2f}x")


def bench_local(n: int, rounds: int) -> None:
    state = LocalState(session_id="bench")
    names = [f"v{i}" for i in range(100)]
    for name in names:
        state.register_variable(name, "float", 0.5, constraints={"min": 0.0, "max": 1.0})
    plain: dict[str, float] = dict.fromkeys(names, 0.5)
    lock = threading.Lock()
    i = [0]

    def dict_get() -> object:
        with lock:
            return plain["v7"]

    def dict_set() -> None:
        i[0] += 1
        with lock:
            plain["v7"] = (i[0] % 100) / 100

    def local_set() -> None:
        i[0] += 1
        state.set_variable("v7", (i[0] % 100) / 100)

    table(
        "1. LocalState get/set against a plain dict under a lock (1 thread)",
        {
            "dict + lock: get": (dict_get, "dict + lock: get"),
            "LocalState.get_variable(name)": (lambda: state.get_variable("v7"), "dict + lock: get"),
            "dict + lock: set": (dict_set, "dict + lock: set"),
            "LocalState.set_variable (checked, versioned)": (local_set, "dict + lock: set"),
        },
        n,
        rounds,
    )
    threads = 4
    row("", "ops/s", "vs base", title=f"   the same, {threads} threads x {n:,} ops each")
    base = None
    for name, fn in (
        ("dict + lock: set", dict_set),
        ("LocalState.set_variable", local_set),
        ("dict + lock: get", dict_get),
        ("LocalState.get_variable", lambda: state.get_variable("v7")),
    ):
        start = threading.Barrier(threads + 1)

        def work(fn: Op = fn, start: threading.Barrier = start) -> None:
            start.wait()
            for _ in range(n):
                fn()

        pool = [threading.Thread(target=work) for _ in range(threads)]
        for th in pool:
            th.start()
        start.wait()
        t = perf()
        for th in pool:
            th.join()
        ops = threads * n / (perf() - t)
        base = ops if name.startswith("dict") else base
        row(name, f"{ops:,.0f}", f"{(base or ops) / ops:.2f}x")
    state.cleanup()


def bench_sqlite(batches: int, directory: Path) -> None:
    updates = 100
    row("", "batches/s", "ms/batch", "vs base",
        title=f"2. SQLiteState batch update of {updates} variables ({batches} batches, "
              "one transaction each, WAL)")  # fmt: skip
    results: dict[str, float] = {}
    for sync in ("NORMAL", "FULL"):
        raw = sqlite3.connect(directory / f"raw-{sync}.db", isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute(f"PRAGMA synchronous={sync}")
        raw.execute("CREATE TABLE v (name TEXT PRIMARY KEY, value TEXT, version INTEGER)")
        raw.executemany("INSERT INTO v VALUES (?, '0.0', 1)", [(f"v{i}",) for i in range(updates)])
        t = perf()
        for b in range(batches):
            raw.execute("BEGIN IMMEDIATE")
            raw.executemany(
                "UPDATE v SET value = ?, version = version + 1 WHERE name = ?",
                [(repr(b / batches), f"v{i}") for i in range(updates)],
            )
            raw.execute("COMMIT")
        results[f"raw sqlite3 executemany, synchronous={sync}"] = batches / (perf() - t)
        raw.close()

        state = SQLiteState(directory / f"otpy-{sync}.db", session_id="bench", synchronous=sync)
        for i in range(updates):
            state.register_variable(f"v{i}", "float", 0.0, constraints={"min": 0.0, "max": 1.0})
        t = perf()
        for b in range(batches):
            state.update_variables({f"v{i}": b / batches for i in range(updates)})
        results[f"SQLiteState.update_variables, synchronous={sync}"] = batches / (perf() - t)
        state.cleanup()
    for name, per_s in results.items():
        base = results["raw sqlite3 executemany, synchronous=" + name.rsplit("=", 1)[1]]
        row(name, f"{per_s:,.0f}", f"{1e3 / per_s:.2f}", f"{base / per_s:.2f}x")


def bench_backends(n: int, rounds: int, directory: Path) -> None:
    """get / set / a batch of 10 on each backend, against one redis-py round trip."""
    try:
        with redis_server() as url:
            _backends(url, n, rounds, directory)
    except RedisUnavailable as exc:
        print(f"\n3. backends: skipped ({exc})")


def _backends(url: str, n: int, rounds: int, directory: Path) -> None:
    import redis

    raw = redis.Redis.from_url(url, decode_responses=True)
    raw.set("raw", "0.5")
    names = [f"v{i}" for i in range(10)]
    stores: dict[str, StateProvider] = {
        "LocalState": LocalState(session_id="bench"),
        "SQLiteState (file, NORMAL)": SQLiteState(directory / "backends.db", "bench"),
        "RedisState": RedisState(url, "bench"),
        "RedisState, 1 subscriber": RedisState(url, "bench-sub"),
    }
    for store in stores.values():
        for name in names:
            store.register_variable(name, "float", 0.5, constraints={"min": 0.0, "max": 1.0})
    stores["RedisState, 1 subscriber"].subscribe("*", lambda change: None)
    i = [0]

    def setter(store: StateProvider) -> Op:
        def op() -> None:
            i[0] += 1
            store.set_variable("v7", (i[0] % 100) / 100)

        return op

    def batch(store: StateProvider) -> Op:
        def op() -> None:
            i[0] += 1
            store.update_variables(dict.fromkeys(names, (i[0] % 100) / 100))

        return op

    def raw_batch() -> None:
        pipe = raw.pipeline(transaction=True)
        for name in names:
            pipe.set(name, "0.5")
        pipe.execute()

    base = "redis-py: one round trip (GET)"
    kinds: dict[str, tuple[Op, str]] = {base: (lambda: raw.get("raw"), base)}
    kinds["redis-py: SET"] = (lambda: raw.set("raw", "0.5"), base)
    kinds["redis-py: MULTI of 10 SET"] = (raw_batch, base)
    for label, store in stores.items():
        kinds[f"{label}: get_variable"] = (lambda s=store: s.get_variable("v7"), base)
        kinds[f"{label}: set_variable"] = (setter(store), base)
        kinds[f"{label}: update_variables x10"] = (batch(store), base)
    table("3. get / set / batch of 10 per backend (1 thread; Redis on 127.0.0.1)", kinds,
          n, rounds)  # fmt: skip
    for store in stores.values():
        store.cleanup()
    raw.close()


def bench_emit(n: int, rounds: int) -> None:
    quiet = Telemetry(store_size=10_000)
    busy = Telemetry(store_size=10_000)
    seen = [0]

    def subscriber(event: object) -> None:
        seen[0] += 1

    for pattern in ("*", "provider.*", "provider.call"):
        busy.subscribe(subscriber, pattern)
    ring: collections.deque[tuple[object, ...]] = collections.deque(maxlen=10_000)
    meta = {"provider": "simulated", "model": "sim-1"}
    base = "baseline: tuple into a bounded deque"
    table(
        "4. Telemetry emit (store of 10,000 + metadata redaction)",
        {
            base: (lambda: ring.append(("provider.call", {"latency": 0.02}, meta)), base),
            "emit, 0 subscribers": (
                lambda: quiet.emit("provider.call", {"latency": 0.02}, meta),
                base,
            ),
            "emit, 3 subscribers": (
                lambda: busy.emit("provider.call", {"latency": 0.02}, meta),
                base,
            ),
            "span (start + stop events + duration histogram)": (
                lambda: quiet.span("step").__enter__().__exit__(None, None, None),
                base,
            ),
        },
        n,
        rounds,
    )
    assert seen[0] > 0


def bench_histogram(n: int, rounds: int, samples: int) -> None:
    hist = Histogram("bench")
    values = [random.lognormvariate(0, 2) for _ in range(4096)]
    exact: list[float] = []
    i = [0]

    def record() -> None:
        i[0] = (i[0] + 1) & 4095
        hist.record(values[i[0]])

    def append() -> None:
        i[0] = (i[0] + 1) & 4095
        exact.append(values[i[0]])

    base = "baseline: list.append (exact, unbounded)"
    table(
        "5. Histogram record",
        {base: (append, base), "Histogram.record (sketch, bounded)": (record, base)},
        n,
        rounds,
    )
    rng = random.Random(7)
    data = [rng.lognormvariate(0, 2) for _ in range(samples)]
    tracemalloc.start()
    h = Histogram("accuracy")
    for v in data:
        h.record(v)
    sketch_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    data.sort()
    row("", "exact", "sketch", "rel. error",
        title=f"   accuracy on {samples:,} lognormal samples; sketch memory "
              f"{sketch_bytes / 1024:.0f} KiB vs {samples * 8 / 1024:,.0f} KiB of raw floats "
              "(list of 8-byte pointers alone)")  # fmt: skip
    for q in (50, 90, 99):
        true = data[max(0, math.ceil(q / 100 * samples) - 1)]
        est = h.percentile(q)
        row(f"p{q}", f"{true:.4f}", f"{est:.4f}", f"{abs(est - true) / true:.3%}")


def sections(args: argparse.Namespace) -> None:
    quick = args.quick
    print(f"SQLite {sqlite3.sqlite_version}")
    n, rounds = (1_000, 1) if quick else (50_000, 5)
    bench_local(n, rounds)
    with tempfile.TemporaryDirectory() as directory:
        bench_sqlite(20 if quick else 500, Path(directory))
        bench_backends(50 if quick else 2_000, rounds, Path(directory))
    bench_emit(n, rounds)
    bench_histogram(n, rounds, 10_000 if quick else 1_000_000)


def main() -> None:
    run("state + telemetry", __doc__, sections)


if __name__ == "__main__":
    main()
