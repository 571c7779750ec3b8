"""Stress: 1,000 crashes under call load; every restart happens, no thread is left over."""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

import pytest

from otpy.supervision import ChildSpec, DynamicSupervisor, GenServer, NamedHandle, Supervisor

CRASHES = 1_000
WORKERS = 8
CRASHERS = 4
CALLERS = 6


class Starts:
    """Counts starts per name and lets a thread wait for the next one."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.count: Counter[str] = Counter()

    def started(self, name: str) -> None:
        with self.cond:
            self.count[name] += 1
            self.cond.notify_all()

    def wait(self, name: str, n: int) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.count[name] >= n, 10):
                raise TimeoutError(f"{name}: {self.count[name]} of {n} starts")


class Member(GenServer):
    def __init__(self, name: str, starts: Starts) -> None:
        super().__init__()
        self.name = name
        self.starts = starts

    def on_start(self) -> None:
        self.starts.started(self.name)

    def on_receive(self, message: Any) -> Any:
        if message == "die":
            raise RuntimeError(f"{self.name} crashes on purpose")
        return (self.name, message)


def _run_load(names: list[str], starts: Starts) -> tuple[int, list[BaseException]]:
    """CRASHERS threads crash their own workers one incarnation at a time while CALLERS
    threads call random workers by name; returns (calls served, caller errors)."""
    stop = threading.Event()
    errors: list[BaseException] = []
    served = [0] * CALLERS

    def caller(i: int) -> None:
        rng = random.Random(i)
        handles = [NamedHandle(n, timeout=10) for n in names]
        while not stop.is_set():
            handle = rng.choice(handles)
            try:
                assert handle.call(i) == (handle.name, i)
                served[i] += 1
            except BaseException as exc:  # any error is a failure of the runtime
                errors.append(exc)
                return

    def crasher(i: int) -> None:
        mine = names[i::CRASHERS]
        rng = random.Random(100 + i)
        for _ in range(CRASHES // CRASHERS):
            name = rng.choice(mine)
            before = starts.count[name]
            NamedHandle(name).cast("die")
            starts.wait(name, before + 1)  # its restart happened before the next crash

    callers = [threading.Thread(target=caller, args=(i,)) for i in range(CALLERS)]
    crashers = [threading.Thread(target=crasher, args=(i,)) for i in range(CRASHERS)]
    for t in callers + crashers:
        t.start()
    for t in crashers:
        t.join(120)
    stop.set()
    for t in callers:
        t.join(30)
    return sum(served), errors


def _join_new_threads(before: set[threading.Thread]) -> None:
    for thread in threading.enumerate():
        if thread not in before and thread is not threading.current_thread():
            thread.join(10)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["one_for_one", "rest_for_one"])
def test_thousand_crashes_under_load_supervisor(strategy: str) -> None:
    before = set(threading.enumerate())
    baseline = threading.active_count()
    starts = Starts()
    names = [f"member-{i}" for i in range(WORKERS)]
    specs = [ChildSpec.actor(Member, n, starts, register_as=n) for n in names]
    sup = Supervisor.start(specs, strategy=strategy, max_restarts=10**6, max_seconds=1)

    served, errors = _run_load(names, starts)

    assert errors == []
    assert served > 0
    own_restarts = sum(starts.count.values()) - WORKERS
    if strategy == "one_for_one":
        assert own_restarts == CRASHES  # exactly one restart per crash
    else:
        assert own_restarts >= CRASHES  # the later siblings restart too
    assert sup.count_children().active == WORKERS
    assert sup.stop() is True
    _join_new_threads(before)
    assert threading.active_count() == baseline


@pytest.mark.slow
def test_thousand_crashes_under_load_dynamic_supervisor() -> None:
    before = set(threading.enumerate())
    baseline = threading.active_count()
    starts = Starts()
    names = [f"dyn-{i}" for i in range(WORKERS)]
    sup = DynamicSupervisor.start(max_restarts=10**6, max_seconds=1, max_children=WORKERS)
    for n in names:
        sup.start_child(ChildSpec.actor(Member, n, starts, register_as=n))

    served, errors = _run_load(names, starts)

    assert errors == []
    assert served > 0
    assert sum(starts.count.values()) - WORKERS == CRASHES
    assert sup.count_children().active == WORKERS
    assert sup.stop() is True
    _join_new_threads(before)
    assert threading.active_count() == baseline
