"""What the web tests share: a runtime with a gated simulated provider, its server, an
authorized client, a job that evaluates only as fast as the test lets it, and an SSE
reader.

The :class:`Gate` is the ``responses`` callable of the provider the jobs' program runs on:
each call waits until the test allows it (``allow(n)``, or ``open()`` for all), so a job's
progress is exactly what the test decides; ``entered`` counts the calls that began, which
is how a test sees that no evaluation started.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

import otpy
from otpy import Runtime
from otpy.providers import CompletionRequest, SimulatedProvider
from otpy.web import Server

GATED = "gated"
"""The provider the jobs' program runs on."""

PROGRAM = f"""\
name: sums
inputs:
  q: {{type: string}}
steps:
  - name: answer
    type: claude
    provider: {GATED}
    prompt: "{{{{ vars.instruction }}}} Q: {{{{ inputs.q }}}}"
outputs:
  answer: "{{{{ steps.answer.text }}}}"
"""
INSTRUCTIONS = [f"Style {i}." for i in range(12)]
SPACE: dict[str, Any] = {"instruction": INSTRUCTIONS}
"""12 configurations: a grid job over one example evaluates 12 candidates."""
TRAINSET: list[dict[str, Any]] = [{"inputs": {"q": "1+2"}, "expected": "3"}]


class Gate:
    """A simulated provider's answers, each call waiting for the test's permission."""

    def __init__(self, allowed: int = 0) -> None:
        self.changed = threading.Condition()
        self.allowed = allowed
        self.entered = 0
        self.passed = 0
        self.opened = False

    def __call__(self, request: CompletionRequest) -> str:
        with self.changed:
            self.entered += 1
            self.changed.notify_all()
            if not self.changed.wait_for(lambda: self.opened or self.allowed > 0, 30):
                raise TimeoutError("the test never let this call through")
            if not self.opened:
                self.allowed -= 1
            self.passed += 1
            self.changed.notify_all()
        return "3"

    def allow(self, n: int) -> None:
        with self.changed:
            self.allowed += n
            self.changed.notify_all()

    def open(self) -> None:
        with self.changed:
            self.opened = True
            self.changed.notify_all()

    def wait(self, what: str, predicate: Any, timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def wait_entered(self, n: int, timeout: float = 10.0) -> bool:
        """Whether ``n`` calls have begun within ``timeout`` seconds."""
        return self.wait(f"{n} calls", lambda: self.entered >= n, timeout)


@dataclass
class Served:
    """A runtime, its server, a client with the token and one without, and the gate."""

    rt: Runtime
    server: Server
    client: httpx.Client
    anonymous: httpx.Client
    gate: Gate

    def start_job(self, job_id: str | None = None, *, concurrency: int = 2) -> Any:
        """A grid job over :data:`SPACE` on the gated provider (12 evaluations)."""
        return self.rt.jobs.start(
            PROGRAM,
            SPACE,
            TRAINSET,
            "contains",
            "grid",
            concurrency=concurrency,
            job_id=job_id or f"job-{uuid.uuid4().hex[:6]}",
        )


@contextmanager
def served(config: dict[str, Any] | None = None, **serve: Any) -> Iterator[Served]:
    """A runtime (unique name, jobs in memory, no plugins, a fast simulated default
    provider and the gated one) serving on 127.0.0.1 (``serve``: ``rt.serve`` keywords);
    stopped afterwards, the gate opened first so no call is left waiting."""
    base: dict[str, Any] = {
        "name": f"web-{uuid.uuid4().hex[:8]}",
        "jobs_store": ":memory:",
        "plugins": False,
    }
    rt = otpy.start({**base, **(config or {})})
    gate = Gate()
    try:
        rt.providers.register_provider(
            GATED,
            SimulatedProvider(GATED, responses=gate),
            priority=-1,  # picked only when a step names it
            limits={"timeout": None, "max_attempts": 1, "rpm": 6000, "tpm": 1_000_000},
        )
        server = rt.serve(**serve)
        headers = {"Authorization": f"Bearer {server.token}"}
        with (
            httpx.Client(base_url=server.url, headers=headers, timeout=10) as client,
            httpx.Client(base_url=server.url, timeout=10) as anonymous,
        ):
            yield Served(rt, server, client, anonymous, gate)
    finally:
        gate.open()
        rt.stop()


def read_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(event, data)`` of each server-sent event of a streaming response."""
    kind, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif not line and data:
            yield kind, json.loads(data)
            kind, data = "message", ""


def next_event(
    events: Iterator[tuple[str, dict[str, Any]]], kind: str, predicate: Any = None
) -> dict[str, Any]:
    """The next event of ``kind`` whose data satisfies ``predicate`` (the client's read
    timeout ends a wait for one that never comes)."""
    for event, data in events:
        if event == kind and (predicate is None or predicate(data)):
            return data
    raise AssertionError(f"the stream ended before a {kind!r} event")
