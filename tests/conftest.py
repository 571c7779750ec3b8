from __future__ import annotations

import contextlib
import faulthandler
import fcntl
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

# The suite starts hundreds of Python processes (xdist workers, CLI and benchmark runs, job
# workers, Ray workers): let them share compiled bytecode (``__pycache__``, ignored by
# git) instead of each compiling otpy's sources again, even where the environment says
# PYTHONDONTWRITEBYTECODE. Set before xdist starts its workers, which inherit it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

from otpy.telemetry import Telemetry, set_telemetry  # noqa: E402
from otpy.testing import FakeClock, stop_all  # noqa: E402

ONE_WORKER = ("tests/ray/test_ray_jobs.py",)
"""Test files whose tests all run in one xdist worker, in one unit: they share a resource
that costs seconds to start (the Ray tests: one local Ray per process)."""


@pytest.hookimpl(optionalhook=True)  # xdist's: -p no:xdist runs without it
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one and a half workers per core (3 on 2 cores). The suite waits on
    subprocesses, sockets and Ray's processes about as much as it computes; the tests
    whose bounds are on the real clock run ``alone``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(2, (cores or 1) * 3 // 2)


@pytest.hookimpl(optionalhook=True)  # xdist's: -p no:xdist runs without it
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` (pyproject's addopts), with the files of :data:`ONE_WORKER`
    each one unit: pytest 9 ignores the node-id suffix by which pytest-xdist 3.8 groups
    ``xdist_group`` marks (it sets ``item._nodeid``), so the grouping is done here, on the
    scheduler's side, where only node ids are known."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class _OneWorkerFiles(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in ONE_WORKER else super()._split_scope(nodeid)

    return _OneWorkerFiles(config, log)


FIRST = ("tests/test_project.py::test_mypy_strict_is_clean",)
"""The longest single test (a sixth of the run), started first."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """:data:`FIRST` first: xdist hands tests out in this order (the largest unit, the Ray
    file, before any: ``--loadscope-reorder``), so it does not start late and leave the
    other workers idle at the end. Tests that use :func:`alone` last (the Ray file's too,
    within it): their block waits for every other worker's running test to end, and by
    then the long ones have. The rest keep their order. Stable, so every worker collects
    the same order."""
    items.sort(key=lambda item: item.path.parts)  # one order, however it was collected
    items.sort(key=lambda item: 0 if item.nodeid in FIRST else 1 + ("alone" in item.fixturenames))


class _Turns:
    """A readers-writer lock on two files in ``folder``, shared by the run's xdist workers:
    every test holds ``data`` shared while it runs; a block of a test under :func:`alone`
    holds ``gate`` (so no other test starts) and then ``data`` exclusively (once the
    running ones have ended). A worker that dies releases its locks with its file
    descriptors."""

    def __init__(self, folder: str) -> None:
        self.gate = os.open(os.path.join(folder, "gate"), os.O_RDWR | os.O_CREAT)
        self.data = os.open(os.path.join(folder, "data"), os.O_RDWR | os.O_CREAT)

    @contextlib.contextmanager
    def test(self) -> Iterator[None]:
        fcntl.flock(self.gate, fcntl.LOCK_EX)  # waits while a block runs alone, or waits to
        fcntl.flock(self.gate, fcntl.LOCK_UN)
        fcntl.flock(self.data, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(self.data, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        fcntl.flock(self.data, fcntl.LOCK_UN)  # this test's own hold, or two would deadlock
        fcntl.flock(self.gate, fcntl.LOCK_EX)
        fcntl.flock(self.data, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self.data, fcntl.LOCK_SH)
            fcntl.flock(self.gate, fcntl.LOCK_UN)


_TURNS: list[_Turns] = []
_TURNS_FOLDER = "TESTS_TURNS_FOLDER"  # not OTPY_*: the runtime reads those as settings


def pytest_configure(config: pytest.Config) -> None:
    """The controller makes the lock folder before xdist starts the workers (they inherit
    its path in the environment); each worker opens the locks."""
    if hasattr(config, "workerinput"):
        if _TURNS_FOLDER in os.environ:
            _TURNS.append(_Turns(os.environ[_TURNS_FOLDER]))
        _rotate_collection(config)
    elif config.getoption("numprocesses", default=None):
        os.environ[_TURNS_FOLDER] = tempfile.mkdtemp(prefix="otpy-tests-")


def _rotate_collection(config: pytest.Config) -> None:
    """Each xdist worker collects ``tests/`` starting from a different entry (its items
    are put back in the one order in :func:`pytest_collection_modifyitems`): on a cold
    checkout the workers then rewrite and compile different test files at once, and
    find the others' bytecode for the rest, instead of all doing all of it (5 s of the
    run's start). Only for the default arguments (``testpaths``)."""
    tests = config.rootpath / "tests"
    if [Path(arg).resolve() for arg in config.args] != [tests]:
        return
    entries = sorted(
        entry.name for entry in tests.iterdir()
        if (entry.is_dir() and entry.name != "__pycache__")
        or (entry.name.startswith("test_") and entry.name.endswith(".py"))
    )  # fmt: skip
    worker: dict[str, Any] = config.workerinput  # type: ignore[attr-defined]
    shift = len(entries) * int(worker["workerid"].removeprefix("gw")) // worker["workercount"]
    config.args[:] = [str(tests / name) for name in entries[shift:] + entries[:shift]]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if not _TURNS:
        yield
        return
    with _TURNS[0].test():
        yield


@pytest.fixture
def alone() -> Callable[[], AbstractContextManager[None]]:
    """``with alone():`` a block of the test that runs while no other xdist worker runs a
    test, for a bound on the real clock that a busy machine would break (say, a cancel
    that must stop remote work within a second). Keep the block short: the other workers
    wait for it."""
    return _TURNS[0].alone if _TURNS else contextlib.nullcontext


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    """No test leaves an actor running for the next one; a thread it cannot stop (say, a
    deadlocked actor) fails the test instead of hanging the run at interpreter exit."""
    before = set(threading.enumerate())
    yield
    stop_all()
    left = []
    for thread in threading.enumerate():
        if thread not in before and not thread.daemon:
            thread.join(5)
            if thread.is_alive():
                left.append(thread.name)
    if left:
        pytest.fail(f"threads still running after the test: {left}")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """The controller removes the lock folder. A thread no test could stop would keep the
    interpreter alive forever (actor threads are not daemons): report it and exit with a
    failure instead of hanging CI."""
    if not hasattr(config, "workerinput") and _TURNS_FOLDER in os.environ:
        shutil.rmtree(os.environ.pop(_TURNS_FOLDER), ignore_errors=True)
    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if stuck:
        faulthandler.dump_traceback(file=sys.stderr)
        sys.stderr.write(f"\notpy tests: threads never stopped: {[t.name for t in stuck]}\n")
        sys.stderr.flush()
        os._exit(3)
    if hasattr(config, "workerinput"):
        # A worker has reported its results: skip the interpreter's teardown of
        # everything the suite imported (Ray, DSPy, the SDKs): seconds at the run's end.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hub(clock: FakeClock) -> Iterator[Telemetry]:
    """A fresh default telemetry hub on the fake clock for the test; the old one is put
    back after it."""
    fresh = Telemetry(clock)
    previous = set_telemetry(fresh)
    yield fresh
    set_telemetry(previous)


@pytest.fixture
def quiet_dspy() -> Iterator[None]:
    """DSPy logs every evaluation's score at INFO: quiet while the test reads statuses."""
    logger = logging.getLogger("dspy")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)
