"""What Supervisor and DynamicSupervisor share: starting, watching, restarting children."""

from __future__ import annotations

import logging
import random
from collections.abc import Hashable, Sequence
from dataclasses import fields
from typing import Any, NamedTuple, TypeGuard

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import StartChildError

from ._child import Child, ChildCounts, ChildInfo, SupervisorStats, SupervisorView, count
from ._events import report
from ._exit import KILLED, SHUTDOWN, is_abnormal
from ._genserver import GenServer
from ._policy import RestartIntensity, should_restart
from ._ref import Down, ServerRef, launching
from ._shutdown import shutdown_all, shutdown_one
from ._spare import Spares

__all__ = ["SupervisorBase"]

logger = logging.getLogger("otpy.supervision")


class _Retry(NamedTuple):
    """A restart of ``child`` failed: try again (counts toward intensity), as OTP's
    ``try_again_restart``."""

    child: Child


class _Resume(NamedTuple):
    """A backoff delay for ``child``'s restart is over: start its group now."""

    child: Child


class SupervisorBase(GenServer):
    """Child bookkeeping and the restart machinery; subclasses choose the restart group."""

    def __init__(self, *, max_restarts: int, max_seconds: float, clock: Clock | None) -> None:
        super().__init__()
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._intensity = RestartIntensity(max_restarts, max_seconds, self._clock)
        self._children: dict[Hashable, Child] = {}  # by key, in start order
        self._random = random.Random()
        self._spares = Spares()  # threads its crashed children park for their restarts

    # -- hooks for subclasses -------------------------------------------------------------

    def _group(self, child: Child) -> list[Child]:
        """The children restarted with ``child``, in start order (``child`` included)."""
        return [child]

    def _exited_for_good(self, child: Child, reason: Any) -> None:
        """``child`` exited by itself and will not be restarted."""
        if child.spec.restart == "temporary":
            self._remove(child)

    def _terminate_all(self) -> None:
        """Stop every child; the default is one at a time in reverse start order."""
        for child in reversed(list(self._children.values())):
            self._halt(child)

    # -- lifecycle ------------------------------------------------------------------------

    def on_start(self) -> None:
        # Erlang links a supervisor to its children: if it is killed, they die with it.
        self.actor_ref.monitor(self._on_own_exit)

    def _on_own_exit(self, down: Down) -> None:
        self._spares.close()
        if down.reason != KILLED:
            return  # every other exit path stops the children itself
        # Runs in the killer's thread while our own may still be changing the dict.
        while True:
            try:
                children = list(self._children.values())
                break
            except RuntimeError:  # changed size during iteration: read it again
                continue
        for child in children:
            ref = child.ref
            if ref is not None:
                ref.kill()

    def on_stop(self) -> None:
        self._terminate_all()

    def on_failure(self, *exc_info: Any) -> None:
        self._terminate_all()

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is Down:
            self._child_down(message)
        elif kind is _Retry:
            child = message.child
            if self._owns(child) and child.state == "restarting":
                self._restart(child)
        elif kind is _Resume:
            child = message.child
            child.timer = None
            if self._owns(child) and child.state == "restarting":
                self._start_group(child)
        else:
            return super().on_receive(message)
        return None

    # -- queries --------------------------------------------------------------------------

    def which_children(self) -> list[ChildInfo]:
        return [child.info() for child in self._children.values()]

    def count_children(self) -> ChildCounts:
        return count(self._children.values())

    strategy = "one_for_one"

    def system_view(self) -> SupervisorView:
        """Flags and children at one moment (``otpy.observer``; a system request)."""
        return SupervisorView(
            self.strategy,
            self._intensity.max_restarts,
            self._intensity.max_seconds,
            self._intensity.restarts_in_window(),
            tuple(child.row() for child in self._children.values()),
        )

    def statistics(self) -> SupervisorStats:
        counts = self.count_children()
        server = ServerRef.statistics(self.actor_ref)  # not the ref's override: it calls us
        return SupervisorStats(
            **{f.name: getattr(server, f.name) for f in fields(server)},
            strategy=self.strategy,
            children=counts.specs,
            active=counts.active,
            restarting=sum(1 for c in self._children.values() if c.state == "restarting"),
            restarts_in_window=self._intensity.restarts_in_window(),
            max_restarts=self._intensity.max_restarts,
            max_seconds=self._intensity.max_seconds,
        )

    # -- child processes ------------------------------------------------------------------

    def _owns(self, child: Child) -> bool:
        return self._children.get(child.key) is child

    def _remove(self, child: Child) -> None:
        child.cancel_timer()
        if self._owns(child):
            del self._children[child.key]

    def _launch(self, child: Child) -> ServerRef[Any]:
        """Start ``child`` and watch it; raises StartChildError (child left not running)."""
        spec = child.spec
        restart = child.starts > 0 or child.state == "restarting"
        failure: StartChildError | None = None
        started: ServerRef[Any] | None = None
        launching.slot = (str(self), spec.id, child.starts)  # restarts before this one
        launching.spares = self._spares
        try:
            result = spec.start()  # type: ignore[misc]
        except BaseException as exc:
            failure = StartChildError(spec.id, exc)
            failure.__cause__ = exc
        finally:
            launching.slot = launching.spares = None
        if failure is None:
            if isinstance(result, ServerRef):
                started = result
            else:
                if hasattr(result, "stop"):
                    result.stop(block=False)
                failure = StartChildError(
                    spec.id, f"start returned {result!r}, not a started GenServer ref"
                )
        if started is None:
            assert failure is not None
            child.started_at = None
            report(
                "supervisor.child_start_failed",
                self,
                spec.id,
                restart=restart,
                error=repr(failure.reason),
            )
            raise failure
        child.ref = started
        if self._actor_ref._life.reason == KILLED:
            # Killed while this start ran: _on_own_exit (in the killer's thread) may have
            # read the children before this ref was set. One of us sees the other.
            started.kill()
        started._life.slot = (str(self), spec.id, child.starts)
        child.starts += 1
        child.state = "running"
        child.started_at = self._clock.monotonic()
        child.monitor = started.monitor(self.actor_ref, tag=child.key)
        if restart:
            window = {"restarts_in_window": self._intensity.restarts_in_window()}
            report("supervisor.child_restarted", self, spec.id, window, actor=str(started))
        else:
            report("supervisor.child_started", self, spec.id, actor=str(started))
        return started

    def _unwatch(self, child: Child) -> ServerRef[Any] | None:
        """Forget ``child``'s process (no Down will be acted on); returns its ref if alive."""
        child.cancel_timer()
        ref, child.ref = child.ref, None
        if child.monitor is not None:
            child.monitor.cancel()
            child.monitor = None
        child.state = "terminated"
        return ref if ref is not None and ref.exit_reason is None else None

    def _halt(self, child: Child) -> None:
        """Stop ``child`` as its spec's shutdown says, and wait for it."""
        ref = self._unwatch(child)
        if ref is not None:
            shutdown_one(ref, child.spec.shutdown, self._clock)  # type: ignore[arg-type]

    def _halt_concurrently(self, children: Sequence[Child]) -> None:
        refs = [(self._unwatch(c), c.spec.shutdown) for c in children]
        shutdown_all([(r, s) for r, s in refs if r is not None], self._clock)  # type: ignore[misc]

    # -- restarts -------------------------------------------------------------------------

    def _child_down(self, down: Down) -> None:
        child = self._children.get(down.tag)
        if child is None or child.ref is not down.ref:
            return  # stale: that process was already replaced or stopped by us
        child.last_ref = child.ref
        child.ref = None
        child.monitor = None
        spec = child.spec
        restart = should_restart(spec.restart, down.reason)
        report(
            "supervisor.child_exited",
            self,
            spec.id,
            reason=repr(down.reason),
            abnormal=is_abnormal(down.reason),
            restart=restart,
        )
        if restart:
            logger.warning("%s: child %r exited (%r)", self, spec.id, down.reason)
            self._restart(child)
        else:
            logger.info("%s: child %r exited (%r)", self, spec.id, down.reason)
            child.state = "terminated"
            self._exited_for_good(child, down.reason)

    def _restart(self, child: Child) -> None:
        if not self._intensity.add():
            report(
                "supervisor.max_intensity_reached",
                self,
                child.spec.id,
                {
                    "max_restarts": self._intensity.max_restarts,
                    "max_seconds": self._intensity.max_seconds,
                },
            )
            logger.error(
                "%s: reached max restart intensity (%d in %.3g s) at child %r; shutting down",
                self,
                self._intensity.max_restarts,
                self._intensity.max_seconds,
                child.spec.id,
            )
            self._shut_down()
            return
        logger.info("%s: restarting child %r", self, child.spec.id)
        group = self._group(child)
        for member in reversed(group):
            if member is not child:
                self._halt(member)
                if member.spec.restart == "temporary":
                    self._remove(member)
        child.state = "restarting"
        delay = self._backoff_delay(child)
        if delay > 0:
            me = self.actor_ref
            child.timer = self._clock.call_later(delay, lambda: me.cast(_Resume(child)))
        else:
            self._start_group(child)

    def _start_group(self, child: Child) -> None:
        for member in self._group(child):
            if member.state == "running":
                continue
            try:
                self._launch(member)
            except StartChildError as exc:
                logger.error("%s: restart of child %r failed: %r", self, member.spec.id, exc.reason)
                member.state = "restarting"
                self.actor_ref.cast(_Retry(member))
                return

    def _backoff_delay(self, child: Child) -> float:
        backoff = child.spec.backoff
        if backoff is None:
            return 0.0
        started = child.started_at
        if started is not None and self._clock.monotonic() - started >= backoff.healthy_after:
            child.attempt = 0
        child.started_at = None
        delay = backoff.delay(child.attempt, self._random.random())
        child.attempt += 1
        return delay

    def _shut_down(self) -> None:
        """Stop every child and exit with reason shutdown once this message is handled."""
        self._terminate_all()
        self.stop_after(SHUTDOWN)


def is_supervisor(ref: object) -> TypeGuard[ServerRef[Any]]:
    """Whether ``ref`` is the ref of a supervisor (a Supervisor or a DynamicSupervisor)."""
    return isinstance(ref, ServerRef) and issubclass(ref.actor_class, SupervisorBase)
