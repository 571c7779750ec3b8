"""Erlang's ``sys`` for every GenServer: query, suspend, trace and change a running server.

Each operation is a *system request*: a function run in the server's own thread between
two messages, ahead of its mailbox (it jumps the queue). A server busy with one long
message answers when that message is done; a request that gets no answer within its
``timeout`` is withdrawn and raises :class:`~otpy.errors.ServerBusyError` (naming the
message it is busy with) — it never runs later. ``otpy.sys`` is the user-facing facade
(it adds trace events on the telemetry hub); this module knows nothing of telemetry.

Every function takes a target: a :class:`ServerRef`, a registered name (waited for up to
``timeout`` while it restarts), or a handle with an ``__otpy_ref__()`` method returning
either (:class:`RefProvider`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pykka._envelope import Envelope

from otpy.errors import CallTimeoutError, ConfigurationError, NoProcessError, ServerBusyError

from . import _names
from ._child import ChildRow, SupervisorView
from ._ref import ServerRef, _Wake, drain
from ._server_state import ServerState
from ._sysmsg import OFF, Hooks, LogEntry, Request, ServerStatistics, TraceRecord, _Stats, summary

__all__ = [
    "ChildRow",
    "LogEntry",
    "RefProvider",
    "ServerState",
    "ServerStatistics",
    "ServerStatus",
    "TraceRecord",
    "get_state",
    "get_status",
    "id_text",
    "log",
    "replace_state",
    "request",
    "resume",
    "server_ref",
    "set_tracer",
    "statistics",
    "status_of",
    "summary",
    "supervisor_view",
    "suspend",
    "SupervisorView",
]

Target = Any  # ServerRef | str | RefProvider
DEFAULT_TIMEOUT = 5.0


@runtime_checkable
class RefProvider(Protocol):
    """A handle ``otpy.sys`` accepts: ``__otpy_ref__()`` returns the server's current ref
    or its registered name, or raises NoProcessError saying why there is none now."""

    def __otpy_ref__(self) -> ServerRef[Any] | str: ...


def server_ref(target: Target, *, timeout: float | None = DEFAULT_TIMEOUT) -> ServerRef[Any]:
    """The live ref behind ``target`` (a ref, a name, or a :class:`RefProvider`).

    A name nobody holds is waited for up to ``timeout`` seconds (a restart in progress);
    then NoProcessError. ConfigurationError for anything else."""
    if isinstance(target, RefProvider) and not isinstance(target, ServerRef):
        target = target.__otpy_ref__()
    if isinstance(target, ServerRef):
        return target
    if isinstance(target, str):
        ref = _names.whereis(target) or _names.wait_for_name(target, timeout)
        if not isinstance(ref, ServerRef):
            raise NoProcessError(target, "no GenServer is registered under that name")
        return ref
    raise ConfigurationError(
        f"otpy.sys needs a GenServer ref, a registered name or a handle with "
        f"__otpy_ref__(), got {summary(target)}"
    )


def request(
    target: Target,
    what: str,
    fn: Callable[[Any], Any],
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Any:
    """Run ``fn(server)`` in the server's thread between messages and return its result.

    Raises what ``fn`` raised, NoProcessError if the server is dead or dies first,
    ServerBusyError if it was busy with one message for all of ``timeout`` seconds
    (CallTimeoutError if it did not answer for another reason); then ``fn`` never runs."""
    deadline = None if timeout is None else time.monotonic() + timeout
    ref = server_ref(target, timeout=timeout)
    if not ref.is_alive():
        raise NoProcessError(ref)
    life = ref._life
    pending = Request(what, fn)
    life.system.append(pending)
    ref.actor_inbox.put(Envelope(_Wake()))
    if not ref.is_alive():
        drain(ref)  # it may have drained before our request went in
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    if not pending.done.wait(left):
        if pending.withdraw():
            current, since = life.current, life.since
            if current is None:
                raise CallTimeoutError(f"{ref} ({what})", timeout)
            busy_for = time.perf_counter() - since
            raise ServerBusyError(ref, timeout, what, summary(current), busy_for)
        pending.done.wait()  # it has begun: a system request runs to its end
    if pending.error is not None:
        raise pending.error
    return pending.result


def _note(server: Any, event: str, detail: str = "") -> None:
    server.actor_ref._life.log.append(LogEntry(time.time(), event, detail))


def get_state(target: Target, *, timeout: float | None = DEFAULT_TIMEOUT) -> Any:
    """The server's state (``system_get_state``: by default a :class:`ServerState` of its
    attributes, deep-copied where they can be)."""
    return request(target, "get_state", lambda server: server.system_get_state(), timeout=timeout)


def replace_state(
    target: Target, fn: Callable[[Any], Any], *, timeout: float | None = DEFAULT_TIMEOUT
) -> Any:
    """Install ``fn(state)`` in the server, between messages; returns the new state.

    If ``fn`` raises, the state is unchanged, the server goes on and the exception is
    raised here."""

    def replace(server: Any) -> Any:
        new = server.system_replace_state(fn)
        _note(server, "replace_state", getattr(fn, "__qualname__", ""))
        return new

    return request(target, "replace_state", replace, timeout=timeout)


def suspend(target: Target, *, timeout: float | None = DEFAULT_TIMEOUT) -> None:
    """Suspend the server: from now on it handles only system requests (and exits); calls
    and casts wait in its mailbox, in order, until :func:`resume` (callers' timeouts still
    apply). Suspending a suspended server does nothing."""

    def hold(server: Any) -> None:
        life = server.actor_ref._life
        if not life.suspended:
            life.suspended = True
            _note(server, "suspend")

    request(target, "suspend", hold, timeout=timeout)


def resume(target: Target, *, timeout: float | None = DEFAULT_TIMEOUT) -> None:
    """Resume a suspended server: it handles the mail it held, in order, then goes on."""

    def release(server: Any) -> None:
        life = server.actor_ref._life
        if life.suspended:
            life.suspended = False
            _note(server, "resume", f"{len(life.deferred)} message(s) held")

    request(target, "resume", release, timeout=timeout)


def _set_hooks(server: Any, stats: Any, tracer: Any) -> None:
    life = server.actor_ref._life
    life.hooks = (
        None
        if stats is None and tracer is None
        else Hooks(str(server.actor_ref), life.log, stats, tracer)
    )


def statistics(
    target: Target, enable: bool | None = None, *, timeout: float | None = DEFAULT_TIMEOUT
) -> ServerStatistics:
    """The server's handling statistics; ``enable`` True starts a fresh collection, False
    stops it (returning the last figures). Collection costs about two clock reads a
    message; off, nothing."""

    def switch(server: Any) -> ServerStatistics:
        hooks = server.actor_ref._life.hooks
        stats = hooks.stats if hooks is not None else None
        tracer = hooks.tracer if hooks is not None else None
        figures = stats.snapshot() if stats is not None else OFF
        if enable is True:
            stats = _Stats()
            figures = stats.snapshot()
        elif enable is False:
            stats = None
        if enable is not None:
            _set_hooks(server, stats, tracer)
            _note(server, "statistics", "on" if enable else "off")
        return figures

    figures: ServerStatistics = request(target, "statistics", switch, timeout=timeout)
    return figures


def set_tracer(
    target: Target,
    tracer: Callable[[TraceRecord], object] | None,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> None:
    """Call ``tracer`` (in the server's thread) for every call, cast, reply and crash of
    the server; None stops tracing. Traced messages are also kept in its :func:`log`."""
    if tracer is not None and not callable(tracer):
        raise ConfigurationError(f"a tracer must be callable or None, got {summary(tracer)}")

    def switch(server: Any) -> None:
        hooks = server.actor_ref._life.hooks
        _set_hooks(server, hooks.stats if hooks is not None else None, tracer)
        _note(server, "trace", "off" if tracer is None else "on")

    request(target, "trace", switch, timeout=timeout)


def log(target: Target, n: int = 10, *, timeout: float | None = DEFAULT_TIMEOUT) -> list[LogEntry]:
    """The server's last ``n`` system events, oldest first (suspend, resume,
    replace_state, statistics and trace switches, and traced messages)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigurationError(f"log: n must be an int >= 0, got {n!r}")
    entries = request(
        target, "log", lambda server: list(server.actor_ref._life.log), timeout=timeout
    )
    return entries[max(0, len(entries) - n) :] if n else []


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """``get_status``: what a server is and is doing. JSON-ready through :meth:`to_dict`.

    ``state`` is the server's ``format_status()`` (None if it was busy past the timeout:
    then ``busy`` is True, or if it is dead); ``handling`` the message it is handling
    (short text) and ``handling_for`` since how many seconds; ``restarts`` how many times
    its supervisor has restarted its child slot (None if not supervised)."""

    id: str
    name: str | None
    module: str
    alive: bool
    suspended: bool
    mailbox: int
    handled: int
    handling: str | None
    handling_for: float | None
    started: float
    uptime: float
    supervisor: str | None
    child_id: str | None
    restarts: int | None
    exit_reason: str | None
    state: dict[str, Any] | None = None
    busy: bool = False

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON-ready values."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def status_of(ref: ServerRef[Any]) -> ServerStatus:
    """The status fields read without a message (no ``state``): never blocks."""
    life = ref._life
    current, since = life.current, life.since
    now = time.time()
    cls = ref.actor_class
    slot = life.slot
    reason = life.reason
    inbox: Any = ref.actor_inbox
    return ServerStatus(
        id=ref.actor_urn,
        name=life.name,
        module=f"{cls.__module__}.{cls.__qualname__}",
        alive=ref.is_alive(),
        suspended=life.suspended,
        mailbox=inbox.qsize() + len(life.deferred),
        handled=life.handled,
        handling=None if current is None else summary(current),
        handling_for=None if current is None else max(0.0, time.perf_counter() - since),
        started=life.born,
        uptime=max(0.0, now - life.born),
        supervisor=slot[0] if slot else None,
        child_id=id_text(slot[1]) if slot else None,
        restarts=slot[2] if slot else None,
        exit_reason=None if reason is None else summary(reason, 200),
    )


