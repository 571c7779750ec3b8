"""The README's main job: a supervision tree that crashes and recovers, printed live;
then the embedded runtime runs a YAML pipeline and a short optimization job
(:mod:`otpy._demo_runtime`).

Tree::

    root (one_for_one)
    ├── counter            a named worker holding a count
    └── pipeline (rest_for_one)
        ├── fetcher
        └── parser         restarted with fetcher, as rest_for_one says

The demo crashes workers, shows that a handle to a name keeps working across restarts,
then makes ``pipeline`` exceed its restart intensity so it escalates to ``root``, which
restarts the whole subtree.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from otpy._demo_runtime import run_runtime_demo
from otpy.log import SecretFilter
from otpy.supervision import (
    ChildSpec,
    Down,
    GenServer,
    NamedHandle,
    ServerRef,
    Supervisor,
    SupervisorRef,
    whereis,
)

__all__ = ["run_demo"]


class Crash(Exception):
    """A deliberate crash."""


class Worker(GenServer):
    """Counts ``bump`` messages; ``crash`` makes it crash (let it crash)."""

    def __init__(self, name: str, announce: Callable[[str, ServerRef[Any]], None]) -> None:
        super().__init__()
        self.name = name
        self.count = 0
        self.announce = announce

    def on_start(self) -> None:
        self.announce(self.name, self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if message == "bump":
            self.count += 1
            return self.count
        if message == "crash":
            raise Crash(f"{self.name} was told to crash")
        return super().on_receive(message)


class _Console:
    """Prints events with a timestamp and lets the demo wait for restarts."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.t0 = time.perf_counter()
        self.lock = threading.Condition()
        self.starts: dict[str, int] = {}
        self.crashes = 0

    def say(self, text: str) -> None:
        if self.verbose:
            print(f"{(time.perf_counter() - self.t0) * 1000:8.1f} ms  {text}", flush=True)

    def started(self, name: str, ref: ServerRef[Any]) -> None:
        with self.lock:
            self.starts[name] = self.starts.get(name, 0) + 1
            n = self.starts[name]
            self.lock.notify_all()
        self.say(f"  + {name} started{'' if n == 1 else f' (incarnation {n})'}")
        ref.monitor(self.exited)

    def exited(self, down: Down) -> None:
        reason = down.reason
        text = reason if isinstance(reason, str) else f"crashed: {reason!r}"
        if not isinstance(reason, str):
            with self.lock:
                self.crashes += 1
        self.say(f"  - {down.ref.actor_class.__name__} {down.ref.name or ''} exited ({text})")

    def wait_starts(self, name: str, n: int, timeout: float = 10.0) -> None:
        with self.lock:
            if not self.lock.wait_for(lambda: self.starts.get(name, 0) >= n, timeout):
                raise RuntimeError(f"{name} did not reach {n} starts within {timeout} s")


def _tree(console: _Console) -> list[ChildSpec]:
    def worker(name: str) -> ChildSpec:
        return ChildSpec.actor(Worker, name, console.started, register_as=name)

    pipeline = ChildSpec(
        id="pipeline",
        type="supervisor",
        start=lambda: Supervisor.start(
            [worker("fetcher"), worker("parser")],
            strategy="rest_for_one",
            max_restarts=2,
            max_seconds=60,
            name="pipeline",
        ),
    )
    return [worker("counter"), pipeline]


def _show(root: SupervisorRef, console: _Console) -> None:
    if not console.verbose:
        return
    for child in root.which_children():
        print(f"{'':13}{child.id:<10} {child.state}")
        if isinstance(child.ref, SupervisorRef):
            for grandchild in child.ref.which_children():
                print(f"{'':15}{grandchild.id:<8} {grandchild.state}")


class _LogLine(logging.Formatter):
    """The supervisors' own log lines, one line each (the tracebacks are left out)."""

    def __init__(self, console: _Console) -> None:
        super().__init__()
        self.console = console

    def format(self, record: logging.LogRecord) -> str:
        elapsed = (time.perf_counter() - self.console.t0) * 1000
        return f"{elapsed:8.1f} ms    [{record.levelname.lower()}] {record.getMessage()}"


def run_demo(verbose: bool = True) -> int:
    """Run the demo; returns 0 once every crash has been recovered from."""
    console = _Console(verbose)
    logger = logging.getLogger("otpy")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_LogLine(console))
    handler.addFilter(SecretFilter())
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if verbose else logging.CRITICAL)
    logger.propagate = False
    try:
        return _run(console)
    finally:
        logger.removeHandler(handler)
        logger.level, logger.propagate = saved


def _run(console: _Console) -> int:
    console.say("starting the tree: root -> counter, pipeline -> (fetcher, parser)")
    root = Supervisor.start(_tree(console), strategy="one_for_one", max_restarts=5, name="root")
    try:
        _show(root, console)
        counter = NamedHandle("counter")
        console.say(f"counter.bump() -> {counter.call('bump')}, {counter.call('bump')}")

        console.say("1. crash counter: one_for_one restarts only counter")
        _crash("counter")
        console.wait_starts("counter", 2)
        console.say(f"   the same handle still works: counter.bump() -> {counter.call('bump')}")

        console.say("2. crash fetcher: rest_for_one restarts fetcher and parser")
        _crash("fetcher")
        console.wait_starts("parser", 2)

        console.say("3. crash parser twice more: pipeline exceeds 2 restarts, escalates to root")
        _crash("parser")
        console.wait_starts("parser", 3)
        _crash("parser")
        console.wait_starts("parser", 4)  # root restarted the whole pipeline subtree
        _show(root, console)

        alive = all(whereis(n) is not None for n in ("counter", "fetcher", "parser", "pipeline"))
        console.say(
            f"done: {console.crashes} crashes, every worker running again: {alive}; "
            f"root restarts in window: {root.statistics().restarts_in_window}"
        )
    finally:
        root.shutdown(timeout=10)
    runtime_ok = run_runtime_demo(console.say)
    if not console.verbose:
        print(
            f"otpy demo: {console.crashes} crashes, recovered: {alive}; "
            f"pipeline and job: {'ok' if runtime_ok else 'FAILED'}"
        )
    return 0 if alive and runtime_ok else 1


def _crash(name: str) -> None:
    ref = whereis(name)
    if ref is None:
        raise RuntimeError(f"{name} is not running")
    ref.tell("crash")
