"""Restart strategies, escalation, restart loops, trees and auto-shutdown.

Ported from Erlang/OTP's ``lib/stdlib/test/supervisor_SUITE.erl``; each test is named
after its OTP case. Differences from the Erlang side:

- ``which_children()`` lists children in *start* order (OTP lists newest first).
- OTP's ``supervisor_1:start_child(error)`` is ``StartSwitch(fail_after=1)``; OTP's
  ``supervisor_deadlock`` (restarts that keep failing) is ``StartSwitch`` with ``failing``
  set, and OTP's 2 s per failed start is replaced either by a retry loop that spins through
  the mailbox (intensity out of reach on a FakeClock that does not move) or by a Backoff
  on a FakeClock, where each ``clock.advance`` triggers one attempt.
- "No EXIT within 1 s" becomes: after ``wait_idle()`` the ref is still alive.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from otpy.errors import (
    AlreadyPresentError,
    ChildRestartingError,
    MaxChildrenError,
)
from otpy.supervision import (
    Backoff,
    ChildCounts,
    ChildInfo,
    ChildSpec,
    DynamicSupervisor,
    ServerRef,
    Supervisor,
    SupervisorRef,
    whereis,
)
from otpy.testing import FakeClock, wait_exit, wait_idle, wait_until
from support import Died, SlowStop, StartSwitch, crash, refs, restarted, worker

# -- helpers ----------------------------------------------------------------------------


def crashed(ref: ServerRef[Any]) -> None:
    """Crash a Worker, check it died of Died, and let its supervisor react."""
    crash(ref)
    assert isinstance(wait_exit(ref), Died)
    wait_idle()


def stopped_normal(ref: ServerRef[Any]) -> None:
    """Make a Worker exit with reason normal and let its supervisor react."""
    ref.tell("stop")
    assert wait_exit(ref) == "normal"
    wait_idle()


def killed(ref: ServerRef[Any]) -> None:
    """Kill a child (exit reason killed) and let its supervisor react."""
    assert ref.kill()
    assert wait_exit(ref) == "killed"
    wait_idle()


def states(sup: Any) -> list[tuple[Any, str]]:
    return [(c.id, c.state) for c in sup.which_children()]


def counts(specs: int, active: int, supervisors: int, workers: int) -> ChildCounts:
    return ChildCounts(specs, active, supervisors, workers)


def assert_alive(*actors: ServerRef[Any]) -> None:
    for ref in actors:
        assert ref.is_alive(), f"{ref} exited with {ref.exit_reason!r}"


def assert_shutdown(*actors: ServerRef[Any]) -> None:
    for ref in actors:
        assert wait_exit(ref) == "shutdown"


def switch_spec(switch: StartSwitch, child_id: str, **spec: Any) -> ChildSpec:
    return ChildSpec(id=child_id, start=switch, **spec)


def sup_spec(child_id: str, start: Any, **spec: Any) -> ChildSpec:
    return ChildSpec(id=child_id, start=start, type="supervisor", **spec)


def supervisor_start(children: list[Any], clock: FakeClock) -> Any:
    """A start function for a nested one_for_one supervisor (intensity 4, as in ``tree``)."""
    return lambda: Supervisor.start(
        children, strategy="one_for_one", max_restarts=4, max_seconds=3600, clock=clock
    )


@pytest.fixture
def releases() -> Iterator[list[threading.Event]]:
    """Events that block SlowStop children; all set at teardown so no thread is left."""
    events: list[threading.Event] = []
    yield events
    for event in events:
        event.set()


class Stopping(SlowStop):
    """A SlowStop that also signals when its on_stop has begun (it was asked to stop)."""

    def __init__(self, release: threading.Event, entered: threading.Event, tag: Any) -> None:
        super().__init__(release, tag)
        self.entered = entered

    def on_stop(self) -> None:
        self.entered.set()
        super().on_stop()


# -- one_for_one / one_for_all / rest_for_one --------------------------------------------


def test_one_for_one(clock: FakeClock) -> None:
    sup = Supervisor.start(
        [worker("child1", shutdown=1.0), worker("child2", shutdown=1.0)],
        strategy="one_for_one",
        max_restarts=2,
        max_seconds=3600,
        clock=clock,
    )
    before = refs(sup)
    c1, c2 = before["child1"], before["child2"]

    crashed(c1)  # restart #1
    after = refs(sup)
    assert len(after) == 2
    assert after["child2"] is c2
    assert after["child1"] is not None and after["child1"] is not c1
    assert after["child1"].is_alive()
    assert sup.count_children() == counts(2, 2, 0, 2)

    crashed(c2)  # restart #2
    after2 = refs(sup)
    assert after2["child1"] is after["child1"]
    assert after2["child2"] is not None and after2["child2"] is not c2
    assert sup.count_children() == counts(2, 2, 0, 2)

    crash(after2["child2"])  # restart #3 > 2
    assert wait_exit(sup) == "shutdown"
    assert isinstance(wait_exit(after2["child2"]), Died)
    assert wait_exit(after2["child1"]) == "shutdown"


def test_one_for_one_escalation(clock: FakeClock) -> None:
    switch = StartSwitch("child1", fail_after=1)
    sup = Supervisor.start(
        [switch_spec(switch, "child1", shutdown=1.0), worker("child2", shutdown=1.0)],
        strategy="one_for_one",
        max_restarts=4,
        max_seconds=3600,
        clock=clock,
    )
    c1, c2 = refs(sup)["child1"], refs(sup)["child2"]

    crash(c1)
    assert isinstance(wait_exit(c1), Died)
    # Every restart of child1 fails and counts: 4 failed attempts, the 5th restart is one
    # too many; child2 is shut down and the supervisor exits shutdown.
    assert wait_exit(sup) == "shutdown"
    assert wait_exit(c2) == "shutdown"
    assert switch.attempts == 1 + 4


def test_one_for_all(clock: FakeClock) -> None:
    sup = Supervisor.start(
        [worker("child1", shutdown=1.0), worker("child2", shutdown=1.0)],
        strategy="one_for_all",
        max_restarts=2,
        max_seconds=3600,
        clock=clock,
    )
    c1, c2 = refs(sup)["child1"], refs(sup)["child2"]

    crash(c1)  # restart #1: child2 is terminated too, both start again
    assert isinstance(wait_exit(c1), Died)
    assert wait_exit(c2) == "shutdown"
    wait_idle()
    after = refs(sup)
    assert list(after) == ["child1", "child2"]
    assert after["child1"] not in (c1, c2, None)
    assert after["child2"] not in (c1, c2, None)
    assert sup.count_children() == counts(2, 2, 0, 2)

    crashed(after["child2"])  # restart #2 (OTP: first in its list = newest = child2)
    assert wait_exit(after["child1"]) == "shutdown"
    after2 = refs(sup)
    assert after2["child1"] not in (after["child1"], None)
    assert after2["child2"] not in (after["child2"], None)
    assert sup.count_children() == counts(2, 2, 0, 2)

    crash(after2["child2"])  # restart #3 > 2
    assert wait_exit(sup) == "shutdown"
    assert wait_exit(after2["child1"]) == "shutdown"


def test_one_for_all_escalation(clock: FakeClock) -> None:
    log: list[Any] = []
    switch = StartSwitch("child2", fail_after=1)
    sup = Supervisor.start(
        [worker("child1", shutdown=1.0, log=log), switch_spec(switch, "child2", shutdown=1.0)],
        strategy="one_for_all",
        max_restarts=4,
        max_seconds=3600,
        clock=clock,
    )
    c1, c2 = refs(sup)["child1"], refs(sup)["child2"]

    crash(c1)
    assert isinstance(wait_exit(c1), Died)
    assert wait_exit(c2) == "shutdown"
    assert wait_exit(sup) == "shutdown"
    # Restart #1 starts child1 and fails on child2; each retry (#2..#4) terminates the
    # child1 it had restarted (shutdown, on_stop runs) and starts everything again; #5 is
    # one too many and the supervisor stops the last child1.
    assert switch.attempts == 1 + 4
    assert log.count(("start", "child1")) == 1 + 4
    assert log.count(("stop", "child1")) == 3 + 1
    assert log[-1] == ("stop", "child1")


def test_rest_for_one(clock: FakeClock) -> None:
    log: list[Any] = []
    sup = Supervisor.start(
        [], strategy="rest_for_one", max_restarts=2, max_seconds=3600, clock=clock
    )
    c1 = sup.start_child(worker("child1", shutdown=1.0, log=log))
    c2 = sup.start_child(worker("child2", shutdown=1.0, log=log))
    c3 = sup.start_child(worker("child3", shutdown=1.0, log=log))
    assert sup.count_children() == counts(3, 3, 0, 3)

    log.clear()
    crash(c2)  # restart #1: child3 goes too, child1 is untouched
    assert isinstance(wait_exit(c2), Died)
    assert wait_exit(c3) == "shutdown"
    wait_idle()
    # child3 stopped, then both started again in start order.
    assert log == [("stop", "child3"), ("start", "child2"), ("start", "child3")]
    after = refs(sup)
    assert list(after) == ["child1", "child2", "child3"]
    assert sup.count_children() == counts(3, 3, 0, 3)
    assert after["child1"] is c1
    assert after["child2"] not in (c2, c3, None)
    assert after["child3"] not in (c2, c3, None)

    crashed(after["child3"])  # restart #2: only child3 (the last one)
    after2 = refs(sup)
    assert after2["child1"] is c1
    assert after2["child2"] is after["child2"]
    assert after2["child3"] not in (after["child3"], None)
    assert sup.count_children() == counts(3, 3, 0, 3)

    log.clear()
    crash(after2["child2"])  # restart #3 > 2
    assert wait_exit(sup) == "shutdown"
    assert_shutdown(after2["child3"], c1)
    # The remaining children are stopped in reverse start order; nothing is restarted.
    assert log == [("stop", "child3"), ("stop", "child1")]


def test_rest_for_one_escalation(clock: FakeClock) -> None:
    log: list[Any] = []
    switch = StartSwitch("child2", fail_after=1)
    sup = Supervisor.start(
        [worker("child1", shutdown=1.0, log=log), switch_spec(switch, "child2", shutdown=1.0)],
        strategy="rest_for_one",
        max_restarts=4,
        max_seconds=3600,
        clock=clock,
    )
    c1, c2 = refs(sup)["child1"], refs(sup)["child2"]

    crash(c1)
    assert isinstance(wait_exit(c1), Died)
    assert wait_exit(c2) == "shutdown"
    assert wait_exit(sup) == "shutdown"
    assert switch.attempts == 1 + 4
    # The retries restart only child2 (rest_for_one_other_child_fails_restart): child1 was
    # started twice (initially and by restart #1) and stopped once, at the supervisor's exit.
    assert log == [("start", "child1"), ("start", "child1"), ("stop", "child1")]


# -- restart loops ----------------------------------------------------------------------


LOOP_MODES = ["spin", "backoff"]


class Loop:
    """Drives a child whose restarts keep failing, in one of two modes.

    ``spin``: no delay, the supervisor retries through its mailbox; its intensity
    (10**9 on a FakeClock that never moves) is never reached.
    ``backoff``: ``Backoff(min=1, max=1)``; the child waits in "restarting" with one timer
    pending, and each ``clock.advance(1)`` triggers exactly one (failing) attempt.
    """

    def __init__(self, mode: str, clock: FakeClock, switch: StartSwitch) -> None:
        self.mode = mode
        self.clock = clock
        self.switch = switch

    def spec_options(self) -> dict[str, Any]:
        if self.mode == "backoff":
            return {"backoff": Backoff(min=1, max=1, random_factor=0)}
        return {}

    def enter(self, ref: ServerRef[Any]) -> None:
        """Make the next restarts fail, crash ``ref`` and see the loop under way."""
        self.switch.failing.set()
        before = self.switch.attempts
        crash(ref)
        assert isinstance(wait_exit(ref), Died)
        if self.mode == "spin":
            self.switch.wait_attempts(before + 3)
            return
        wait_idle()
        assert self.clock.pending_timers() == 1
        assert self.switch.attempts == before  # no attempt before the delay
        for n in (1, 2, 3):
            self.clock.advance(1)
            self.switch.wait_attempts(before + n)
            self.clock.wait_for_timers(1)  # the next attempt is scheduled...
            wait_idle()
            assert self.switch.attempts == before + n  # ...and not made yet
            assert self.clock.pending_timers() == 1

    def assert_running(self) -> None:
        """The loop goes on (after the calls made meanwhile were answered)."""
        if self.mode == "spin":
            self.switch.wait_attempts(self.switch.attempts + 2)
        else:
            assert self.clock.pending_timers() == 1

    def assert_ended(self) -> None:
        """No further attempt is made, now or (backoff) when the clock moves on."""
        wait_idle()
        attempts = self.switch.attempts
        if self.mode == "backoff":
            assert self.clock.pending_timers() == 0
            self.clock.advance(1)
        wait_idle()
        assert self.switch.attempts == attempts


def make_loop_sup(
    strategy: str, children: list[ChildSpec], clock: FakeClock, name: str | None = None
) -> SupervisorRef:
    """A supervisor whose intensity a restart loop never reaches (the clock stands still)."""
    return Supervisor.start(
        children,
        strategy=strategy,  # type: ignore[arg-type]
        max_restarts=10**9,
        max_seconds=10,
        clock=clock,
        name=name,
    )


@pytest.mark.parametrize("mode", LOOP_MODES)
def test_hanging_restart_loop(mode: str, clock: FakeClock) -> None:
    switch = StartSwitch("child1")
    loop = Loop(mode, clock, switch)
    spec = switch_spec(switch, "child1", shutdown="brutal_kill", **loop.spec_options())
    name = f"sup_test_hanging_{mode}"
    sup = make_loop_sup("one_for_one", [spec], clock, name)
    cpid1 = refs(sup)["child1"]
    assert cpid1 is not None

    loop.enter(cpid1)
    # Calls are answered while the child is being restarted.
    with pytest.raises(AlreadyPresentError):
        sup.start_child(spec)
    with pytest.raises(ChildRestartingError):
        sup.restart_child("child1")
    with pytest.raises(ChildRestartingError):
        sup.delete_child("child1")
    assert sup.which_children() == [ChildInfo("child1", None, "worker", "restarting", "permanent")]
    assert sup.count_children() == counts(1, 0, 0, 1)
    loop.assert_running()

    sup.terminate_child("child1")  # ends the loop
    assert sup.which_children() == [ChildInfo("child1", None, "worker", "terminated", "permanent")]
    loop.assert_ended()
    assert states(sup) == [("child1", "terminated")]

    switch.failing.clear()
    cpid2 = sup.restart_child("child1")
    assert cpid2.is_alive() and cpid2 is not cpid1
    assert refs(sup) == {"child1": cpid2}

    loop.enter(cpid2)  # loop again; the supervisor must still shut down (OTP-9549)
    sup.exit("shutdown")
    assert wait_exit(sup) == "shutdown"
    assert isinstance(cpid2.exit_reason, Died)
    assert whereis(name) is None
    assert clock.pending_timers() == 0


@pytest.mark.parametrize("mode", LOOP_MODES)
def test_hanging_restart_loop_rest_for_one(mode: str, clock: FakeClock) -> None:
    switch = StartSwitch("child2")
    loop = Loop(mode, clock, switch)
    child2 = switch_spec(switch, "child2", shutdown="brutal_kill", **loop.spec_options())
    sup = make_loop_sup("rest_for_one", [], clock)
    cpid1 = sup.start_child(worker("child1", shutdown="brutal_kill"))
    cpid2 = sup.start_child(child2)
    cpid3 = sup.start_child(worker("child3", shutdown="brutal_kill"))

    loop.enter(cpid2)
    assert wait_exit(cpid3) == "killed"  # brutal_kill: child3 was started after child2
    with pytest.raises(AlreadyPresentError):
        sup.start_child(child2)
    with pytest.raises(ChildRestartingError):
        sup.restart_child("child2")
    with pytest.raises(ChildRestartingError):
        sup.delete_child("child2")
    assert sup.which_children() == [
        ChildInfo("child1", cpid1, "worker", "running", "permanent"),
        ChildInfo("child2", None, "worker", "restarting", "permanent"),
        ChildInfo("child3", None, "worker", "terminated", "permanent"),
    ]
    assert sup.count_children() == counts(3, 1, 0, 3)
    loop.assert_running()

    sup.terminate_child("child2")
    assert sup.which_children() == [
        ChildInfo("child1", cpid1, "worker", "running", "permanent"),
        ChildInfo("child2", None, "worker", "terminated", "permanent"),
        ChildInfo("child3", None, "worker", "terminated", "permanent"),
    ]
    loop.assert_ended()

    switch.failing.clear()
    cpid22 = sup.restart_child("child2")  # restarts child2 only; child3 stays terminated
    assert cpid22.is_alive() and cpid22 is not cpid2
    wait_idle()
    assert sup.which_children() == [
        ChildInfo("child1", cpid1, "worker", "running", "permanent"),
        ChildInfo("child2", cpid22, "worker", "running", "permanent"),
        ChildInfo("child3", None, "worker", "terminated", "permanent"),
    ]

    loop.enter(cpid22)
    sup.exit("shutdown")
    assert wait_exit(sup) == "shutdown"
    assert isinstance(cpid22.exit_reason, Died)
    assert wait_exit(cpid1) == "killed"  # brutal_kill at the supervisor's exit
    assert clock.pending_timers() == 0


# -- tree -------------------------------------------------------------------------------


def test_tree(clock: FakeClock) -> None:
    switch = StartSwitch("child3", fail_after=1)
    child1 = worker("child1", shutdown=1.0)
    child2 = worker("child2", shutdown=1.0)
    child3 = switch_spec(switch, "child3", shutdown=1.0)
    child4 = worker("child4", shutdown=1.0)

    top = Supervisor.start(
        [], strategy="one_for_all", max_restarts=4, max_seconds=3600, clock=clock
    )
    sup1 = top.start_child(sup_spec("supchild1", supervisor_start([child1, child2], clock)))
    sup2 = top.start_child(sup_spec("supchild2", supervisor_start([], clock)))
    sup3 = top.start_child(sup_spec("supchild3", supervisor_start([], clock), restart="transient"))
    assert isinstance(sup1, SupervisorRef) and isinstance(sup2, SupervisorRef)

    top.terminate_child("supchild3")
    assert wait_exit(sup3) == "shutdown"
    assert top.count_children() == counts(3, 2, 3, 0)

    cpid1, cpid2 = refs(sup1)["child1"], refs(sup1)["child2"]
    assert list(refs(sup1)) == ["child1", "child2"]
    assert sup1.count_children() == counts(2, 2, 0, 2)
    assert sup2.count_children() == counts(0, 0, 0, 0)

    cpid3 = sup2.start_child(child3)
    cpid4 = sup2.start_child(child4)
    assert sup1.count_children() == counts(2, 2, 0, 2)
    assert sup2.count_children() == counts(2, 2, 0, 2)

    crashed(cpid4)  # only sup2 reacts
    assert refs(sup1) == {"child1": cpid1, "child2": cpid2}
    assert sup1.count_children() == counts(2, 2, 0, 2)
    after = refs(sup2)
    assert list(after) == ["child3", "child4"]
    assert after["child3"] is cpid3
    assert after["child4"] not in (cpid4, None)
    assert sup2.count_children() == counts(2, 2, 0, 2)

    # child3's restarts fail until sup2 exceeds its intensity (restart #5) and exits
    # shutdown; top (one_for_all) then stops everything and starts all three again,
    # supchild3 included although it had been terminated.
    crash(cpid3)
    assert isinstance(wait_exit(cpid3), Died)
    assert wait_exit(sup2) == "shutdown"
    assert switch.attempts == 1 + 3
    assert wait_exit(sup1) == "shutdown"
    assert_shutdown(cpid1, cpid2, after["child4"])
    wait_idle()

    new = refs(top)
    assert list(new) == ["supchild1", "supchild2", "supchild3"]
    new1, new2, new3 = new["supchild1"], new["supchild2"], new["supchild3"]
    assert new1 not in (sup1, None)
    assert new2 not in (sup2, None)
    assert new3 not in (sup3, None)
    assert states(top) == [(i, "running") for i in ("supchild1", "supchild2", "supchild3")]
    assert top.count_children() == counts(3, 3, 3, 0)

    assert isinstance(new1, SupervisorRef)
    assert isinstance(new2, SupervisorRef)
    assert isinstance(new3, SupervisorRef)
    new_children = refs(new1)
    assert list(new_children) == ["child1", "child2"]
    assert new_children["child1"] not in (cpid1, None)
    assert new_children["child2"] not in (cpid2, None)
    assert new1.count_children() == counts(2, 2, 0, 2)
    assert new2.which_children() == []  # children added with start_child are not recreated
    assert new2.count_children() == counts(0, 0, 0, 0)
    assert new3.which_children() == []
    assert new3.count_children() == counts(0, 0, 0, 0)


# -- significant children / auto_shutdown -----------------------------------------------


def significant_sup(restart: str, auto_shutdown: str, clock: FakeClock) -> SupervisorRef:
    return Supervisor.start(
        [
            worker("child1", restart=restart, significant=True, shutdown=1.0),
            worker("child2", restart=restart, significant=True, shutdown=1.0),
            worker("child3", restart=restart, significant=False, shutdown=1.0),
        ],
        max_restarts=5,
        max_seconds=3600,
        auto_shutdown=auto_shutdown,  # type: ignore[arg-type]
        clock=clock,
    )


def three(sup: SupervisorRef) -> tuple[ServerRef[Any], ServerRef[Any], ServerRef[Any]]:
    r = refs(sup)
    assert list(r) == ["child1", "child2", "child3"]
    c1, c2, c3 = r["child1"], r["child2"], r["child3"]
    assert c1 is not None and c2 is not None and c3 is not None
    return c1, c2, c3


def test_significant_temporary(clock: FakeClock) -> None:
    # any_significant: terminate_child does not trigger auto-shutdown...
    sup1 = significant_sup("temporary", "any_significant", clock)
    c1, c2, c3 = three(sup1)
    sup1.terminate_child("child1")
    assert wait_exit(c1) == "shutdown"
    wait_idle()
    assert_alive(c2, c3, sup1)
    assert list(refs(sup1)) == ["child2", "child3"]  # temporary: spec dropped
    # ...but a significant child exiting by itself (here: killed) does.
    c1b = sup1.start_child(worker("child1", restart="temporary", significant=True, shutdown=1.0))
    assert list(refs(sup1)) == ["child2", "child3", "child1"]
    c1b.kill()
    assert wait_exit(c1b) == "killed"
    assert wait_exit(sup1) == "shutdown"
    assert_shutdown(c2, c3)

    # any_significant, the significant child crashes.
    sup2 = significant_sup("temporary", "any_significant", clock)
    c1, c2, c3 = three(sup2)
    crash(c1)
    assert isinstance(wait_exit(c1), Died)
    assert wait_exit(sup2) == "shutdown"
    assert_shutdown(c2, c3)

    # any_significant, the significant child exits normal.
    sup3 = significant_sup("temporary", "any_significant", clock)
    c1, c2, c3 = three(sup3)
    c1.tell("stop")
    assert wait_exit(c1) == "normal"
    assert wait_exit(sup3) == "shutdown"
    assert_shutdown(c2, c3)

    # all_significant: only when the last significant child has gone.
    sup4 = significant_sup("temporary", "all_significant", clock)
    c1, c2, c3 = three(sup4)
    stopped_normal(c1)
    assert_alive(c2, c3, sup4)
    assert list(refs(sup4)) == ["child2", "child3"]
    c2.tell("stop")
    assert wait_exit(c2) == "normal"
    assert wait_exit(sup4) == "shutdown"
    assert wait_exit(c3) == "shutdown"


def test_significant_transient(clock: FakeClock) -> None:
    sup1 = significant_sup("transient", "any_significant", clock)
    c1, c2, c3 = three(sup1)

    sup1.terminate_child("child1")  # the API does not trigger auto-shutdown
    assert wait_exit(c1) == "shutdown"
    wait_idle()
    assert_alive(c2, c3, sup1)
    assert states(sup1) == [("child1", "terminated"), ("child2", "running"), ("child3", "running")]
    c1 = sup1.restart_child("child1")

    killed(c1)  # abnormal: restarted, no auto-shutdown
    assert_alive(c2, c3, sup1)
    r = refs(sup1)
    assert list(r) == ["child1", "child2", "child3"]
    assert r["child1"] not in (c1, None)
    c1 = r["child1"]

    crashed(c1)  # abnormal: restarted, no auto-shutdown
    assert_alive(c2, c3, sup1)
    r = refs(sup1)
    assert r["child1"] not in (c1, None)
    assert (r["child2"], r["child3"]) == (c2, c3)
    c1 = r["child1"]

    c1.tell("stop")  # normal: not restarted, and it is significant
    assert wait_exit(c1) == "normal"
    assert wait_exit(sup1) == "shutdown"
    assert_shutdown(c2, c3)

    sup2 = significant_sup("transient", "all_significant", clock)
    c1, c2, c3 = three(sup2)
    stopped_normal(c1)
    assert_alive(c2, c3, sup2)
    assert states(sup2) == [("child1", "terminated"), ("child2", "running"), ("child3", "running")]
    c2.tell("stop")
    assert wait_exit(c2) == "normal"
    assert wait_exit(sup2) == "shutdown"
    assert wait_exit(c3) == "shutdown"


@pytest.mark.parametrize("auto_shutdown", ["any_significant", "all_significant"])
@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
def test_significant_bystander(strategy: str, auto_shutdown: str, clock: FakeClock) -> None:
    sup = Supervisor.start(
        [
            worker("child1", restart="transient", significant=True, shutdown=1.0),
            worker("child2", restart="transient", significant=False, shutdown=1.0),
            worker("child3", restart="transient", significant=True, shutdown=1.0),
        ],
        strategy=strategy,  # type: ignore[arg-type]
        max_restarts=5,
        max_seconds=3600,
        auto_shutdown=auto_shutdown,  # type: ignore[arg-type]
        clock=clock,
    )
    c1, c2, c3 = three(sup)

    killed(c2)  # abnormal: child2 is restarted, with its strategy's bystanders
    bystanders = {
        "one_for_one": (),
        "one_for_all": (c1, c3),
        "rest_for_one": (c3,),
    }[strategy]
    for ref in (c1, c3):
        if ref in bystanders:
            assert wait_exit(ref) == "shutdown"
        else:
            assert_alive(ref)
    # Significant children stopped as bystanders do not trigger auto-shutdown.
    assert_alive(sup)
    r = refs(sup)
    assert states(sup) == [(i, "running") for i in ("child1", "child2", "child3")]
    assert r["child2"] is not c2
    for name, old in (("child1", c1), ("child3", c3)):
        assert (r[name] is old) == (old not in bystanders)

    sup.exit("shutdown")
    assert wait_exit(sup) == "shutdown"


# -- simple_one_for_one (DynamicSupervisor) ----------------------------------------------


def test_simple_one_for_one_shutdown(clock: FakeClock, releases: list[threading.Event]) -> None:
    """Children are shut down concurrently, each killed after its own shutdown time.

    OTP: two children whose terminate takes 1 s, one that would take 5 s, shutdown 2 s; the
    supervisor is gone in about 2 s. Here a second stuck child shows that one advance of
    2.0 ends both waits: they were started together, not one after the other.
    """
    dsup = DynamicSupervisor.start(max_restarts=2, max_seconds=3600, clock=clock)
    children: dict[str, tuple[ServerRef[Any], threading.Event, threading.Event]] = {}
    for tag in ("quick1", "quick2", "stuck1", "stuck2"):
        release, entered = threading.Event(), threading.Event()
        releases.append(release)
        ref = dsup.start_child(
            ChildSpec.actor(Stopping, release, entered, tag, id="child", shutdown=2.0)
        )
        children[tag] = (ref, release, entered)

    dsup.exit("shutdown")
    # All four were asked to stop before the supervisor waited for any of them.
    for _, _, entered in children.values():
        assert entered.wait(5.0)
    clock.wait_for_sleepers(1)

    clock.advance(1.0)  # the quick ones finish after 1 s
    for tag in ("quick1", "quick2"):
        ref, release, _ = children[tag]
        release.set()
        assert wait_exit(ref) == "shutdown"
    assert dsup.exit_reason is None  # still shutting down (is_alive() is already False)
    assert children["stuck1"][0].exit_reason is None
    assert children["stuck2"][0].exit_reason is None

    clock.advance(1.0)  # 2 s after the shutdown began: both stuck children are killed
    assert wait_exit(dsup) == "shutdown"
    assert children["stuck1"][0].exit_reason == "killed"
    assert children["stuck2"][0].exit_reason == "killed"
    assert clock.monotonic() == 2.0


def test_simple_one_for_one(clock: FakeClock) -> None:
    """Intensity exceeded in a DynamicSupervisor: it exits with reason shutdown."""
    dsup = DynamicSupervisor.start(max_restarts=2, max_seconds=3600, clock=clock)
    cpid1 = dsup.start_child(worker("child", shutdown=1.0))
    cpid2 = dsup.start_child(worker("child", shutdown=1.0))

    crashed(cpid1)  # restart #1
    children = dsup.which_children()
    assert len(children) == 2
    assert children[1].ref is cpid2
    new1 = children[0].ref
    assert new1 not in (cpid1, None)
    assert dsup.count_children() == counts(2, 2, 0, 2)

    crashed(cpid2)  # restart #2
    children = dsup.which_children()
    assert children[0].ref is new1
    new2 = children[1].ref
    assert new2 not in (cpid2, None)

    crash(new1)  # restart #3 > 2
    assert wait_exit(dsup) == "shutdown"
    assert wait_exit(new2) == "shutdown"


def test_simple_one_for_one_max_children(clock: FakeClock) -> None:
    dsup = DynamicSupervisor.start(max_children=2, max_restarts=100, max_seconds=3600, clock=clock)
    backoff = Backoff(min=1, max=1, random_factor=0)
    perm = dsup.start_child(worker("perm", backoff=backoff))
    temp = dsup.start_child(worker("temp", restart="temporary"))
    with pytest.raises(MaxChildrenError) as info:
        dsup.start_child(worker("extra"))
    assert info.value.max_children == 2

    # A child waiting for its restart still takes a slot...
    crashed(perm)
    assert states(dsup) == [("perm", "restarting"), ("temp", "running")]
    assert dsup.count_children() == counts(2, 1, 0, 2)
    with pytest.raises(MaxChildrenError):
        dsup.start_child(worker("extra"))
    # ...and so does the restarted one.
    clock.advance(1)
    perm2 = wait_until(restarted(dsup, "perm", perm))
    assert dsup.count_children() == counts(2, 2, 0, 2)
    with pytest.raises(MaxChildrenError):
        dsup.start_child(worker("extra"))

    # A temporary child that exits frees its slot.
    stopped_normal(temp)
    assert refs(dsup) == {"perm": perm2}
    extra = dsup.start_child(worker("extra"))
    assert extra.is_alive()
    assert dsup.count_children() == counts(2, 2, 0, 2)
    with pytest.raises(MaxChildrenError):
        dsup.start_child(worker("extra2"))


# -- Backoff ----------------------------------------------------------------------------

EPS = 0.25  # exact in binary floating point, so fake times add up exactly


def backoff_restart(sup: Any, clock: FakeClock, child_id: str, delay: float) -> ServerRef[Any]:
    """Crash the child; check it is restarted exactly ``delay`` seconds later, not before."""
    old = refs(sup)[child_id]
    assert old is not None
    crashed(old)
    assert states(sup) == [(child_id, "restarting")]
    assert clock.pending_timers() == 1
    clock.advance(delay - EPS)
    wait_idle()
    assert states(sup) == [(child_id, "restarting")], f"restarted before {delay} s"
    assert clock.pending_timers() == 1
    clock.advance(EPS)
    new = wait_until(restarted(sup, child_id, old), message=f"restart after {delay} s")
    assert states(sup) == [(child_id, "running")]
    assert clock.pending_timers() == 0
    return new


def test_backoff_exponential_delays(clock: FakeClock) -> None:
    backoff = Backoff(min=1, max=8, random_factor=0, reset_after=100)
    sup = Supervisor.start(
        [worker("child", backoff=backoff)], max_restarts=100, max_seconds=3600, clock=clock
    )
    for delay in (1, 2, 4, 8, 8, 8):  # min * 2**n, capped at max
        backoff_restart(sup, clock, "child", delay)
    assert sup.is_alive()


def test_backoff_reset_after_healthy(clock: FakeClock) -> None:
    backoff = Backoff(min=1, max=64, random_factor=0, reset_after=10)
    sup = Supervisor.start(
        [worker("child", backoff=backoff)], max_restarts=100, max_seconds=3600, clock=clock
    )
    backoff_restart(sup, clock, "child", 1)
    backoff_restart(sup, clock, "child", 2)
    clock.advance(10 - EPS)  # up, but not quite long enough: the count goes on
    backoff_restart(sup, clock, "child", 4)
    clock.advance(10)  # healthy for reset_after: back to the first delay
    backoff_restart(sup, clock, "child", 1)
    backoff_restart(sup, clock, "child", 2)
    assert sup.is_alive()


def test_supervisor_statistics(clock: FakeClock) -> None:
    sup = Supervisor.start(
        [worker("a"), worker("b")], strategy="rest_for_one", max_restarts=5, clock=clock
    )
    a = refs(sup)["a"]
    crash(a)
    wait_until(restarted(sup, "a", a))
    stats = sup.statistics()
    assert (stats.strategy, stats.children, stats.active, stats.restarting) == (
        "rest_for_one",
        2,
        2,
        0,
    )
    assert (stats.restarts_in_window, stats.max_restarts, stats.max_seconds) == (1, 5, 5.0)
    clock.advance(5.1)
    assert sup.statistics().restarts_in_window == 0
    assert DynamicSupervisor.start().statistics().strategy == "one_for_one"
    named = Supervisor.start([], name="stats-sup").statistics()
    assert (named.name, named.alive, named.exit_reason) == ("stats-sup", True, None)