def id_text(child_id: Any) -> str:
    """A child id as text: a str as it is, anything else as a short repr."""
    return child_id if isinstance(child_id, str) else summary(child_id, 80)


def get_status(target: Target, *, timeout: float | None = DEFAULT_TIMEOUT) -> ServerStatus:
    """The server's status (see :class:`ServerStatus`). The state summary is a system
    request; the rest is read at once, so a busy server still gets a status (``busy``
    True, no ``state``) after ``timeout`` seconds rather than an error."""
    ref = server_ref(target, timeout=timeout)
    state: dict[str, Any] | None = None
    busy = False
    if ref.is_alive():
        try:
            state = dict(request(ref, "get_status", _format, timeout=timeout))
        except CallTimeoutError:
            busy = True
        except NoProcessError:
            pass
    status = status_of(ref)
    return _with(status, state, busy)


def _format(server: Any) -> Any:
    return server.format_status()


def _with(status: ServerStatus, state: dict[str, Any] | None, busy: bool) -> ServerStatus:
    fields = status.to_dict()
    fields.update(state=state, busy=busy)
    return ServerStatus(**fields)


def supervisor_view(target: Target, *, timeout: float | None = DEFAULT_TIMEOUT) -> SupervisorView:
    """A supervisor's flags and children at one moment (a system request, so it jumps
    the Down messages a crash storm queues). ConfigurationError if it is no supervisor."""
    ref = server_ref(target, timeout=timeout)
    if not hasattr(ref.actor_class, "system_view"):
        raise ConfigurationError(f"{ref} is not a supervisor")
    view: SupervisorView = request(ref, "supervisor_view", _view, timeout=timeout)
    return view


def _view(server: Any) -> Any:
    return server.system_view()
