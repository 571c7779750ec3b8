from __future__ import annotations

import faulthandler
import logging
import os
import sys
import threading
from collections.abc import Iterator

import pytest

from otpy.telemetry import Telemetry, set_telemetry
from otpy.testing import FakeClock, stop_all


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


def pytest_unconfigure(config: pytest.Config) -> None:
    """A thread no test could stop would keep the interpreter alive forever (actor
    threads are not daemons): report it and exit with a failure instead of hanging CI."""
    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if stuck:
        faulthandler.dump_traceback(file=sys.stderr)
        sys.stderr.write(f"\notpy tests: threads never stopped: {[t.name for t in stuck]}\n")
        sys.stderr.flush()
        os._exit(3)


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
