"""``GenServer``: a Pykka ThreadingActor with Erlang's start, crash and exit semantics."""

from __future__ import annotations

import logging
import queue
import sys
from typing import Any, ClassVar, Self

import pykka
from pykka import ActorRegistry
from pykka.messages import _ActorStop

from otpy.errors import OtpyError

from . import _names
from ._exit import NORMAL, ExitReason
from ._ref import ServerRef, _Exit, _Kill, _Lifecycle, _Ping, drain, refuse

__all__ = ["GenServer"]

logger = logging.getLogger("otpy.supervision")

_CONTROL = frozenset({_ActorStop, _Exit, _Kill, _Ping})


class GenServer(pykka.ThreadingActor):
    """A supervised actor: Erlang ``gen_server`` semantics on a Pykka thread.

    - ``start()`` returns only once ``on_start`` has run, and raises its exception in the
      caller (plain Pykka logs it and returns a dead ref).
    - Proxy calls and ``ask`` are calls, ``tell`` is a cast. An exception that subclasses
      :class:`~otpy.errors.OtpyError` or is listed in ``expected_errors`` goes back to the
      caller and the actor goes on (from a cast it is logged). Any other exception goes back
      to the caller *and* crashes the actor: ``on_failure`` runs, the exit reason is the
      exception, and its supervisor restarts it according to its spec.
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

    def stop_after(self, reason: ExitReason = NORMAL) -> None:
        """From inside a handler: exit with ``reason`` once the current message is handled.

        The reply (if any) is still sent. Erlang's ``{stop, Reason, Reply, State}``.
        """
        self._otpy_stop_reason = reason

    # -- the actor's thread -------------------------------------------------------------

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

    def _receive_loop(self, life: _Lifecycle) -> tuple[ExitReason, Any, Any]:
        """Handle messages until an exit; returns (reason, exc_info or None, stop future)."""
        inbox = self.actor_inbox
        handle = self._handle_receive
        expected = self._otpy_expected
        while True:
            envelope = inbox.get()
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
            try:
                result = handle(message)
            except expected as exc:
                if reply_to is not None:
                    reply_to.set_exception()
                else:
                    logger.warning("%s: cast %r failed: %r", self, message, exc)
            except BaseException as exc:
                if reply_to is not None:
                    reply_to.set_exception()
                life.handled += 1
                return exc, sys.exc_info(), None
            else:
                if reply_to is not None:
                    reply_to.set(result)
            life.handled += 1
            if self._otpy_stop_reason is not None:
                return self._otpy_stop_reason, None, None
