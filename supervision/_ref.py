"""``ServerRef``: a Pykka ``ActorRef`` that also knows how its actor ended, and monitors.

Every GenServer's ref is a ServerRef. Besides Pykka's ``ask``/``tell``/``stop`` it has
``call``/``cast`` with otpy errors, ``monitor`` (Erlang ``erlang:monitor/2``), ``kill``
and ``exit_reason``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import pykka
from pykka import ActorRef, ActorRegistry
from pykka._envelope import Envelope
from pykka.messages import _ActorStop

from otpy.errors import CallTimeoutError, NoProcessError

from . import _names
from ._exit import KILLED, SHUTDOWN, ExitReason
from ._spare import Spares

__all__ = ["Down", "handled_count", "Monitor", "ServerRef", "ServerStats"]

logger = logging.getLogger("otpy.supervision")

A = TypeVar("A", bound=pykka.Actor)  # a GenServer: _genserver imports this module

_monitor_ids = itertools.count()

launching = threading.local()
"""``launching.slot`` and ``launching.spares``: set by a supervisor's thread while it runs a
child's start, so the new server knows its child slot before its name is registered (see
``_Lifecycle.slot``) and where its supervisor parks threads (see ``_spare``)."""

LOG_SIZE = 100
"""How many system events each server keeps for ``otpy.sys.log``."""


class _Exit(NamedTuple):
    """Control message: finish the messages before this one, then exit with ``reason``."""

    reason: ExitReason


class _Kill(NamedTuple):
    """Control message: wakes a killed actor's thread so it can leave at once."""


class _Ping(NamedTuple):
    """Control message: replies with the number of messages handled (idle detection)."""


class _Wake(NamedTuple):
    """Control message: a system request is waiting in ``_Lifecycle.system`` (it is read
    there between messages, ahead of the mailbox; this only wakes an idle actor)."""


@dataclass(frozen=True, slots=True)
class Down:
    """Sent to a monitor when the watched actor exits: its ref, exit reason and tag."""

    ref: ServerRef[Any]
    reason: ExitReason
    tag: Hashable = None


@dataclass(frozen=True, slots=True)
class ServerStats:
    """``ServerRef.statistics()``: a snapshot of one GenServer, read without a message."""

    name: str | None
    alive: bool
    handled: int
    mailbox: int
    monitors: int
    exit_reason: ExitReason | None


class Monitor:
    """A monitor set with :meth:`ServerRef.monitor`; ``cancel()`` is Erlang's ``demonitor``."""

    __slots__ = ("_id", "_life", "_notify", "tag")

    def __init__(
        self,
        life: _Lifecycle,
        notify: Callable[[Down], object] | ActorRef[Any],
        tag: Hashable,
    ) -> None:
        self._id = next(_monitor_ids)
        self._life = life
        self._notify = notify
        self.tag = tag

    def cancel(self) -> None:
        """Stop watching; no Down is delivered after this returns (one may already be queued)."""
        with self._life.lock:
            self._life.monitors.pop(self._id, None)

    def _fire(self, down: Down) -> None:
        notify = self._notify
        try:
            if isinstance(notify, ActorRef):
                if notify.is_alive():
                    notify.tell(down)
            else:
                notify(down)
        except pykka.ActorDeadError:
            pass
        except Exception:
            logger.exception("monitor callback %r failed for %s", notify, down)


