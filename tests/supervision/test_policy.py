"""Restart policies as plain objects, tested without threads."""

from __future__ import annotations

import pytest

from otpy.errors import ChildSpecError
from otpy.supervision import KILLED, NORMAL, SHUTDOWN, Backoff, RestartIntensity, should_restart
from otpy.testing import FakeClock


@pytest.mark.parametrize(
    ("restart", "reason", "expected"),
    [
        ("permanent", NORMAL, True),
        ("permanent", SHUTDOWN, True),
        ("permanent", ValueError(), True),
        ("transient", NORMAL, False),
        ("transient", SHUTDOWN, False),
        ("transient", KILLED, True),
        ("transient", ValueError(), True),
        ("temporary", NORMAL, False),
        ("temporary", KILLED, False),
        ("temporary", ValueError(), False),
    ],
)
def test_should_restart(restart: str, reason: object, expected: bool) -> None:
    assert should_restart(restart, reason) is expected  # type: ignore[arg-type]


def test_intensity_is_a_sliding_window() -> None:
    clock = FakeClock()
    intensity = RestartIntensity(3, 5.0, clock)
    assert [intensity.add() for _ in range(3)] == [True, True, True]
    clock.advance(4.0)
    assert intensity.add() is False  # 4 in the last 5 s
    clock.advance(1.5)  # the first three are now 5.5 s old
    assert intensity.restarts_in_window() == 1
    assert intensity.add() is True


def test_intensity_zero_allows_no_restart() -> None:
    assert RestartIntensity(0, 1.0, FakeClock()).add() is False


@pytest.mark.parametrize(
    ("max_restarts", "max_seconds", "field"),
    [
        (-1, 5, "max_restarts"),
        (1.5, 5, "max_restarts"),
        (True, 5, "max_restarts"),
        (3, 0, "max_seconds"),
        (3, float("inf"), "max_seconds"),
        (3, "5", "max_seconds"),
    ],
)
def test_intensity_validation(max_restarts: object, max_seconds: object, field: str) -> None:
    with pytest.raises(ChildSpecError) as info:
        RestartIntensity(max_restarts, max_seconds, FakeClock())  # type: ignore[arg-type]
    assert info.value.field == field


def test_backoff_delays_double_up_to_the_cap() -> None:
    backoff = Backoff(min=0.5, max=4.0, random_factor=0.0)
    assert [backoff.delay(n, 0.99) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.delay(10_000, 0.0) == 4.0  # no overflow for long failure runs


def test_backoff_jitter_scales_the_delay() -> None:
    backoff = Backoff(min=1.0, max=10.0, random_factor=0.5)
    assert backoff.delay(1, 0.0) == 2.0
    assert backoff.delay(1, 0.5) == 2.5
    assert backoff.healthy_after == 1.0
    assert Backoff(reset_after=30).healthy_after == 30


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"min": 0}, "backoff.min"),
        ({"min": 2, "max": 1}, "backoff.max"),
        ({"random_factor": -1}, "backoff.random_factor"),
        ({"reset_after": 0}, "backoff.reset_after"),
    ],
)
def test_backoff_validation(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ChildSpecError) as info:
        Backoff(**kwargs)
    assert info.value.field == field
