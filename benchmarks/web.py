"""otpy's web server (``rt.serve()``): the job status endpoint's latency under 50
concurrent keep-alive clients while a 32-way job runs (goal: p99 < 50 ms), sending back to
back and polling every 100 ms, against the same endpoint with nothing else running, a 404
under the same load (the framework's floor) and ``JobHandle.status()`` called in-process,
and the job's pace with and without the load; then the event stream's fan-out: one
client, then 100, each receiving every broadcast event (delivery latency from broadcast
to read).

The clients run in another process (``benchmarks/_webload.py``: raw HTTP over asyncio
streams), so this process serves and is measured alone. Run from the repo root:
``.venv/bin/python benchmarks/web.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _harness import latencies, percentiles, row

import otpy
from otpy.actors import JobHandle
from otpy.providers import SimulatedProvider
from otpy.web import Server

HERE = Path(__file__).resolve().parent
LATENCY = 0.05
CONCURRENCY = 32
CLIENTS = 50
SSE_CLIENTS = 100
GOAL_P99_MS = 50.0
POLL = 0.1
"""Row (d): each client's request interval (50 clients: 500 requests/s offered)."""
PROGRAM = """\
name: qa
inputs: {question: {type: string}}
steps:
  - name: answer
    type: claude
    prompt: "Q: {{ inputs.question }}"
    temperature: "{{ vars.temperature }}"
"""
SPACE: dict[str, Any] = {"temperature": {"low": 0.0, "high": 1.5}}
TRAINSET = [{"inputs": {"question": "What is 2 + 2?"}, "expected": "4"}]


