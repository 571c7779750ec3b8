"""otpy's pipeline executor against calling the steps directly: the overhead per step of
``run_plan`` and of a supervised run, 100 concurrent 5-step pipelines on a simulated
provider with 20 ms latency against the ideal wall time, the cost of compiling, and the
overhead per item of a 1,000-item ``for_loop``.

Run from the repo root: ``.venv/bin/python benchmarks/pipelines.py [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import yaml
from _harness import Op, interleaved, percentiles, row, run, time_ops

import otpy
from otpy.pipelines import Plan, load_pipeline, run_plan
from otpy.steps import Step, StepContext, StepMetadata, StepResult

STEPS = 5
TEXT = "the quick brown fox"


class Echo(Step):
    """The cheapest step type: its output is its ``text`` field (no provider)."""

    metadata = StepMetadata(description="echoes its text", required_fields=("text",))

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        return StepResult(output=step["text"])


# -- the pipelines ----------------------------------------------------------------------------


def chain(kind: str, field: str, steps: int = STEPS) -> str:
    """``steps`` steps of type ``kind``, each reading the output of the one before."""
    lines = [f"name: {kind}_chain", "inputs:", "  text: {type: string}", "steps:"]
    for i in range(steps):
        source = "inputs.text" if i == 0 else f"steps.s{i - 1}.output"
        value = f"{{{{ {source} }}}}" if kind == "echo" else f"Step {i}: {{{{ {source} }}}}"
        lines.append(f'  - {{name: s{i}, type: {kind}, {field}: "{value}"}}')
    return "\n".join(lines) + "\n"


def direct(kind: str, field: str, step: Step, context: StepContext) -> Op:
    """The baseline: the same chain as :func:`chain`, calling ``step.execute`` in a loop
    (the templates as f-strings; no validation, no accounting, no telemetry)."""

    def run() -> object:
        previous: Any = TEXT
        for i in range(STEPS):
            value = previous if kind == "echo" else f"Step {i}: {previous}"
            config = {"name": f"s{i}", "type": kind, field: value}
            previous = step.execute(config, context).output
        return previous

    return run


def big_pipeline(steps: int = 20) -> str:
    """A 20-step pipeline as users write them: claude/gemini steps with sampling fields,
    templates reading inputs and earlier steps, ``when``, ``on_error`` with fallbacks, a
    variable, declared outputs."""
    out = [
        "name: report",
        "description: A long analysis pipeline (compile benchmark)",
        "inputs:",
        "  document: {type: string, description: the text to analyse}",
        "  audience: {type: string, default: engineers}",
        "  detailed: {type: boolean, default: true}",
        "defaults: {provider: simulated, options: {temperature: 0.2, max_tokens: 512}}",
        "steps:",
        "  - name: topic",
        "    type: set_variable",
        '    variables: {audience: "{{ inputs.audience }}"}',
    ]
    for i in range(1, steps):
        previous = "inputs.document" if i == 1 else f"steps.s{i - 1}.output"
        name = f"s{i}" if i < steps - 1 else "summary"
        out += [f"  - name: {name}", f"    type: {'gemini' if i % 4 == 0 else 'claude'}"]
        out.append(f'    prompt: "Part {i} for {{{{ vars.audience }}}}: {{{{ {previous} }}}}"')
        if i % 3 == 0:
            out += ["    system: You are a careful analyst.", "    temperature: 0.0"]
        if i % 5 == 0:
            out.append('    when: "{{ inputs.detailed }}"')
        if i % 7 == 0:
            out += [
                "    on_error: fallback",
                '    fallback: {step: {type: claude, prompt: "Briefly: {{ inputs.document }}"}}',
            ]
        elif i % 6 == 0:
            out.append("    on_error: continue")
    out += ["outputs:", '  summary: "{{ steps.summary.output }}"']
    out.append('  tokens: "{{ steps.s1.usage }}"')
    return "\n".join(out) + "\n"


# -- timing helpers ---------------------------------------------------------------------------


def runtime(providers: dict[str, Any]) -> otpy.Runtime:
    return otpy.start(
        {"name": f"bench-{uuid.uuid4().hex[:6]}", "plugins": False, "providers": providers}
    )


# -- 1. overhead per step ---------------------------------------------------------------------


def bench_overhead(n: int, rounds: int) -> None:
    """One plan (compiled once) run (a) by run_plan in this thread and (b) in a supervised
    worker, against (c) the same step object's execute called in a loop."""
    # Zero latency, and no per-call timeout (a timeout runs each attempt on a pooled runner
    # thread): what is left is the executor's own work, plus the provider guard for claude.
    with runtime({"simulated": {"limits": {"timeout": None}}}) as rt:
        rt.steps.register_step("echo", Echo)
        cases = (("1a", "echo", "text", n), ("1b", "claude", "prompt", n // 2))
        for number, kind, field, runs in cases:
            plan = rt.compile_pipeline(chain(kind, field))
            step = rt.steps.get_step(kind).step_cls()
            context = StepContext(providers=rt.providers if kind == "claude" else None)
            base = direct(kind, field, step, context)
            inputs = {"text": TEXT}
            in_thread = partial(run_plan, plan, inputs, providers=rt.providers)
            supervised = partial(rt.run_pipeline, plan, inputs, timeout=10)
            expected = base()
            for result in (in_thread(), supervised()):
                assert result.status == "completed", result.error
                assert result.outputs[f"s{STEPS - 1}"] == expected, (result.outputs, expected)
            samples = interleaved(
                {
                    "(c) step.execute x5, direct (baseline)": base,
                    "(a) run_plan, calling thread": in_thread,
                    "(b) rt.run_pipeline, supervised worker": supervised,
                },
                runs,
                rounds,
                warmup=max(10, runs // 10),
            )
            title = (
                f"{number}. A {STEPS}-step pipeline of `{kind}`"
                + (" (simulated provider, 0 ms latency)" if kind == "claude" else " (no provider)")
                + f": µs per run ({runs:,} runs x {rounds} rounds; "
                "+µs/step: (p50 - baseline p50) / 5)"
            )
            row("", "p50", "p99", "+µs/step", title=title)
            c50, _, _ = percentiles(samples["(c) step.execute x5, direct (baseline)"])
            for name, values in samples.items():
                v50, v99, _ = percentiles(values)
                extra = "" if name.startswith("(c)") else f"{(v50 - c50) / STEPS:.1f}"
                row(name, f"{v50:.1f}", f"{v99:.1f}", extra)


# -- 2. 100 concurrent pipelines --------------------------------------------------------------


def batch_supervised(rt: otpy.Runtime, plan: Plan, count: int) -> tuple[float, float]:
    """(wall s, s until the last one was started) for ``count`` runs started at once."""
    t = time.perf_counter()
    runs = [rt.start_pipeline(plan, {"text": f"{TEXT} {i}"}) for i in range(count)]
    started = time.perf_counter() - t
    for started_run in runs:
        result = started_run.wait(60)
        assert result.status == "completed", result.error
    return time.perf_counter() - t, started


def batch_pool(
    rt: otpy.Runtime, plan: Plan, count: int, pool: ThreadPoolExecutor
) -> tuple[float, float]:
    """The same with ``run_plan`` on an already warm thread pool."""
    t = time.perf_counter()
    futures = [
        pool.submit(run_plan, plan, {"text": f"{TEXT} {i}"}, providers=rt.providers)
        for i in range(count)
    ]
    started = time.perf_counter() - t
    for future in futures:
        result = future.result(60)
        assert result.status == "completed", result.error
    return time.perf_counter() - t, started


LIMITS: list[tuple[str, dict[str, Any]]] = [
    (
        "the simulated type's default limits (no rpm/tpm: no limiter; no timeout: each "
        "attempt in the calling thread; 3 attempts; breaker 5 / 30 s)",
        {},
    ),
    ("limits {timeout: 120}: each attempt on a pooled timeout runner", {"timeout": 120}),
]


def bench_concurrent(rounds: int, count: int = 100, latency: float = 0.02) -> None:
    """Wall time of ``count`` concurrent runs against the ideal (all steps overlap)."""
    ideal = STEPS * latency
    cells = ("wall ms", "best ms", "start ms", "cpu ms", "ideal ms", "wall/ideal")
    row("", *cells, title=f"2. {count} concurrent {STEPS}-step `claude` pipelines, simulated "
        f"provider {latency * 1000:.0f} ms/call on the real clock (median of {rounds} rounds; "
        f"start: until the last run was started; cpu: process CPU time)", w=40)  # fmt: skip
    for label, limits in LIMITS:
        print(f"   {label}")
        config = {"simulated": {"options": {"latency": latency}, "limits": limits or None}}
        with runtime(config) as rt, ThreadPoolExecutor(count) as pool:
            plan = rt.compile_pipeline(chain("claude", "prompt"))
            kinds: dict[str, Callable[[], tuple[float, float]]] = {
                f"run_plan x{count}, warm thread pool": partial(batch_pool, rt, plan, count, pool),
                f"rt.start_pipeline x{count}, wait all": partial(batch_supervised, rt, plan, count),
            }
            for fn in kinds.values():
                fn()  # warm-up (and the pool's threads)
            walls: dict[str, list[tuple[float, float, float]]] = {k: [] for k in kinds}
            for r in range(rounds):
                for name in list(kinds) if r % 2 == 0 else list(kinds)[::-1]:
                    cpu = time.process_time()
                    wall, started = kinds[name]()
                    walls[name].append((wall, started, time.process_time() - cpu))
            for name, values in walls.items():
                wall, started, cpu = (statistics.median(v[i] for v in values) for i in range(3))
                best = min(v[0] for v in values)
                ms = (wall, best, started, cpu, ideal)
                row(name, *(f"{x * 1000:.0f}" for x in ms), f"{wall / ideal:.2f}x", w=40)


# -- 3. compile -------------------------------------------------------------------------------


def bench_compile(n: int, rounds: int) -> None:
    text = big_pipeline()
    with runtime({"simulated": {}}) as rt:
        plan = rt.compile_pipeline(text)
        assert len(plan.steps) == 20, len(plan.steps)
        base = "yaml.safe_load (baseline)"
        kinds: dict[str, Op] = {
            base: lambda: yaml.safe_load(text),
            "yaml.load, CSafeLoader (libyaml)": lambda: yaml.load(text, Loader=yaml.CSafeLoader),
            "load_pipeline (parse, schema, templates)": lambda: load_pipeline(text),
            "rt.compile_pipeline (+ resolve, validate)": lambda: rt.compile_pipeline(text),
        }
        us = time_ops(kinds, n, rounds, warmup=max(10, n // 5))
    lines = text.count("\n")
    row("", "µs/op", "vs base", title=f"3. Compile a 20-step pipeline ({lines} lines of YAML, "
        f"{len(text):,} chars; {n:,} ops x {rounds} rounds, median)")  # fmt: skip
    for name, value in us.items():
        row(name, f"{value:,.0f}", f"{value / us[base]:.2f}x")


# -- 4. a 1,000-item for_loop -----------------------------------------------------------------

LOOP = """\
name: loop_bench
inputs: {{items: {{type: array}}}}
steps:
  - name: each
    type: for_loop
    iterator: item
    data_source: inputs.items{parallel}
    steps:
      - {{name: echo, type: echo, text: "item {{{{ loop.item }}}}"}}
"""


def bench_loop(items: int, rounds: int) -> None:
    """A for_loop over ``items`` items whose one step is an ``echo`` (no provider), run by
    run_plan, against the baseline: the same step's execute called once per item."""
    values = list(range(items))
    with runtime({}) as rt:
        rt.steps.register_step("echo", Echo)
        step, context = Echo(), StepContext()

        def base() -> object:
            return [step.execute({"name": "echo", "text": f"item {v}"}, context) for v in values]

        kinds: dict[str, Op] = {"step.execute per item, direct (baseline)": base}
        for label, parallel in (
            ("sequential", ""),
            ("parallel: true, max_parallel 4", "\n    parallel: true\n    max_parallel: 4"),
        ):
            plan = rt.compile_pipeline(LOOP.format(parallel=parallel))
            result = run_plan(plan, {"items": values})
            assert result.status == "completed", result.error
            iterations = result.step("each").output["iterations"]
            assert (
                len(iterations) == items
                and iterations[-1]["results"]["echo"] == f"item {items - 1}"
            )
            kinds[f"run_plan, for_loop ({label})"] = partial(run_plan, plan, {"items": values})
        us = time_ops(kinds, 1, rounds, warmup=1)
    base_us = us["step.execute per item, direct (baseline)"]
    title = (f"4. A for_loop over {items:,} items, one echo step each (median of {rounds} "
             "rounds; +µs/item: (run - baseline) / items)")  # fmt: skip
    row("", "ms/run", "µs/item", "+µs/item", title=title, w=52)
    for name, value in us.items():
        extra = "" if value == base_us else f"{(value - base_us) / items:.1f}"
        row(name, f"{value / 1000:.1f}", f"{value / items:.1f}", extra, w=52)


def sections(args: argparse.Namespace) -> None:
    quick = args.quick
    n, rounds = (50, 1) if quick else (2_000, 5)
    bench_overhead(n, rounds)
    bench_concurrent(1 if quick else 9)
    bench_compile(10 if quick else 200, rounds)
    bench_loop(100 if quick else 1_000, 1 if quick else 9)


def main() -> None:
    run("pipelines", __doc__, sections)


if __name__ == "__main__":
    main()
