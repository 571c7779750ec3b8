"""What every benchmark script shares: the command line (``--quick``), the header and
footer lines, a table row printer, interleaved timing rounds and per-call latency samples
with their percentiles.

The scripts run as ``python benchmarks/<name>.py``, so this module is importable as
``_harness`` (the script's folder is first on ``sys.path``). ``--quick`` runs every
section with fewer operations, in seconds: CI runs each script that way
(tests/test_benchmarks.py), so a script that no longer runs is caught.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable

Op = Callable[[], object]


def run(
    name: str,
    doc: str | None,
    body: Callable[[argparse.Namespace], None],
    *,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """The script's ``main``: parse ``--quick`` (and ``options``' arguments), print the
    header (machine, load), run ``body(args)``, print the total time and any thread left."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="every section, fewer operations: a few seconds"
    )
    if options is not None:
        options(parser)
    args = parser.parse_args()
    print(
        f"otpy {name} benchmark{' (--quick)' if args.quick else ''}: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    started = time.perf_counter()
    body(args)
    print(
        f"\ntotal {time.perf_counter() - started:.1f} s, load average "
        f"{os.getloadavg()[0]:.2f}, threads left: {threads_left()}"
    )


POOLED_IDLE = "otpy-timeout-idle"
"""The name of an idle runner of the guard's timeout pool (otpy.resilience)."""


def threads_left() -> str:
    """The threads alive besides the main one, by name (``none``). The timeout pool's
    idle runners are process-wide by design (as many as timed calls ran at once, each
    leaving after 60 s idle): counted apart, not as leftovers."""
    names = [th.name for th in threading.enumerate() if th is not threading.main_thread()]
    others = [name for name in names if name != POOLED_IDLE]
    text = ", ".join(others) if others else "none"
    idle = len(names) - len(others)
    if idle:
        text += f" (and {idle} idle runners of the timeout pool: each retires after 60 s idle)"
    return text


def verdict(ok: bool) -> str:
    """The goal column's word."""
    return "ok" if ok else "MISSED"


def row(name: str, *cells: str, title: str = "", w: int = 44, cell: int = 11) -> None:
    """One table row: ``name`` left-aligned in ``w`` columns, then right-aligned cells,
    after a ``title`` line if given."""
    if title:
        print(f"\n{title}")
    print(f"  {name:<{w}}" + "".join(f"{c:>{cell}}" for c in cells))


def time_ops(kinds: dict[str, Op], n: int, rounds: int, warmup: int = 500) -> dict[str, float]:
    """µs per op: the median over interleaved rounds (order flipped every round) of means."""
    for fn in kinds.values():
        for _ in range(min(n, warmup)):
            fn()
    per: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(rounds):
        for name in list(kinds) if r % 2 == 0 else list(kinds)[::-1]:
            fn, t = kinds[name], time.perf_counter()
            for _ in range(n):
                fn()
            per[name].append((time.perf_counter() - t) / n * 1e6)
    return {k: statistics.median(v) for k, v in per.items()}


def latencies(fn: Op, n: int) -> list[float]:
    """Per-call latency in µs, each call timed on its own (perf_counter_ns)."""
    out = []
    perf = time.perf_counter_ns
    for _ in range(n):
        t = perf()
        fn()
        out.append((perf() - t) / 1000)
    return out


def interleaved(kinds: dict[str, Op], n: int, rounds: int, warmup: int) -> dict[str, list[float]]:
    """Latency samples per kind: ``warmup`` calls each, then ``rounds`` rounds of ``n``
    calls, the order of the kinds flipped every round."""
    for fn in kinds.values():
        latencies(fn, warmup)
    samples: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(rounds):
        for name in list(kinds) if r % 2 == 0 else list(kinds)[::-1]:
            samples[name] += latencies(kinds[name], n)
    return samples


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    """p50, p99 (nearest rank) and the maximum of ``samples``."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return statistics.median(ordered), p99, ordered[-1]
