"""System messages: requests that jump a GenServer's mailbox, and the per-server hooks
(statistics, trace) its receive loop calls when they are switched on.

A request is a function run in the server's thread between two messages; the sender
waits for its result. ``supervision/system.py`` builds the public operations on it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Hooks", "LogEntry", "Request", "ServerStatistics", "TraceRecord"]

WINDOW = 1024
"""How many recent handling times statistics keeps for its p99."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One system event of a server: ``time`` (epoch seconds), ``event`` (``suspend``,
    ``resume``, ``replace_state``, ``statistics``, ``trace``, and with trace on ``call``,
    ``cast``, ``reply``, ``crash``) and ``detail`` (a short text)."""

    time: float
    event: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON-ready values."""
        return {"time": self.time, "event": self.event, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """What a trace hook hears: ``kind`` is ``call`` or ``cast`` (a message taken up),
    ``reply`` (a call answered, ``error`` set if it raised) or ``crash``; ``duration`` is
    the handling time in seconds (reply and crash)."""

    server: str
    kind: str
    message: Any
    duration: float | None = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class ServerStatistics:
    """``statistics(ref)``: counts since collection was switched on (all None/0 while off).

    ``mean``, ``max`` are exact; ``p99`` covers the last ``window`` messages. Times in
    seconds."""

    enabled: bool
    since: float | None
    messages: int
    errors: int
    mean: float | None
    max: float | None
    p99: float | None
    window: int

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON-ready values."""
        return {
            "enabled": self.enabled,
            "since": self.since,
            "messages": self.messages,
            "errors": self.errors,
            "mean": self.mean,
            "max": self.max,
            "p99": self.p99,
            "window": self.window,
        }


OFF = ServerStatistics(False, None, 0, 0, None, None, None, 0)


class _Stats:
    """Handling times of one server; only its own thread writes."""

    __slots__ = ("errors", "index", "max", "messages", "recent", "since", "total")

    def __init__(self) -> None:
        self.since = time.time()
        self.messages = 0
        self.errors = 0
        self.total = 0.0
        self.max = 0.0
        self.recent = [0.0] * WINDOW
        self.index = 0

    def record(self, seconds: float, failed: bool) -> None:
        self.messages += 1
        if failed:
            self.errors += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds
        self.recent[self.index % WINDOW] = seconds
        self.index += 1

    def snapshot(self) -> ServerStatistics:
        n = self.messages
        if not n:
            return ServerStatistics(True, self.since, 0, 0, None, None, None, 0)
        window = sorted(self.recent[: min(n, WINDOW)])
        p99 = window[min(len(window) - 1, int(0.99 * len(window)))]
        return ServerStatistics(
            True, self.since, n, self.errors, self.total / n, self.max, p99, len(window)
        )


class Hooks:
    """What the receive loop calls around each message while statistics or trace is on
    (``_Lifecycle.hooks``; None when both are off, so the loop pays one comparison)."""

    __slots__ = ("log", "name", "stats", "tracer")

    def __init__(
        self,
        name: str,
        log: Any,
        stats: _Stats | None,
        tracer: Callable[[TraceRecord], object] | None,
    ) -> None:
        self.name = name
        self.log = log
        self.stats = stats
        self.tracer = tracer

    def received(self, message: Any, is_call: bool) -> None:
        if self.tracer is not None:
            self._trace("call" if is_call else "cast", message, None, None)

    def handled(
        self, message: Any, is_call: bool, started: float, error: BaseException | None
    ) -> None:
        """After a message; ``error`` is what the handler raised (crashing it or not)."""
        seconds = time.perf_counter() - started
        if self.stats is not None:
            self.stats.record(seconds, error is not None)
        if self.tracer is not None and is_call:
            self._trace("reply", message, seconds, error)

    def crashed(self, message: Any, started: float, error: BaseException) -> None:
        if self.tracer is not None:
            self._trace("crash", message, time.perf_counter() - started, error)

    def _trace(
        self, kind: str, message: Any, seconds: float | None, error: BaseException | None
    ) -> None:
        detail = summary(message) if error is None else f"{summary(message)} -> {error!r}"
        self.log.append(LogEntry(time.time(), kind, detail))
        assert self.tracer is not None
        self.tracer(TraceRecord(self.name, kind, message, seconds, error))


_request_ids = itertools.count(1)


class Request:
    """One system request: ``fn(server)`` run in the server's thread between messages.

    The sender waits on :meth:`wait`; on a timeout it withdraws the request, so that a
    request the caller was told had failed never runs later (one that has begun runs to
    its end and the caller waits for it)."""

    __slots__ = ("done", "error", "fn", "id", "lock", "result", "state", "what")

    def __init__(self, what: str, fn: Callable[[Any], Any]) -> None:
        self.id = next(_request_ids)
        self.what = what
        self.fn = fn
        self.lock = threading.Lock()
        self.state = "waiting"  # waiting -> running -> done, or waiting -> withdrawn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self, server: Any) -> None:
        """In the server's thread: run ``fn`` unless withdrawn; its exception goes back."""
        with self.lock:
            if self.state != "waiting":
                return
            self.state = "running"
        try:
            self.result = self.fn(server)
        except Exception as exc:
            self.error = exc
        self.state = "done"
        self.done.set()

    def refuse(self, error: BaseException) -> None:
        """The server is gone: the request fails with ``error`` (unless it already ran)."""
        with self.lock:
            if self.state != "waiting":
                return
            self.state = "done"
        self.error = error
        self.done.set()

    def withdraw(self) -> bool:
        """Take the request back if the server has not begun it; whether it was."""
        with self.lock:
            if self.state == "waiting":
                self.state = "withdrawn"
                return True
            return False


def summary(value: Any, limit: int = 120) -> str:
    """A short, one-line ``repr`` of ``value`` (for logs, statuses and trace events)."""
    try:
        text = repr(value)
    except Exception:
        text = f"<unprintable {type(value).__qualname__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