class _Lifecycle:
    """Start/exit state of one actor; shared by its thread, its ref and its killers."""

    __slots__ = (
        "born",
        "current",
        "deferred",
        "exited",
        "handled",
        "hooks",
        "lock",
        "log",
        "monitors",
        "name",
        "reason",
        "since",
        "slot",
        "spares",
        "start_error",
        "started",
        "suspended",
        "system",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.exited = threading.Event()
        self.start_error: BaseException | None = None
        self.reason: ExitReason | None = None
        self.monitors: dict[int, Monitor] = {}
        self.name: str | None = None
        self.handled = 0
        # What otpy.system reads and drives (see supervision/system.py):
        self.born = time.time()  # epoch seconds: uptime and the status's start time
        self.current: Any = None  # the message being handled, None between messages
        self.since = 0.0  # perf_counter() when ``current`` was taken up
        self.system: deque[Any] = deque()  # system requests: they jump the mailbox
        self.deferred: deque[Envelope[Any]] = deque()  # ordinary mail held while suspended
        self.suspended = False
        self.hooks: Any = None  # statistics and trace, when either is switched on
        self.log: deque[Any] = deque(maxlen=LOG_SIZE)  # the last system events
        self.slot: tuple[str, Hashable, int] | None = None  # (supervisor, child id, restarts)
        self.spares: Spares | None = None  # its supervisor's parked threads (see _spare)

    def closing(self, ref: ActorRef[Any]) -> None:
        """Refuse new messages: the actor is on its way out (its on_stop may still run)."""
        ref.actor_stopped.set()
        ActorRegistry.unregister(ref)

    def finish(self, ref: ActorRef[Any], reason: ExitReason) -> bool:
        """Record the exit, free the name and tell the monitors; only the first call counts."""
        with self.lock:
            if self.reason is not None:
                return False
            self.reason = reason
            monitors = list(self.monitors.values())
            self.monitors.clear()
        self.closing(ref)
        if self.name is not None:
            _names.unregister(self.name, ref)
        for monitor in monitors:
            monitor._fire(Down(ref, reason, monitor.tag))  # type: ignore[arg-type]
        self.exited.set()
        return True


class ServerRef(ActorRef[A], Generic[A]):
    """Reference to a running GenServer; safe to pass between threads.

    ``call`` is Erlang's ``gen_server:call`` (blocking, with a timeout), ``cast`` its
    ``gen_server:cast`` (fire and forget). A ref stays tied to one incarnation: after a
    restart the new actor has a new ref; hold a name or a handle to follow restarts.
    """

    def __init__(self, actor: A) -> None:
        super().__init__(actor)
        self._life = _Lifecycle()

    def __str__(self) -> str:
        name = self._life.name
        return f"{self.actor_class.__name__}({name})" if name else super().__str__()

    @property
    def name(self) -> str | None:
        """The name this actor was started under, if any."""
        return self._life.name

    @property
    def exit_reason(self) -> ExitReason | None:
        """None while alive (or stopping); then normal, shutdown, killed or the exception."""
        return self._life.reason

    def statistics(self) -> ServerStats:
        """Messages handled, mailbox length, monitors and exit reason; never blocks."""
        life = self._life
        inbox: Any = self.actor_inbox
        return ServerStats(
            name=life.name,
            alive=self.is_alive(),
            handled=life.handled,
            mailbox=(inbox.qsize() if hasattr(inbox, "qsize") else -1) + len(life.deferred),
            monitors=len(life.monitors),
            exit_reason=life.reason,
        )

    def call(self, message: Any, *, timeout: float | None = 5.0) -> Any:
        """Send ``message`` and wait for the reply (``on_receive``'s return value).

        Raises what the handler raised, ``NoProcessError`` if the actor is dead or dies
        before handling it, ``CallTimeoutError`` after ``timeout`` seconds.
        """
        if not self.is_alive():
            raise NoProcessError(self)
        # Enqueue directly: Pykka's ask checks liveness again and, if the actor died in
        # between, fails with its own ActorDeadError, which says less (handled or not?).
        future = self.actor_class._create_future()
        self.actor_inbox.put(Envelope(message, reply_to=future))
        if not self.is_alive():
            # It may have drained its mailbox just before our message went in: answer
            # whatever is left ourselves, or the reply would never come.
            drain(self)
        try:
            return future.get(timeout=timeout)
        except pykka.Timeout:
            raise CallTimeoutError(self, timeout) from None

    def cast(self, message: Any) -> None:
        """Send ``message`` without waiting; dropped silently if the actor is dead (as Erlang)."""
        with contextlib.suppress(pykka.ActorDeadError):
            self.tell(message)

    def monitor(
        self,
        notify: Callable[[Down], object] | ActorRef[Any],
        tag: Hashable = None,
    ) -> Monitor:
        """Watch this actor: when it exits, ``notify`` gets a :class:`Down`.

        ``notify`` is a callable (run in the exiting actor's thread, or the killer's: keep
        it short; exceptions are logged) or an actor ref (the Down is told to it). If the
        actor has already exited, the Down is delivered at once with its exit reason.
        """
        life = self._life
        monitor = Monitor(life, notify, tag)
        with life.lock:
            reason = life.reason
            if reason is None:
                life.monitors[monitor._id] = monitor
        if reason is not None:
            monitor._fire(Down(self, reason, tag))
        return monitor

    def exit(self, reason: ExitReason = SHUTDOWN) -> None:
        """Ask the actor to exit with ``reason`` after the messages already in its mailbox.

        Returns at once; use :meth:`wait_exit` to wait. No-op if the actor is dead.
        """
        if self.is_alive():
            self.actor_inbox.put(Envelope(_Exit(reason)))

    def shutdown(self, timeout: float | None = 5.0) -> ExitReason:
        """Stop the actor as a supervisor would: exit with reason shutdown after its
        mailbox and ``on_stop``, killed if that takes over ``timeout`` seconds (real time).

        Returns the exit reason (``"killed"`` if it had to be). A stuck actor cannot make
        this hang, unlike Pykka's ``stop()`` without a timeout.
        """
        self.exit(SHUTDOWN)
        if not self.wait_exit(timeout):
            self.kill()
        reason = self._life.reason
        assert reason is not None
        return reason

    def kill(self) -> bool:
        """Kill the actor now (exit reason ``killed``): no on_stop, monitors told at once.

        A Python thread cannot be interrupted: a handler already running finishes in the
        background, but the actor is dead to everyone else from here on (its ref, name and
        mailbox). Returns False if it had already exited.
        """
        if self._life.finish(self, KILLED):
            self.actor_inbox.put(Envelope(_Kill()))
            drain_held(self)  # a suspended actor's held mail and its system requests
            return True
        return False

    def wait_exit(self, timeout: float | None = None) -> bool:
        """Block until the actor has exited (monitors told); False after ``timeout``."""
        return self._life.exited.wait(timeout)


def handled_count(ref: ServerRef[Any], timeout: float | None = None) -> int:
    """How many messages ``ref`` has handled, asked through its mailbox: the answer comes
    once everything sent to it before has been handled (idle detection, as in
    ``otpy.testing.wait_idle``). NoProcessError-like Pykka errors if it is dead."""
    return int(ref.ask(_Ping(), block=True, timeout=timeout))


def drain(ref: ActorRef[Any]) -> None:
    """Answer every message left in a dead actor's mailbox (and those it held while
    suspended, and its system requests) with NoProcessError."""
    drain_held(ref)
    inbox = ref.actor_inbox
    while not inbox.empty():
        try:
            envelope = inbox.get(block=False)  # type: ignore[call-arg]
        except queue.Empty:
            return
        refuse(ref, envelope)


def drain_held(ref: ActorRef[Any]) -> None:
    """Refuse what a dead actor held outside its mailbox: mail held while suspended and
    system requests (the mailbox itself is left to the actor's thread)."""
    life: _Lifecycle | None = getattr(ref, "_life", None)
    if life is not None:
        while life.deferred:
            try:
                refuse(ref, life.deferred.popleft())
            except IndexError:
                break
        while life.system:
            try:
                request = life.system.popleft()
            except IndexError:
                break
            if request is not None:
                request.refuse(NoProcessError(ref))


def refuse(ref: ActorRef[Any], envelope: Envelope[Any]) -> None:
    """Answer one message the dead actor will never handle (a stop request: done)."""
    if envelope.reply_to is None:
        return
    if type(envelope.message) in (_ActorStop, _Exit):
        envelope.reply_to.set(None)
    else:
        envelope.reply_to.set_exception((NoProcessError, NoProcessError(ref), None))
