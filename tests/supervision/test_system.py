"""System requests (supervision/system.py): they jump the mailbox, suspend holds it in
order, a busy server answers "busy" and never runs a withdrawn request later."""

from __future__ import annotations

import threading
import time
from typing import Any

import pykka
import pytest

from otpy.errors import ConfigurationError, NoProcessError, ServerBusyError
from otpy.supervision import ChildSpec, GenServer, NamedHandle, Supervisor, system
from otpy.testing import wait_exit, wait_until


class Recorder(GenServer):
    """Records every message it handles; ``("hold", event)`` waits for the event."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []
        self.count = 0
        self.lock = threading.Lock()  # not copyable: get_state hands out the live one

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple) and message[0] == "hold":
            message[1].wait(10)
            return "held"
        if message == "boom":
            raise RuntimeError("boom")
        self.seen.append(message)
        self.count += 1
        return message


@pytest.mark.slow
def test_suspend_holds_1000_calls_from_16_threads_then_answers_each_in_order() -> None:
    ref = Recorder.start()
    system.suspend(ref)
    futures: dict[int, list[tuple[int, Any]]] = {}
    sent = threading.Barrier(17)

    def send(thread: int) -> None:
        mine = futures.setdefault(thread, [])
        for i in range(1000 // 16 + (thread < 1000 % 16)):
            message = (thread, i)
            if i % 10 == 9:
                ref.tell(message)  # casts wait in line too
            else:
                mine.append((i, ref.ask(message, block=False)))
        sent.wait()

    threads = [threading.Thread(target=send, args=(t,)) for t in range(16)]
    for thread in threads:
        thread.start()
    sent.wait()
    for thread in threads:
        thread.join()
    status = system.get_status(ref)
    assert status.suspended and status.mailbox >= 1000 and status.handled == 0
    assert system.get_state(ref).seen == []  # system requests are answered while suspended
    system.resume(ref)
    for thread, pending in futures.items():
        for i, future in pending:
            assert future.get(timeout=10) == (thread, i)
    seen = system.get_state(ref).seen
    assert len(seen) == 1000
    for thread in range(16):  # each sender's messages were handled in the order sent
        mine = [i for t, i in seen if t == thread]
        assert mine == sorted(mine) and len(mine) == len(set(mine))
    assert not system.get_status(ref).suspended
    events = [entry.event for entry in system.log(ref, 5)]
    assert events == ["suspend", "resume"]


def test_a_caller_timeout_applies_while_suspended_and_the_call_still_runs_after() -> None:
    ref = Recorder.start()
    system.suspend(ref)
    with pytest.raises(pykka.Timeout):
        ref.ask("late", timeout=0.05)
    system.resume(ref)
    assert ref.call("next") == "next"
    assert system.get_state(ref).seen == ["late", "next"]


def test_system_requests_jump_the_mailbox() -> None:
    ref = Recorder.start()
    gate = threading.Event()
    ref.tell(("hold", gate))
    for i in range(50):
        ref.tell(i)
    answered = []

    def ask_state() -> None:
        answered.append(len(system.get_state(ref, timeout=10).seen))

    asker = threading.Thread(target=ask_state)
    asker.start()
    wait_until(lambda: len(ref._life.system) > 0)
    gate.set()
    asker.join(10)
    assert answered == [0]  # answered after the held message, before the 50 behind it


def test_get_state_during_a_long_call_answers_busy_within_its_timeout() -> None:
    ref = Recorder.start()
    gate = threading.Event()
    long_call = ref.ask(("hold", gate), block=False)
    wait_until(lambda: system.status_of(ref).handling is not None)
    started = time.monotonic()
    with pytest.raises(ServerBusyError) as caught:
        system.get_state(ref, timeout=0.2)
    assert time.monotonic() - started < 2.0
    error = caught.value
    assert "busy" in str(error) and "'hold'" in str(error) and error.request == "get_state"
    assert error.busy_for >= 0.2
    # the withdrawn request never runs later; nor does a withdrawn replace_state
    with pytest.raises(ServerBusyError):
        system.replace_state(ref, lambda s: setattr(s, "count", 99) or s, timeout=0.05)
    status = system.get_status(ref, timeout=0.05)
    assert status.busy and status.state is None and status.handling is not None
    gate.set()
    assert long_call.get(timeout=5) == "held"
    assert system.get_state(ref).count == 0


def test_replace_state_installs_what_the_function_returns() -> None:
    ref = Recorder.start()
    ref.call("a")
    lock = system.get_state(ref).lock

    def bump(state: Any) -> Any:
        state.count = 10
        state.seen.append("added")  # an in-place change of the copy is installed too
        return state

    new = system.replace_state(ref, bump)
    assert new.count == 10 and new.seen == ["a", "added"]
    assert ref.call("b") == "b"
    state = system.get_state(ref)
    assert state.count == 11 and state.seen == ["a", "added", "b"]
    assert state.lock is lock  # untouched, uncopyable attributes stay the live objects
    assert [e.event for e in system.log(ref)] == ["replace_state"]


def test_replace_state_raising_leaves_the_state_unchanged_and_raises_to_the_caller() -> None:
    ref = Recorder.start()
    ref.call("a")

    def broken(state: Any) -> Any:
        state.count = 1000
        state.seen.clear()
        raise ValueError("half-way")

    with pytest.raises(ValueError, match="half-way"):
        system.replace_state(ref, broken)
    with pytest.raises(ConfigurationError, match="must return the state"):
        system.replace_state(ref, lambda state: None)
    with pytest.raises(ConfigurationError, match="lacks attribute"):
        system.replace_state(ref, lambda state: type(state)(count=1))
    assert ref.is_alive()
    state = system.get_state(ref)
    assert state.count == 1 and state.seen == ["a"]


def test_a_server_of_its_own_state_overrides_the_hooks() -> None:
    class Counter(GenServer):
        def __init__(self) -> None:
            super().__init__()
            self.value = 0

        def system_get_state(self) -> Any:
            return self.value

        def system_replace_state(self, fn: Any) -> Any:
            self.value = fn(self.value)
            return self.value

    ref = Counter.start()
    assert system.replace_state(ref, lambda v: v + 5) == 5
    assert system.get_state(ref) == 5


def test_statistics_count_messages_errors_and_handling_times() -> None:
    ref = Recorder.start()
    assert system.statistics(ref).enabled is False
    fresh = system.statistics(ref, True)
    assert fresh.enabled and fresh.messages == 0
    for i in range(20):
        ref.call(i)
    figures = system.statistics(ref)
    assert figures.messages == 20 and figures.errors == 0
    assert figures.mean is not None and figures.max is not None and figures.p99 is not None
    assert 0 < figures.mean <= figures.max and figures.p99 <= figures.max
    last = system.statistics(ref, False)
    assert last.messages == 20
    ref.call("x")
    assert system.statistics(ref).enabled is False
    assert ref._life.hooks is None  # off: the loop pays nothing


def test_trace_reports_calls_casts_replies_and_the_crash() -> None:
    ref = Recorder.start()
    records: list[system.TraceRecord] = []
    system.set_tracer(ref, records.append)
    ref.call("a")
    ref.tell("b")
    ref.tell("boom")
    wait_exit(ref)
    kinds = [(r.kind, r.message) for r in records]
    assert kinds == [
        ("call", "a"),
        ("reply", "a"),
        ("cast", "b"),
        ("cast", "boom"),
        ("crash", "boom"),
    ]
    assert isinstance(records[-1].error, RuntimeError) and records[-1].duration is not None


def test_exit_and_kill_work_on_a_suspended_server_and_held_calls_fail_cleanly() -> None:
    ref = Recorder.start()
    system.suspend(ref)
    held = ref.ask("held", block=False)
    assert ref.shutdown(5) == "shutdown"  # a supervisor can still stop it
    with pytest.raises(NoProcessError):
        held.get(timeout=5)
    other = Recorder.start()
    system.suspend(other)
    held = other.ask("held", block=False)
    assert other.kill()
    with pytest.raises(NoProcessError):
        held.get(timeout=5)
    with pytest.raises(NoProcessError):
        system.get_state(other)


def test_targets_refs_names_handles_and_what_is_refused() -> None:
    sup = Supervisor.start([ChildSpec.actor(Recorder, register_as="sys.rec")])
    by_name = system.get_status("sys.rec")
    assert by_name.name == "sys.rec" and by_name.restarts == 0
    assert by_name.supervisor is not None and by_name.child_id == "sys.rec"
    assert system.get_status(NamedHandle("sys.rec")).id == by_name.id
    with pytest.raises(NoProcessError, match="no GenServer"):
        system.get_state("sys.nobody", timeout=0.01)
    with pytest.raises(ConfigurationError, match="registered name"):
        system.get_state(42)
    with pytest.raises(ConfigurationError, match="n must be"):
        system.log("sys.rec", -1)
    first = system.server_ref("sys.rec")
    first.tell("boom")
    wait_exit(first)
    assert system.get_status("sys.rec").restarts == 1  # the name is waited for
    view = system.supervisor_view(sup)
    assert [(row.id, row.state, row.restarts) for row in view.children] == [
        ("sys.rec", "running", 1)
    ]
    with pytest.raises(ConfigurationError, match="not a supervisor"):
        system.supervisor_view("sys.rec")
    sup.stop()
