from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from otpy.testing import FakeClock, stop_all


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    """No test leaves an actor running for the next one."""
    yield
    stop_all()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def thread_baseline() -> Iterator[int]:
    """The thread count before the test; the test asserts its own return to it."""
    yield threading.active_count()
