"""Restarts on pre-started threads: a crashed child parks a fresh thread with its
supervisor, a restart runs on it; spares never outlive their supervisor.

Children restart after a backoff on a FakeClock, so each test sees the spare parked
before the restart it is meant for."""

from __future__ import annotations

import queue
import threading
from typing import Any, ClassVar

import pytest

from otpy.supervision import (
    Backoff,
    ChildSpec,
    DynamicSupervisor,
    GenServer,
    ServerRef,
    Supervisor,
    _spare,
)
from otpy.testing import FakeClock, wait_until

BIG = 10**6
LATER = Backoff(min=1, max=1, random_factor=0)  # restarts once the clock moves 1 s
marks = threading.local()


class Crashy(GenServer):
    """Reports (its thread, whether that thread had a mark, its ref) from on_start; "die"
    marks its thread, then crashes it."""

    started: ClassVar[queue.SimpleQueue[tuple[threading.Thread, bool, ServerRef[Any]]]]

    def on_start(self) -> None:
        me = threading.current_thread()
        type(self).started.put((me, hasattr(marks, "seen"), self.actor_ref))

    def on_receive(self, message: Any) -> Any:
        if message == "die":
            marks.seen = True
            raise RuntimeError("boom")
        return message


class DaemonCrashy(Crashy):
    use_daemon_thread = True


@pytest.fixture(autouse=True)
def _fresh_queues() -> None:
    Crashy.started = queue.SimpleQueue()
    DaemonCrashy.started = queue.SimpleQueue()


def parked(ref: ServerRef[Any]) -> list[threading.Thread]:
    """The threads parked with ``ref``'s supervisor, once there is one."""
    holder = ref._life.spares
    assert holder is not None
    return wait_until(lambda: [spare.thread for spare in holder.parked])


def ended(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(5)
        assert not t.is_alive()


def start(cls: type[Crashy], clock: FakeClock) -> tuple[Any, ServerRef[Any]]:
    spec = ChildSpec.actor(cls, id="c", backoff=LATER)
    sup = Supervisor.start([spec], max_restarts=BIG, clock=clock)
    return sup, cls.started.get(timeout=10)[2]


def test_a_restart_runs_on_the_thread_a_crash_parked(clock: FakeClock) -> None:
    sup, ref = start(Crashy, clock)
    ref.tell("die")  # its thread parks a spare on its way out
    waiting = parked(ref)
    clock.wait_for_timers(1)  # the supervisor has seen the exit: its backoff timer is set
    clock.advance(1)
    thread, marked, ref = Crashy.started.get(timeout=10)
    assert thread in waiting
    assert not thread.daemon and thread.name.startswith("Crashy-")
    assert not marked  # a fresh thread: nothing of the crashed incarnation's thread-locals
    assert ref.call("ping") == "ping"
    sup.stop()
    ended(waiting)


@pytest.mark.parametrize("kill", [False, True])
def test_spares_end_with_their_supervisor(kill: bool, clock: FakeClock) -> None:
    sup = DynamicSupervisor.start(max_restarts=BIG, clock=clock)
    ref = sup.start_child(ChildSpec.actor(Crashy, id="c", backoff=LATER))
    ref.tell("die")
    waiting = parked(ref)
    if kill:
        sup.kill()
    else:
        sup.stop()
    ended(waiting)


def test_a_daemon_actor_parks_no_spare(clock: FakeClock) -> None:
    sup, ref = start(DaemonCrashy, clock)
    ref.tell("die")
    clock.wait_for_timers(1)  # the supervisor has seen the exit: its backoff timer is set
    clock.advance(1)
    thread, _, ref = DaemonCrashy.started.get(timeout=10)
    assert thread.daemon
    assert ref._life.spares is not None and ref._life.spares.parked == []
    sup.stop()


def test_an_unused_spare_ends_after_its_idle_time(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_spare, "IDLE_SECONDS", 0.01)
    sup, ref = start(Crashy, clock)
    ref.tell("die")
    waiting = parked(ref)
    ended(waiting)  # retired
    clock.wait_for_timers(1)  # the supervisor has seen the exit: its backoff timer is set
    clock.advance(1)
    thread, _, ref = Crashy.started.get(timeout=10)  # a thread of its own, as without spares
    assert thread not in waiting
    assert ref.call("ping") == "ping"
    sup.stop()


def test_a_normal_exit_parks_no_spare(clock: FakeClock) -> None:
    sup, ref = start(Crashy, clock)
    old = ref
    ref.stop()  # permanent: restarted, but an exit that is not a crash parks nothing
    clock.wait_for_timers(1)  # the supervisor has seen the exit: its backoff timer is set
    clock.advance(1)
    _, _, ref = Crashy.started.get(timeout=10)
    assert ref.call("ping") == "ping"
    assert old._life.spares is not None and old._life.spares.parked == []
    sup.stop()


def test_children_crashing_at_once_park_no_more_than_the_capacity(clock: FakeClock) -> None:
    specs = [ChildSpec.actor(Crashy, id=i, backoff=LATER) for i in range(8)]
    sup = Supervisor.start(specs, max_restarts=BIG, clock=clock)
    firsts = [Crashy.started.get(timeout=10) for _ in specs]
    for _, _, ref in firsts:
        ref.tell("die")
    for thread, _, _ in firsts:  # each has parked a spare, or found enough parked
        thread.join(10)
    holder = firsts[0][2]._life.spares
    assert holder is not None and len(holder.parked) == _spare.CAPACITY
    named = [t for t in threading.enumerate() if t.name.startswith("otpy-spare-")]
    assert len(named) == _spare.CAPACITY  # none started beyond it
    sup.stop()
