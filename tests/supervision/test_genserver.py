"""GenServer: blocking start, call/cast, crash semantics, exit reasons, monitors, kill."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from otpy.errors import CallTimeoutError, ConfigurationError, NoProcessError, OtpyError
from otpy.supervision import KILLED, NORMAL, SHUTDOWN, Down, GenServer, ServerRef
from otpy.testing import wait_exit
from support import Died, Worker


class FailsToStart(GenServer):
    def on_start(self) -> None:
        raise ValueError("no config")


class Domain(GenServer):
    """Raises expected and unexpected errors on demand."""

    expected_errors = (KeyError,)

    def __init__(self) -> None:
        super().__init__()
        self.handled = 0
        self.stopped = False
        self.failed: BaseException | None = None

    def on_receive(self, message: Any) -> Any:
        self.handled += 1
        if message == "domain":
            raise ConfigurationError("bad value for 'x'")
        if message == "key":
            raise KeyError("k")
        if message == "bug":
            raise ZeroDivisionError("oops")
        if message == "count":
            return self.handled
        return super().on_receive(message)

    def lookup(self, key: str) -> str:
        return {"a": "A"}[key]

    def on_stop(self) -> None:
        self.stopped = True

    def on_failure(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.failed = exc


def test_start_returns_only_after_on_start_ran() -> None:
    entered = threading.Event()

    class Slow(GenServer):
        def on_start(self) -> None:
            entered.set()
            self.ready = True

        def is_ready(self) -> bool:
            return self.ready

    ref = Slow.start()
    assert entered.is_set()
    assert ref.proxy().is_ready().get(timeout=5) is True


def test_start_raises_on_start_error_in_the_starter() -> None:
    baseline = len(pykka.ActorRegistry.get_all())
    with pytest.raises(ValueError, match="no config"):
        FailsToStart.start()
    assert len(pykka.ActorRegistry.get_all()) == baseline


def test_start_timeout_kills_a_hanging_on_start() -> None:
    release = threading.Event()

    class Hangs(GenServer):
        start_timeout = 0.05

        def on_start(self) -> None:
            release.wait(10)

    try:
        with pytest.raises(TimeoutError, match="on_start did not finish"):
            Hangs.start()
    finally:
        release.set()


def test_domain_error_goes_back_and_the_actor_goes_on() -> None:
    ref = Domain.start()
    with pytest.raises(ConfigurationError, match="'x'"):
        ref.call("domain")
    with pytest.raises(KeyError):
        ref.call("key")  # listed in expected_errors
    assert ref.is_alive()
    assert ref.call("count") == 3


def test_domain_error_in_a_proxy_call_keeps_the_actor() -> None:
    ref = Domain.start()
    with pytest.raises(KeyError):
        ref.proxy().lookup("zzz").get(timeout=5)
    assert ref.proxy().lookup("a").get(timeout=5) == "A"


def test_unexpected_error_goes_back_and_crashes_the_actor() -> None:
    ref = Domain.start()
    actor = ref._actor_weakref()
    with pytest.raises(ZeroDivisionError):
        ref.call("bug")
    reason = wait_exit(ref)
    assert isinstance(reason, ZeroDivisionError)
    assert actor is not None and isinstance(actor.failed, ZeroDivisionError)
    assert actor.stopped is False  # on_stop is for normal and shutdown exits only
    with pytest.raises(NoProcessError):
        ref.call("count")


def test_unexpected_error_in_a_cast_crashes_the_actor() -> None:
    ref = Worker.start("w")
    ref.tell("die")
    assert isinstance(wait_exit(ref), Died)


@pytest.mark.parametrize("message", ["domain", "key"])
def test_the_cast_rule_an_expected_error_in_a_cast_crashes_the_actor(message: str) -> None:
    """Erlang's rule: a cast has no caller to hand an error to, so any exception that
    escapes its handler crashes the actor, OtpyError and expected_errors included."""
    ref = Domain.start()
    ref.tell(message)
    reason = wait_exit(ref)
    assert isinstance(reason, ConfigurationError if message == "domain" else KeyError)
    actor = ref._actor_weakref()
    assert actor is not None and actor.failed is reason  # on_failure ran


def test_the_same_expected_error_in_a_call_goes_back_and_the_actor_lives() -> None:
    ref = Domain.start()
    with pytest.raises(ConfigurationError):
        ref.call("domain")
    with pytest.raises(KeyError):
        ref.call("key")
    assert ref.call("count") == 3


def test_messages_queued_behind_a_crash_fail_with_no_process() -> None:
    gate = threading.Event()
    ref = Worker.start("w")
    ref.tell(("block", gate))
    ref.tell("die")
    pending = ref.ask("ping", block=False)
    gate.set()
    with pytest.raises(NoProcessError):
        pending.get(timeout=5)


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        (lambda ref: ref.stop(), NORMAL),
        (lambda ref: ref.exit(SHUTDOWN), SHUTDOWN),
        (lambda ref: ref.call("stop"), NORMAL),
        (lambda ref: ref.kill(), KILLED),
    ],
    ids=["stop", "exit-shutdown", "stop-from-inside", "kill"],
)
def test_exit_reasons(stop: Any, expected: str) -> None:
    log: list[Any] = []
    ref = Worker.start("w", log)
    stop(ref)
    assert wait_exit(ref) == expected
    assert (("stop", "w") in log) is (expected != KILLED)


def test_stop_returns_after_on_stop_ran() -> None:
    log: list[Any] = []
    ref = Worker.start("w", log)
    assert ref.stop() is True
    assert log == [("start", "w"), ("stop", "w")]
    assert ref.stop() is False  # already dead


def test_call_timeout() -> None:
    gate = threading.Event()
    ref = Worker.start("w")
    ref.tell(("block", gate))
    with pytest.raises(CallTimeoutError) as info:
        ref.call("ping", timeout=0.01)
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, OtpyError)
    gate.set()
    assert ref.call("ping") == "pong"


def test_cast_to_a_dead_actor_is_dropped() -> None:
    ref = Worker.start("w")
    ref.stop()
    ref.cast("ping")  # no error, as Erlang


def test_monitor_callback_and_message_get_the_reason() -> None:
    seen: list[Down] = []
    inbox: list[Down] = []

    class Watcher(GenServer):
        def on_receive(self, message: Any) -> Any:
            if isinstance(message, Down):
                inbox.append(message)
            return None

    watcher = Watcher.start()
    ref = Worker.start("w")
    ref.monitor(seen.append, tag="cb")
    ref.monitor(watcher, tag="msg")
    ref.tell("die")
    wait_exit(ref)
    assert watcher.call("sync") is None  # the Down was told before exit finished
    assert [(d.ref, type(d.reason), d.tag) for d in seen] == [(ref, Died, "cb")]
    assert [(d.ref, type(d.reason), d.tag) for d in inbox] == [(ref, Died, "msg")]


def test_monitor_after_exit_delivers_the_real_reason_at_once() -> None:
    ref = Worker.start("w")
    ref.exit(SHUTDOWN)
    wait_exit(ref)
    seen: list[Down] = []
    ref.monitor(seen.append)
    assert [d.reason for d in seen] == [SHUTDOWN]


def test_cancelled_monitor_is_not_told() -> None:
    seen: list[Down] = []
    ref = Worker.start("w")
    ref.monitor(seen.append).cancel()
    ref.stop()
    assert seen == []


def test_failing_monitor_callback_does_not_break_the_exit(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Down] = []

    def broken(down: Down) -> None:
        raise RuntimeError("callback bug")

    ref = Worker.start("w")
    ref.monitor(broken)
    ref.monitor(seen.append)
    ref.stop()
    assert wait_exit(ref) == NORMAL
    assert len(seen) == 1
    assert "callback bug" in caplog.text


def test_kill_of_a_busy_actor_is_immediate_for_everyone_else() -> None:
    gate = threading.Event()
    log: list[Any] = []
    ref = Worker.start("w", log)
    ref.tell(("block", gate))
    pending = ref.ask("ping", block=False)
    assert ref.kill() is True
    assert ref.exit_reason == KILLED and not ref.is_alive()
    with pytest.raises(NoProcessError):
        ref.call("ping")
    assert ref.kill() is False
    gate.set()  # the handler that was running finishes in the background...
    with pytest.raises(NoProcessError):
        pending.get(timeout=5)  # ...and what was queued behind it is refused
    assert ("stop", "w") not in log


def test_base_exception_crashes_only_that_actor() -> None:
    class Exits(GenServer):
        def on_receive(self, message: Any) -> Any:
            raise SystemExit(3)

    bystander = Worker.start("b")
    ref = Exits.start()
    with pytest.raises(SystemExit):
        ref.call("x")
    assert isinstance(wait_exit(ref), SystemExit)
    assert bystander.call("ping") == "pong"  # Pykka would have stopped every actor


def test_stop_after_sends_the_reply_first() -> None:
    class OneShot(GenServer):
        def on_receive(self, message: Any) -> Any:
            self.stop_after(SHUTDOWN)
            return "last words"

    ref = OneShot.start()
    assert ref.call("x") == "last words"
    assert wait_exit(ref) == SHUTDOWN


def test_on_stop_error_becomes_the_exit_reason() -> None:
    class BadStop(GenServer):
        def on_stop(self) -> None:
            raise RuntimeError("cleanup failed")

    ref = BadStop.start()
    ref.stop()
    assert isinstance(ref.exit_reason, RuntimeError)


def test_ref_is_a_pykka_actor_ref() -> None:
    ref = Worker.start("w")
    assert isinstance(ref, ServerRef) and isinstance(ref, pykka.ActorRef)
    assert ref.ask("ping") == "pong"
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is ref


def test_kill_answers_the_message_the_actor_had_already_taken() -> None:
    """The killed actor's thread takes the next message off its mailbox before it notices
    the kill; that caller gets NoProcessError, not a timeout."""
    entered, gate = threading.Event(), threading.Event()

    class Busy(GenServer):
        def on_receive(self, message: Any) -> Any:
            if message == "block":
                entered.set()
                gate.wait(10)
            return message

    ref = Busy.start()
    ref.tell("block")
    assert entered.wait(5)  # the handler is running: the pings queue behind it
    pending = [ref.ask("ping", block=False) for _ in range(3)]
    ref.kill()
    gate.set()
    for future in pending:
        with pytest.raises(NoProcessError):
            future.get(timeout=5)


def test_statistics_snapshot_without_a_message() -> None:
    gate = threading.Event()
    ref = Worker.start_named("stats", "w")
    ref.call("ping")
    ref.tell(("block", gate))
    ref.tell("ping")  # waits behind the blocked handler
    watch = ref.monitor(lambda down: None)
    stats = ref.statistics()  # answered while the actor is busy
    assert (stats.name, stats.alive, stats.handled, stats.monitors) == ("stats", True, 1, 1)
    assert stats.mailbox >= 1 and stats.exit_reason is None
    watch.cancel()
    gate.set()
    ref.stop()
    assert ref.statistics().exit_reason == "normal" and not ref.statistics().alive


def test_shutdown_kills_what_does_not_stop_in_time() -> None:
    gate = threading.Event()
    stuck = Worker.start("stuck")
    stuck.tell(("block", gate))
    assert stuck.shutdown(timeout=0.01) == KILLED
    gate.set()
    assert Worker.start("fine").shutdown() == SHUTDOWN
