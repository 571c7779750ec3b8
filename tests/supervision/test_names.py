"""Named actors: whereis, name reuse after restart, handles that follow restarts."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from otpy.errors import NameTakenError, NoProcessError
from otpy.supervision import (
    ChildSpec,
    GenServer,
    NamedHandle,
    Supervisor,
    call,
    cast,
    registered,
    whereis,
)
from otpy.testing import wait_exit, wait_until
from support import Worker, restarted, worker


class Counter(GenServer):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def bump(self, by: int = 1) -> int:
        self.n += by
        return self.n

    def on_receive(self, message: Any) -> Any:
        if message == "die":
            raise RuntimeError("crash")
        return super().on_receive(message)


def test_whereis_and_name_freed_on_exit() -> None:
    ref = Worker.start_named("alpha", "a")
    assert whereis("alpha") is ref
    assert registered() == {"alpha": ref}
    ref.stop()
    assert whereis("alpha") is None
    again = Worker.start_named("alpha", "a")  # the name can be taken again
    assert whereis("alpha") is again


def test_name_taken_by_a_live_actor_is_refused_before_start() -> None:
    ref = Worker.start_named("alpha", "a")
    log: list[Any] = []
    with pytest.raises(NameTakenError) as info:
        Worker.start_named("alpha", "b", log)
    assert info.value.ref is ref
    assert log == []  # on_start never ran
    assert whereis("alpha") is ref


def test_supervised_named_child_is_found_after_restart() -> None:
    sup = Supervisor.start([ChildSpec.actor(Counter, register_as="counter")])
    first = whereis("counter")
    assert first is not None
    first.tell("die")
    new = wait_until(restarted(sup, "counter", first))
    assert whereis("counter") is new is not first


def test_handle_keeps_working_across_restarts() -> None:
    sup = Supervisor.start([ChildSpec.actor(Counter, register_as="counter")])
    handle = NamedHandle("counter")
    assert handle.bump() == 1
    assert handle.bump(by=2) == 3
    old = handle.ref
    assert old is not None
    old.tell("die")
    assert handle.bump() == 1  # a fresh incarnation: state starts over
    assert handle.ref is not old
    assert [c.id for c in sup.which_children()] == ["counter"]


def test_handle_waits_for_the_next_incarnation() -> None:
    """A call made while the name is free is served by the restarted actor."""
    gate = threading.Event()

    def start() -> Any:
        gate.wait(5)  # the supervisor is still restarting when the call is made
        return Counter.start_named("slow")

    gate.set()
    sup = Supervisor.start([ChildSpec(id="slow", start=start)])
    gate.clear()
    old = whereis("slow")
    assert old is not None
    old.tell("die")
    wait_exit(old)
    assert whereis("slow") is None
    results: list[int] = []
    caller = threading.Thread(target=lambda: results.append(NamedHandle("slow").bump()))
    caller.start()
    gate.set()
    caller.join(5)
    assert results == [1]
    assert sup.count_children().active == 1


def test_handle_gives_up_after_its_timeout() -> None:
    with pytest.raises(NoProcessError):
        NamedHandle("nobody", timeout=0.01).call("ping")


def test_handle_does_not_resend_a_handled_message() -> None:
    """A crash while handling is the caller's error; the message is not sent twice."""
    Supervisor.start([ChildSpec.actor(Counter, register_as="counter")])
    handle = NamedHandle("counter")
    with pytest.raises(RuntimeError, match="crash"):
        handle.call("die")
    assert handle.bump() == 1


def test_call_and_cast_by_name() -> None:
    Supervisor.start([worker("w", register_as="w")])
    assert call("w", "ping") == "pong"
    cast("w", "ping")
    cast("nobody", "ping")  # dropped, as Erlang
    with pytest.raises(NoProcessError):
        call("nobody", "ping", timeout=0.01)


def test_private_attributes_are_not_proxied() -> None:
    with pytest.raises(AttributeError):
        NamedHandle("x")._secret  # noqa: B018
