"""Supervisor reports (OTP's progress and crash reports): started, exited, restarted,
start failed, intensity reached — delivered to every sink, never disturbing supervision."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from otpy.errors import StartChildError
from otpy.supervision import (
    ChildSpec,
    DynamicSupervisor,
    Supervisor,
    SupervisorEvent,
    add_event_sink,
    remove_event_sink,
)
from otpy.testing import FakeClock, wait_exit, wait_idle, wait_until
from support import StartSwitch, crash, refs, restarted, worker


class Reports:
    """A sink that keeps every report and lets a test wait for one by name."""

    def __init__(self) -> None:
        self.events: list[SupervisorEvent] = []
        self.changed = threading.Condition()

    def __call__(self, event: SupervisorEvent) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def names(self, supervisor: object = None) -> list[tuple[str, object]]:
        with self.changed:
            return [
                (e.name, e.child_id)
                for e in self.events
                if supervisor is None or e.supervisor == str(supervisor)
            ]

    def wait_for(self, name: str, count: int = 1) -> list[SupervisorEvent]:
        with self.changed:
            ok = self.changed.wait_for(
                lambda: sum(e.name == name for e in self.events) >= count, 5.0
            )
            assert ok, f"{name} x{count} never reported: {[e.name for e in self.events]}"
            return [e for e in self.events if e.name == name]


@pytest.fixture
def reports() -> Iterator[Reports]:
    sink = Reports()
    add_event_sink(sink)
    yield sink
    assert remove_event_sink(sink)


def test_start_crash_restart_and_intensity_are_reported(reports: Reports, clock: FakeClock) -> None:
    sup = Supervisor.start([worker("a"), worker("b")], max_restarts=1, max_seconds=60, clock=clock)
    assert reports.names(sup) == [
        ("supervisor.child_started", "a"),
        ("supervisor.child_started", "b"),
    ]
    old = refs(sup)["a"]
    assert old is not None
    crash(old)
    wait_until(restarted(sup, "a", old))
    exited = reports.wait_for("supervisor.child_exited")[0]
    assert exited.metadata["abnormal"] is True and exited.metadata["restart"] is True
    assert "Died" in exited.metadata["reason"]
    again = reports.wait_for("supervisor.child_restarted")[0]
    assert again.child_id == "a" and again.measurements == {"restarts_in_window": 1}

    second = refs(sup)["b"]
    assert second is not None
    crash(second)  # the second restart in 60 s is one too many
    assert wait_exit(sup) == "shutdown"
    reached = reports.wait_for("supervisor.max_intensity_reached")[0]
    assert reached.child_id == "b"
    assert reached.measurements == {"max_restarts": 1, "max_seconds": 60}
    assert reached.supervisor == str(sup)


def test_normal_exit_of_a_transient_child_is_not_a_restart(reports: Reports) -> None:
    sup = Supervisor.start([worker("t", restart="transient")])
    ref = refs(sup)["t"]
    assert ref is not None
    ref.tell("stop")
    exited = reports.wait_for("supervisor.child_exited")[0]
    assert exited.metadata == {"reason": "'normal'", "abnormal": False, "restart": False}
    wait_idle()
    assert "supervisor.child_restarted" not in [name for name, _ in reports.names(sup)]
    sup.stop()


def test_failed_starts_are_reported(reports: Reports, clock: FakeClock) -> None:
    sup = DynamicSupervisor.start(max_restarts=3, max_seconds=60, clock=clock)
    with pytest.raises(StartChildError, match="refused"):
        sup.start_child(ChildSpec(id="x", start=refuse))
    failed = reports.wait_for("supervisor.child_start_failed")[0]
    assert failed.child_id == "x"
    assert failed.metadata == {"restart": False, "error": "RuntimeError('start refused')"}

    switch = StartSwitch("s", fail_after=1)  # starts once, every restart fails
    ref = sup.start_child(ChildSpec(id="s", start=switch))
    crash(ref)
    switch.wait_attempts(2)
    retried = reports.wait_for("supervisor.child_start_failed", 2)[1]
    assert retried.child_id == "s" and retried.metadata["restart"] is True
    sup.stop()


def refuse() -> None:
    raise RuntimeError("start refused")


def test_a_failing_sink_is_logged_and_supervision_goes_on(
    reports: Reports, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: SupervisorEvent) -> None:
        raise ValueError("sink broke")

    add_event_sink(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="otpy.supervision"):
            sup = Supervisor.start([worker("a")])
            old = refs(sup)["a"]
            assert old is not None
            crash(old)
            wait_until(restarted(sup, "a", old))
        assert reports.wait_for("supervisor.child_restarted")  # the other sink still got it
        assert any("sink failed" in r.getMessage() for r in caplog.records)
        sup.stop()
    finally:
        assert remove_event_sink(broken)
    assert not remove_event_sink(broken)
