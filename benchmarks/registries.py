"""otpy's registries against plain baselines: get_step vs dict.get (lock-free snapshot
reads), register_step (a call to the registry actor), select per strategy, and a guarded
complete on the simulated provider vs calling it directly.

Run from the repo root: ``.venv/bin/python benchmarks/registries.py [--quick]``.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from _harness import Op, interleaved, percentiles, row, run

import otpy
from otpy.providers import STRATEGIES, CompletionRequest, SimulatedProvider
from otpy.steps import Step, StepContext, StepMetadata, StepResult


class Noop(Step):
    metadata = StepMetadata(description="does nothing", capabilities=("text",))

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        return StepResult(output=None)


def table(title: str, kinds: dict[str, Op], n: int, rounds: int) -> None:
    """Interleaved rounds; p50/p99 over all samples of a kind."""
    samples = interleaved(kinds, n, rounds, warmup=min(n, 1000))
    row("", "p50 µs", "p99 µs", "max µs", title=f"{title} ({n:,} calls x {rounds} rounds)")
    for name, values in samples.items():
        p50, p99, top = percentiles(values)
        row(name, f"{p50:.2f}", f"{p99:.2f}", f"{top:.0f}")


def bench_steps(rt: otpy.Runtime, n: int, rounds: int) -> None:
    for i in range(1000):
        rt.steps.register_step(f"step_{i}", Noop)
    plain = {f"step_{i}": i for i in range(1000)}
    table(
        "1. Step look-up among 1,010 step types (a snapshot read: no lock, no message)",
        {
            "dict.get (baseline)": lambda: plain.get("step_500"),
            "rt.steps.get_step": lambda: rt.steps.get_step("step_500"),
            "rt.steps.has_step": lambda: rt.steps.has_step("step_500"),
        },
        n,
        rounds,
    )
    counter = iter(range(10**9))
    table(
        "2. register_step (a call to the registry actor, which publishes a new table)",
        {
            "rt.steps.register_step (new name)": lambda: rt.steps.register_step(
                f"new_{next(counter)}", Noop
            ),
            "rt.steps.register_step (replace)": lambda: rt.steps.register_step(
                "step_1", Noop, replace=True
            ),
        },
        n // 10,
        rounds,
    )
    ops = max(10, min(100, n // 50))
    readers = 4
    row("", "reads/s", "writes/s", title=f"   {readers} busy reader threads while one thread "
        f"registers {ops} (each write waits for GIL turns: actor and caller threads)")  # fmt: skip
    stop = threading.Event()
    reads = [0] * readers

    def read(i: int) -> None:
        while not stop.is_set():
            for _ in range(1000):
                rt.steps.get_step("step_500")
            reads[i] += 1000

    pool = [threading.Thread(target=read, args=(i,)) for i in range(readers)]
    for th in pool:
        th.start()
    t = time.perf_counter()
    for _ in range(ops):
        rt.steps.register_step(f"w_{next(counter)}", Noop)
    wall = time.perf_counter() - t
    stop.set()
    for th in pool:
        th.join()
    row("get_step / register_step", f"{sum(reads) / wall:,.0f}", f"{ops / wall:,.0f}")


def bench_select(rt: otpy.Runtime, n: int, rounds: int) -> None:
    for i in range(4):
        rt.providers.register_provider(
            f"sim{i}",
            SimulatedProvider(f"sim{i}", seed=i),
            priority=i,
            weight=1 + i,
            limits={"timeout": None},  # no watchdog thread per call: measure the guard itself
        )
    caps = ("text", "structured_output")
    table(
        "3. select among 5 providers by capability, per strategy",
        {s: (lambda s=s: rt.providers.select(caps, strategy=s)) for s in STRATEGIES},
        n,
        rounds,
    )
    direct = SimulatedProvider("direct", seed=1)
    request = CompletionRequest(prompt="What is 2+2?", max_tokens=64)
    table(
        "4. complete on the simulated provider: guarded (breaker, retry, limiter) vs direct",
        {
            "SimulatedProvider.complete (baseline)": lambda: direct.complete(request),
            "rt.providers.complete (select + guard)": lambda: rt.providers.complete(
                request, capabilities=("text",)
            ),
        },
        n // 10,
        rounds,
    )


def sections(args: argparse.Namespace) -> None:
    n, rounds = (500, 2) if args.quick else (20_000, 5)
    config = {
        "name": f"bench-{uuid.uuid4().hex[:6]}",
        "plugins": False,
        "providers": {"simulated": {"limits": {"timeout": None}}},
    }
    with otpy.start(config) as rt:
        bench_steps(rt, n, rounds)
        bench_select(rt, n, rounds)


def main() -> None:
    run("registries", __doc__, sections)


if __name__ == "__main__":
    main()
