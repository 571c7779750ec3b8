"""Actors and start functions shared by the tests (the Python side of OTP's supervisor_1..4)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from otpy.supervision import ChildSpec, GenServer, ServerRef


class Died(Exception):
    """A worker's abnormal exit, as ``died`` in OTP's suite."""


class Worker(GenServer):
    """Like OTP's ``supervisor_1``.

    Messages: ``"ping"`` → ``"pong"``; ``"die"`` → crashes with :class:`Died`;
    ``"stop"`` → exits normal; ``("exit", reason)`` → exits with that reason;
    ``("block", event)`` → stays in the handler until the event is set (unresponsive).
    ``log`` (a list) records ``("start"|"stop", tag)`` as it happens.
    """

    def __init__(self, tag: Any = None, log: list[Any] | None = None) -> None:
        super().__init__()
        self.tag = tag
        self.log = log

    def on_start(self) -> None:
        if self.log is not None:
            self.log.append(("start", self.tag))

    def on_stop(self) -> None:
        if self.log is not None:
            self.log.append(("stop", self.tag))

    def on_receive(self, message: Any) -> Any:
        if message == "ping":
            return "pong"
        if message == "die":
            raise Died(self.tag)
        if message == "stop":
            self.stop_after("normal")
            return None
        if isinstance(message, tuple) and message[0] == "exit":
            self.stop_after(message[1])
            return None
        if isinstance(message, tuple) and message[0] == "block":
            message[1].wait()
            return None
        return super().on_receive(message)


class SlowStop(Worker):
    """Its ``on_stop`` waits for ``release`` (OTP's ``supervisor_2``: a slow terminate)."""

    def __init__(
        self, release: threading.Event, tag: Any = None, log: list[Any] | None = None
    ) -> None:
        super().__init__(tag, log)
        self.release = release

    def on_stop(self) -> None:
        self.release.wait()
        super().on_stop()


def worker(id: Any, *, log: list[Any] | None = None, **spec: Any) -> ChildSpec:
    """A ChildSpec for a :class:`Worker` tagged with its id."""
    return ChildSpec.actor(Worker, id, log, id=id, **spec)


class StartSwitch:
    """A start function whose later starts fail while ``failing`` is set.

    ``fail_after=1`` is OTP's ``supervisor_1:start_child(error)``: the first start works,
    every restart fails. ``attempts`` counts calls; ``attempted`` is set on each.
    """

    def __init__(
        self, tag: Any, *, fail_after: int | None = None, log: list[Any] | None = None
    ) -> None:
        self.tag = tag
        self.log = log
        self.fail_after = fail_after
        self.failing = threading.Event()
        self.attempts = 0
        self.attempted = threading.Condition()

    def __call__(self) -> ServerRef[Any]:
        with self.attempted:
            self.attempts += 1
            self.attempted.notify_all()
        if self.failing.is_set() or (
            self.fail_after is not None and self.attempts > self.fail_after
        ):
            raise RuntimeError(f"start of {self.tag!r} refused (attempt {self.attempts})")
        return Worker.start(self.tag, self.log)

    def wait_attempts(self, n: int, timeout: float = 5.0) -> None:
        with self.attempted:
            if not self.attempted.wait_for(lambda: self.attempts >= n, timeout):
                raise TimeoutError(f"{self.attempts} of {n} start attempts")


def crash(ref: ServerRef[Any]) -> None:
    """Make a worker crash (a cast, so the test does not get the error back)."""
    ref.tell("die")


def refs(sup: Any) -> dict[Any, ServerRef[Any] | None]:
    """id → ref for every child of a supervisor."""
    return {c.id: c.ref for c in sup.which_children()}


def restarted(sup: Any, child_id: Any, old: ServerRef[Any]) -> Callable[[], ServerRef[Any] | None]:
    """A predicate for wait_until: the child's new ref once it differs from ``old``."""

    def check() -> ServerRef[Any] | None:
        ref = refs(sup).get(child_id)
        return ref if ref is not None and ref is not old else None

    return check


class InThread:
    """``fn(*args, **kwargs)`` in a thread of its own, for calls that block (a limiter's
    acquire, a retry loop) while the test moves a FakeClock. ``result()`` returns what the
    call returned or raises what it raised."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()

        def run() -> None:
            try:
                self.value = fn(*args, **kwargs)
            except BaseException as exc:
                self.error = exc
            finally:
                self.done.set()

        self.thread = threading.Thread(target=run, name=f"in-thread-{fn!r:.40}")
        self.thread.start()

    def result(self, timeout: float = 5.0) -> Any:
        assert self.done.wait(timeout), f"{self.thread.name} did not return"
        self.thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.value
