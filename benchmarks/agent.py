"""The agent loop on the simulated provider: turns per second against sending the same
requests straight to the provider, and the overhead per tool call against calling the
tool's function (or the file operation) directly.

Run from the repo root: ``.venv/bin/python benchmarks/agent.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _harness import Op, row, threads_left, time_ops

import otpy
from otpy.agent import BUILTIN_TOOLS, ToolContext, python_tool, run_agent
from otpy.providers import CompletionRequest, SimulatedProvider
from otpy.workspace import Workspace

TURNS = 10


def noop(value: int) -> int:
    """Give the value back."""
    return value


NOOP = python_tool(noop)


def script(turns: int, calls: int) -> list[Any]:
    """``turns - 1`` turns of ``calls`` noop calls each, then a final answer."""
    call = {"name": "noop", "arguments": {"value": 7}}
    return [*({"calls": [call] * calls} for _ in range(turns - 1)), "done"]


def loop(sim: SimulatedProvider, complete: Any = None) -> Op:
    request = CompletionRequest(prompt="work through the task", max_tokens=256)
    send = complete or sim.complete

    def run() -> object:
        return run_agent(send, request, [NOOP])

    return run


def replay(sim: SimulatedProvider) -> Op:
    """The baseline: the requests one loop run sends, sent straight to the provider."""
    sim.reset_statistics()
    loop(sim)()
    requests = sim.requests

    def run() -> object:
        for request in requests:
            sim.complete(request)
        return None

    return run


def bench_turns(n: int, rounds: int) -> None:
    sim = SimulatedProvider(tool_script=script(TURNS, 1))
    name = f"bench-agent-{uuid.uuid4().hex[:6]}"
    config = {"name": name, "plugins": False, "providers": {}, "jobs_store": ":memory:"}
    with otpy.start(config) as rt:
        rt.providers.register_provider("sim", sim, limits={"timeout": None})
        guarded = loop(sim, lambda request: rt.providers.complete(request, provider="sim"))
        base = f"sim.complete x{TURNS}, the same requests (baseline)"
        kinds: dict[str, Op] = {
            base: replay(sim),
            "run_agent on sim.complete": loop(sim),
            "run_agent through rt.providers (guard)": guarded,
        }
        us = time_ops(kinds, n, rounds, warmup=max(5, n // 5))
    row("", "µs/run", "turns/s", "vs base", title=f"1. A {TURNS}-turn agent run (one noop tool "
        f"call a turn; {n:,} runs x {rounds} rounds, median)")  # fmt: skip
    for label, value in us.items():
        row(label, f"{value:,.0f}", f"{TURNS / value * 1e6:,.0f}", f"{value / us[base]:.2f}x")
    loop_us = us["run_agent on sim.complete"]
    print(f"   loop overhead per turn: {(loop_us - us[base]) / TURNS:,.1f} µs")


def bench_calls(n: int, rounds: int, per_turn: int = 8) -> None:
    few = SimulatedProvider(tool_script=script(2, 0))
    many = SimulatedProvider(tool_script=script(2, per_turn))
    kinds: dict[str, Op] = {"a 2-turn run, no call": loop(few),
                            f"a 2-turn run, {per_turn} calls in its first": loop(many)}  # fmt: skip
    us = time_ops(kinds, n, rounds, warmup=max(5, n // 5))
    in_loop = us[f"a 2-turn run, {per_turn} calls in its first"] - us["a 2-turn run, no call"]
    row("", "µs/call", title=f"2. Per tool call ({n:,} x {rounds} rounds, median)")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "data.txt").write_text("x" * 1000 + "\n")
        context = ToolContext(workspace=Workspace(root))
        read, write = BUILTIN_TOOLS["Read"], BUILTIN_TOOLS["Write"]
        body = "y" * 1000
        ops: dict[str, Op] = {
            "noop(7) (baseline)": lambda: noop(7),
            "Tool.run(noop): validate, call, to text": lambda: NOOP.run({"value": 7}, context),
            "open().read() of 1 KB (baseline)": lambda: (root / "data.txt").read_text(),
            "Read of 1 KB (confine, read, number lines)": lambda: read.run(
                {"file_path": "data.txt"}, context
            ),
            "write_text of 1 KB (baseline)": lambda: (root / "out.txt").write_text(body),
            "Write of 1 KB (confine, write, record)": lambda: write.run(
                {"file_path": "out.txt", "content": body}, context
            ),
        }
        call_us = time_ops(ops, n * 20, rounds, warmup=200)
    for label, value in call_us.items():
        row(label, f"{value:,.1f}")
    row(f"in the loop: one more call (spans, record, result message; {per_turn}/turn)",
        f"{in_loop / per_turn:,.1f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run of a few seconds")
    quick = parser.parse_args().quick
    print(
        f"otpy agent benchmark{' (--quick)' if quick else ''}: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    t = time.perf_counter()
    n, rounds = (20, 3) if quick else (200, 5)
    bench_turns(n, rounds)
    bench_calls(n, rounds)
    print(f"\ntotal {time.perf_counter() - t:.1f} s, load average {os.getloadavg()[0]:.2f}, "
          f"threads left: {threads_left()}")  # fmt: skip


if __name__ == "__main__":
    main()