def load(*args: str) -> dict[str, Any]:
    """Run the load generator with ``args``; its JSON result."""
    done = subprocess.run(
        [sys.executable, str(HERE / "_webload.py"), *args],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def status_load(
    server: Server, path: str, seconds: float, expect: int, interval: float = 0.0
) -> list[float]:
    """Latencies (ms) of ``CLIENTS`` clients getting ``path`` for ``seconds``: back to back,
    or each one request every ``interval`` seconds."""
    result = load("status", server.url, path, "--clients", str(CLIENTS), "--seconds",
                  str(seconds), "--interval", str(interval))  # fmt: skip
    assert set(result["statuses"]) == {str(expect)}, result["statuses"]
    samples: list[float] = result["latencies"]
    return samples


def start_job(rt: otpy.Runtime) -> JobHandle:
    return rt.jobs.start(
        PROGRAM, SPACE, TRAINSET, "exact_match",
        max_evaluations=1_000_000, concurrency=CONCURRENCY, job_id=f"bench-{uuid.uuid4().hex[:6]}",
    )  # fmt: skip


def status_section(rt: otpy.Runtime, server: Server, seconds: float, rounds: int) -> None:
    """Row (b) runs ``rounds`` times before the job starts; rows (c) to (e) in ``rounds``
    interleaved rounds while it runs (the order flipped every round). Each cell is the
    median over its rounds; each round lasts ``seconds``."""
    title = f"1. GET /api/jobs/ID, {CLIENTS} keep-alive clients, {rounds} x {seconds:g} s each"
    row("", "p50 ms", "p99 ms", "max ms", "req/s", "p99<50ms", title=title)
    idle = start_job(rt)
    idle.cancel()
    us = latencies(idle.status, 20_000)
    p50, p99, top = percentiles(us)
    row("(a) JobHandle.status() in-process (baseline)", f"{p50 / 1000:.4f}",
        f"{p99 / 1000:.4f}", f"{top / 1000:.2f}", "", "")  # fmt: skip
    figures: dict[str, list[tuple[float, float, float, float]]] = {}

    def measure(name: str, path: str, expect: int, interval: float) -> None:
        samples = status_load(server, path, seconds, expect, interval)
        figures.setdefault(name, []).append((*percentiles(samples), len(samples) / seconds))

    for _ in range(rounds):
        measure("(b) the endpoint, nothing else running", f"/api/jobs/{idle.id}", 200, 0.0)
    job = start_job(rt)
    kinds = {
        f"(c) the endpoint, a {CONCURRENCY}-way job running": (f"/api/jobs/{job.id}", 200, 0.0),
        "(d) as (c), each client polling every 100 ms": (f"/api/jobs/{job.id}", 200, POLL),
        "(e) a 404 (gate, router) while it runs: floor": ("/api/none", 404, 0.0),
    }
    try:
        time.sleep(0.5)  # let the job reach its full 32 evaluations in flight
        in_flight, quiet = job.status().in_flight, job.status()
        time.sleep(seconds)  # the job's pace with no request to serve
        unloaded = (job.status().evaluations_done - quiet.evaluations_done) / (
            job.status().elapsed - quiet.elapsed
        )
        loaded_from = job.status()
        for r in range(rounds):
            for name in list(kinds) if r % 2 == 0 else list(kinds)[::-1]:
                measure(name, *kinds[name])
        status = job.status()
        loaded = (status.evaluations_done - loaded_from.evaluations_done) / (
            status.elapsed - loaded_from.elapsed
        )
    finally:
        job.cancel()
    for name, cells in figures.items():
        p50, p99, top, rate = (statistics.median(f[i] for f in cells) for i in range(4))
        mark = "" if name.startswith("(e)") else ("yes" if p99 < GOAL_P99_MS else "NO")
        row(name, f"{p50:.2f}", f"{p99:.2f}", f"{top:.1f}", f"{rate:,.0f}", mark)
    print(f"  the job: {in_flight} evaluations in flight; {unloaded:,.0f} evaluations/s alone, "
          f"{loaded:,.0f}/s while serving (ideal {CONCURRENCY / LATENCY:,.0f}/s)")  # fmt: skip


def sse_section(server: Server, events: int) -> None:
    title = f"2. /api/events fan-out: {events} broadcast events, every client reads all"
    row("", "events", "p50 ms", "p99 ms", "max ms", "deliv/s", title=title)
    hub = server.context.hub
    for clients in (1, SSE_CLIENTS):
        process = subprocess.Popen(
            [sys.executable, str(HERE / "_webload.py"), "sse", server.url, "--clients",
             str(clients), "--events", str(events), f"--token={server.token}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stderr is not None
        said = []  # every client has its hello: "ready" (what comes before it is kept)
        for line in process.stderr:
            if line.strip() == "ready":
                break
            said.append(line)
        else:
            raise RuntimeError(f"the SSE clients never got ready:\n{''.join(said)}")
        started = time.monotonic()
        for _ in range(events):
            hub.publish("bench", {"at": time.monotonic()})
            time.sleep(0.002)  # a broadcast every 2 ms: 500 events/s
        out, err = process.communicate(timeout=120)
        elapsed = time.monotonic() - started
        samples = json.loads(out)["latencies"]
        assert len(samples) == clients * events, (len(samples), err)
        p50, p99, top = percentiles(samples)
        row(f"({'a' if clients == 1 else 'b'}) {clients} client{'s' * (clients > 1)}",
            f"{len(samples):,}", f"{p50:.2f}", f"{p99:.2f}", f"{top:.1f}",
            f"{len(samples) / elapsed:,.0f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (CI)")
    args = parser.parse_args()
    seconds, rounds, events = (0.15, 1, 20) if args.quick else (3.0, 3, 500)
    print(f"otpy web benchmark: Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"simulated provider latency {LATENCY * 1000:.0f} ms")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        rt = otpy.start({"name": f"bench-{uuid.uuid4().hex[:6]}", "plugins": False,
                         "jobs_store": str(Path(folder) / "jobs.sqlite")})  # fmt: skip
        with rt:
            provider = SimulatedProvider(latency=LATENCY, responses={"2 + 2": "4"})
            rt.providers.register_provider(
                "simulated", provider, limits={"timeout": None}, replace=True
            )
            server = rt.serve()
            status_section(rt, server, seconds, rounds)
            sse_section(server, events)


if __name__ == "__main__":
    main()
