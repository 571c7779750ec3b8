"""``GenServer``: a Pykka ThreadingActor with Erlang's start, crash and exit semantics."""

from __future__ import annotations

import itertools
import logging
import queue
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self

import pykka
from pykka import ActorRegistry
from pykka.messages import _ActorStop

from otpy.errors import OtpyError

from . import _names
from ._exit import NORMAL, ExitReason, is_abnormal
from ._ref import ServerRef, _Exit, _Kill, _Lifecycle, _Ping, _Wake, drain, launching, refuse
from ._server_state import format_state, replace_attributes, state_of

__all__ = ["GenServer"]

logger = logging.getLogger("otpy.supervision")

_loops = itertools.count(1)  # names the threads of loops run on a spare, as Pykka does
_CONTROL = frozenset({_ActorStop, _Exit, _Kill, _Ping, _Wake})


class GenServer(pykka.ThreadingActor):
    """A supervised actor: Erlang ``gen_server`` semantics on a Pykka thread.

    - ``start()`` returns only once ``on_start`` has run, and raises its exception in the
      caller (plain Pykka logs it and returns a dead ref).
    - Proxy calls and ``ask`` are calls, ``tell`` is a cast. In a call, an exception that
      subclasses :class:`~otpy.errors.OtpyError` or is listed in ``expected_errors`` goes
      back to the caller and the actor goes on; any other exception goes back to the caller
      *and* crashes the actor: ``on_failure`` runs, the exit reason is the exception, and
      its supervisor restarts it according to its spec.
    - **The cast rule** (Erlang's): an exception that escapes a cast's handler crashes the
      actor, whatever its type, ``OtpyError`` included: there is no caller to hand it to,
      and an actor that carries on after losing work would hide it. An error a cast may
      meet and the actor can live with is caught in the handler, on purpose.
    - System messages (``otpy.sys``: get_state, suspend, statistics...) jump the mailbox
      and run between two messages; a suspended actor holds its mail until resumed.
    - It exits with reason ``normal`` (``ref.stop()``), ``shutdown`` (its supervisor), the
      exception, or ``killed``; ``on_stop`` runs on normal and shutdown exits only.
    - Monitors (``ref.monitor(...)``) hear of the exit with its reason.
    """

    expected_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    """Extra exception types that go back to the caller without crashing the actor."""

    start_timeout: ClassVar[float | None] = None
    """Seconds ``start()`` waits for ``on_start``; on expiry the actor is killed and
    ``TimeoutError`` raised. None waits as long as it takes (as Erlang's default)."""

    ref_class: ClassVar[type[ServerRef[Any]]] = ServerRef

    _actor_ref: ServerRef[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._actor_ref = self.ref_class(self)
        self._otpy_expected: tuple[type[BaseException], ...] = (
            OtpyError,
            *type(self).expected_errors,
        )
        self._otpy_stop_reason: ExitReason | None = None

    @property
    def actor_ref(self) -> ServerRef[Self]:
        """This actor's :class:`ServerRef`."""
        return self._actor_ref

    @property
    def exit_reason(self) -> ExitReason | None:
        """Why this actor is exiting: readable in ``on_stop`` (normal or shutdown)."""
        return self._actor_ref._life.reason or self._otpy_stop_reason

    @staticmethod
    def _create_actor_inbox() -> Any:
        # The C-implemented queue: put/get/empty are all Pykka needs, and it is faster.
        return queue.SimpleQueue()

    def __str__(self) -> str:
        name = self._actor_ref._life.name
        return f"{type(self).__name__}({name})" if name else super().__str__()

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> ServerRef[Self]:
        """Start the actor and wait until its ``on_start`` has run.

        Arguments go to ``__init__`` (run in the caller's thread); ``on_start`` runs in the
        actor's thread. Raises whatever ``on_start`` raised: the actor is then gone.
        """
        return cls._spawn(None, args, kwargs)

    @classmethod
    def start_named(cls, name: str, /, *args: Any, **kwargs: Any) -> ServerRef[Self]:
        """Like :meth:`start`, registering the actor under ``name`` before ``on_start`` runs.

        Raises ``NameTakenError`` if a live actor holds the name. The name is freed when
        the actor exits, so a restarted actor can take it again.
        """
        return cls._spawn(name, args, kwargs)

    @classmethod
    def _spawn(
        cls, name: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> ServerRef[Self]:
        obj = cls(*args, **kwargs)
        ref = obj.actor_ref
        life = ref._life
        life.slot = getattr(launching, "slot", None)
        life.spares = getattr(launching, "spares", None)
        if name is not None:
            _names.register(name, ref)
            life.name = name
        ActorRegistry.register(ref)
        logger.debug("starting %s", obj)
        obj._start_actor_loop()
        if not life.started.wait(cls.start_timeout):
            ref.kill()
            raise TimeoutError(f"{obj}: on_start did not finish within {cls.start_timeout} s")
        if life.start_error is not None:
            raise life.start_error
        return ref

    # -- system messages (otpy.sys), run in the actor's thread between messages ------------

    def system_get_state(self) -> Any:
        """``otpy.sys.get_state``: this server's state. By default a :class:`ServerState`
        of its attributes, deep-copied where they can be (safe to read anywhere); override
        (with :meth:`system_replace_state`) for a state object of your own."""
        return state_of(self)

    def system_replace_state(self, fn: Callable[[Any], Any]) -> Any:
        """``otpy.sys.replace_state``: install ``fn(state)`` and return the new state.

        By default ``fn`` gets :meth:`system_get_state`'s namespace and must return it
        (changed); see ``replace_attributes``. An exception leaves the state unchanged."""
        return replace_attributes(self, fn)

    def format_status(self) -> Mapping[str, Any]:
        """The state summary ``otpy.sys.get_status`` shows: short texts by attribute
        (override to hide or shape it; keep it cheap and JSON-ready)."""
        return format_state(self)

    def stop_after(self, reason: ExitReason = NORMAL) -> None:
        """From inside a handler: exit with ``reason`` once the current message is handled.

        The reply (if any) is still sent. Erlang's ``{stop, Reason, Reply, State}``.
        """
        self._otpy_stop_reason = reason

    # -- the actor's thread -------------------------------------------------------------

    def _start_actor_loop(self) -> None:
        # A supervisor's child runs on a thread the supervisor has parked, if any (see _spare).
        spares = self._actor_ref._life.spares
        name = f"{type(self).__name__}-{next(_loops)}"
        if spares is None or self.use_daemon_thread or not spares.run(self._actor_loop, name):
            super()._start_actor_loop()

    def _actor_loop(self) -> None:
        ref = self._actor_ref
        life = ref._life
        try:
            self.on_start()
        except BaseException as exc:
            life.start_error = exc
            logger.debug("%s failed in on_start: %r", self, exc)
            life.finish(ref, exc)
            life.started.set()
            drain(self._actor_ref)
            self._top_up()
            return
        life.started.set()
        reason, exc_info, stopper = self._receive_loop(life)
        if life.reason is None:  # not killed meanwhile
            life.closing(ref)
            if exc_info is None:
                try:
                    self.on_stop()
                except Exception as exc:
                    logger.exception("%s: on_stop failed", self)
                    reason = exc
            else:
                logger.error("%s crashed", self, exc_info=exc_info)
                try:
                    self.on_failure(*exc_info)
                except Exception:
                    logger.exception("%s: on_failure failed", self)
            life.finish(ref, reason)
        drain(self._actor_ref)
        if stopper is not None:
            stopper.set(None)
        self._top_up()

    def _top_up(self) -> None:
        """After a crash, park a thread with the supervisor for a coming restart."""
        life = self._actor_ref._life
        if life.spares is None or self.use_daemon_thread:
            return
        if life.reason is not None and is_abnormal(life.reason):
            life.spares.top_up()

    def _receive_loop(self, life: _Lifecycle) -> tuple[ExitReason, Any, Any]:
        """Handle messages until an exit; returns (reason, exc_info or None, stop future).

        Between two messages it first runs the system requests waiting in
        ``life.system`` (they jump the mailbox; a suspend holds it there). The time a
        message is taken up and the message itself are kept in ``life`` for
        ``get_status``; the hooks (statistics, trace) run only while switched on.
        """
        inbox = self.actor_inbox
        system = life.system
        get = inbox.get
        handle = self._handle_receive
        expected = self._otpy_expected
        clock = time.perf_counter
        while True:
            if system:
                outcome = self._system_turn(life, inbox)
                if outcome is not None:
                    return outcome
                get = self._take_deferred if life.deferred else inbox.get
            envelope = get()
            if life.reason is not None:  # killed: this one will not be handled either
                refuse(self._actor_ref, envelope)
                return life.reason, None, None
            message = envelope.message
            reply_to = envelope.reply_to
            if type(message) in _CONTROL:
                if type(message) is _ActorStop:
                    return NORMAL, None, reply_to
                if type(message) is _Exit:
                    return message.reason, None, reply_to
                if type(message) is _Ping and reply_to is not None:
                    reply_to.set(life.handled)
                continue
            life.current = message
            life.since = started = clock()
            hooks = life.hooks
            if hooks is not None:
                hooks.received(message, reply_to is not None)
            try:
                result = handle(message)
            except BaseException as exc:
                life.handled += 1
                life.current = None
                if reply_to is not None:
                    reply_to.set_exception()
                if hooks is not None:
                    hooks.handled(message, reply_to is not None, started, exc)
                if reply_to is None or not isinstance(exc, expected):
                    # The cast rule: no caller to hand the error to, so it crashes.
                    if hooks is not None:
                        hooks.crashed(message, started, exc)
                    return exc, sys.exc_info(), None
            else:
                life.handled += 1
                life.current = None
                if reply_to is not None:
                    reply_to.set(result)
                if hooks is not None:
                    hooks.handled(message, reply_to is not None, started, None)
            if self._otpy_stop_reason is not None:
                return self._otpy_stop_reason, None, None

    def _take_deferred(self) -> Any:
        """The next envelope after a resume: those held while suspended come first."""
        life = self._actor_ref._life
        try:
            envelope = life.deferred.popleft()
        except IndexError:
            return self.actor_inbox.get()
        if not life.deferred:
            life.system.append(None)  # the loop goes back to reading the mailbox
        return envelope

    def _system_turn(self, life: _Lifecycle, inbox: Any) -> tuple[ExitReason, Any, Any] | None:
        """Run the waiting system requests; while suspended, hold ordinary mail in
        ``life.deferred`` and handle only system requests and exits. Returns an exit
        (stop, exit or kill while suspended) or None to go on."""
        system = life.system
        while True:
            while system:
                request = system.popleft()
                if request is not None:
                    request.run(self)
            if not life.suspended:
                return None
            envelope = inbox.get()
            if life.reason is not None:
                refuse(self._actor_ref, envelope)
                return life.reason, None, None
            message = envelope.message
            kind = type(message)
            if kind is _Wake:
                continue
            if kind is _ActorStop:
                return NORMAL, None, envelope.reply_to
            if kind is _Exit:
                return message.reason, None, envelope.reply_to
            if kind is _Ping:
                if envelope.reply_to is not None:
                    envelope.reply_to.set(life.handled)
            elif kind is not _Kill:
                life.deferred.append(envelope)
