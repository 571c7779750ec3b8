"""``otpy.sys``: query, suspend, trace and change any running GenServer, as Erlang's ``sys``.

::

    import otpy.sys

    otpy.sys.get_status("rt.steps")           # what it is doing, mailbox, uptime, restarts
    otpy.sys.suspend(rt.providers)            # writes wait in its mailbox; reads go on
    otpy.sys.resume(rt.providers)             # the held writes run, in order
    otpy.sys.statistics(ref, True)            # time every message from now on
    otpy.sys.trace(ref, True)                 # sys.call / sys.cast / sys.reply / sys.crash events

Every function takes a target — a :class:`~otpy.supervision.ServerRef`, a registered name,
or a handle (``rt.steps``, ``rt.providers``, ``rt.compat``, a ``JobHandle``, a
``PipelineRun``, a ``NamedHandle``, the ``Runtime`` for its root supervisor: anything with
``__otpy_ref__()``) — and a keyword ``timeout`` in seconds. Each runs as a *system
request* in the server's thread between two messages, ahead of its mailbox; a server busy
with one message past the timeout raises :class:`~otpy.errors.ServerBusyError` (the
request is withdrawn, it never runs later). NoProcessError if there is no live server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otpy.redaction import redact_value
from otpy.supervision import system
from otpy.supervision.system import (
    LogEntry,
    RefProvider,
    ServerState,
    ServerStatistics,
    ServerStatus,
    TraceRecord,
    server_ref,
)
from otpy.telemetry import emit_safely

__all__ = [
    "LogEntry",
    "RefProvider",
    "ServerState",
    "ServerStatistics",
    "ServerStatus",
    "TraceRecord",
    "get_state",
    "get_status",
    "log",
    "replace_state",
    "resume",
    "server_ref",
    "statistics",
    "suspend",
    "trace",
]

Target = Any
TIMEOUT = system.DEFAULT_TIMEOUT


def get_state(target: Target, *, timeout: float | None = TIMEOUT) -> Any:
    """The server's state: for a GenServer, a :class:`ServerState` of its attributes as it
    sees them (deep copies where they can be copied, so safe to read; locks, pools and
    connections are the live objects), or what its ``system_get_state()`` returns."""
    return system.get_state(target, timeout=timeout)


def replace_state(
    target: Target, fn: Callable[[Any], Any], *, timeout: float | None = TIMEOUT
) -> Any:
    """Pass the state to ``fn`` inside the server, between messages, and install what it
    returns (for the default state: the namespace, changed); returns the new state. If
    ``fn`` raises, nothing changes and the exception is raised here."""
    return system.replace_state(target, fn, timeout=timeout)


def suspend(target: Target, *, timeout: float | None = TIMEOUT) -> None:
    """Suspend the server: it handles only system requests (and exits); calls and casts
    wait, in order, until :func:`resume`. A caller's own timeout still applies to its call
    (the call is still handled after the resume; its reply then goes nowhere)."""
    system.suspend(target, timeout=timeout)


def resume(target: Target, *, timeout: float | None = TIMEOUT) -> None:
    """Resume a suspended server; the messages it held are handled first, in order."""
    system.resume(target, timeout=timeout)


def get_status(target: Target, *, timeout: float | None = TIMEOUT) -> ServerStatus:
    """Id, name, module, state summary (API keys masked), suspended or not, mailbox
    length, the message being handled and for how long, uptime, and the restarts of its
    child slot. Never raises ServerBusyError: a server busy past ``timeout`` gets a status
    with ``busy=True`` and no ``state``. ``status.to_dict()`` is JSON-ready."""
    status = system.get_status(target, timeout=timeout)
    if status.state is None:
        return status
    fields = status.to_dict()
    fields["state"] = redact_value(status.state)
    return ServerStatus(**fields)


def statistics(
    target: Target, enable: bool | None = None, *, timeout: float | None = TIMEOUT
) -> ServerStatistics:
    """``statistics(ref)``: messages handled, errors, mean / max / p99 handling time since
    collection began; ``statistics(ref, True)`` starts a fresh collection,
    ``statistics(ref, False)`` stops it (returning the last figures)."""
    return system.statistics(target, enable, timeout=timeout)


def trace(target: Target, enable: bool, *, timeout: float | None = TIMEOUT) -> None:
    """Switch tracing on or off: each call, cast, reply and crash of the server becomes a
    telemetry event (``sys.call``, ``sys.cast``, ``sys.reply`` with its ``duration``,
    ``sys.crash``; metadata ``server``, ``message``, ``error``), emitted in the server's
    thread on the default hub, and an entry of :func:`log`."""
    system.set_tracer(target, _emit if enable else None, timeout=timeout)


def log(target: Target, n: int = 10, *, timeout: float | None = TIMEOUT) -> list[LogEntry]:
    """The last ``n`` system events of the server, oldest first (suspend, resume,
    replace_state, statistics and trace switches; traced messages while trace is on)."""
    return system.log(target, n, timeout=timeout)


def _emit(record: TraceRecord) -> None:
    metadata: dict[str, Any] = {
        "server": record.server,
        "message": system.summary(record.message, 200),
    }
    if record.error is not None:
        metadata["error"] = system.summary(record.error, 200)
    measurements = None if record.duration is None else {"duration": record.duration}
    emit_safely(f"sys.{record.kind}", measurements, metadata)
