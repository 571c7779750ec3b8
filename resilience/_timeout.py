"""A per-call timeout for blocking calls: run the call on a pooled runner thread, stop
waiting for it at the deadline.

Python cannot stop a thread. A call that runs past its timeout is *abandoned*: it keeps
running on its runner until it returns on its own, and its result or exception is then
discarded (an exception is logged at debug level); that runner is back in the pool once
it returns. Give the call its own timeout (e.g. the HTTP client's) as well, so abandoned
calls do not pile up.

The runners are one pool per process, started on demand and reused: a timed call costs
two thread hand-offs, not a thread start. A runner idle for ``IDLE_SECONDS`` (real time)
leaves the pool; a forked child starts with an empty pool.
"""

from __future__ import annotations

import _thread
import contextvars
import logging
import math
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from otpy.clock import SYSTEM_CLOCK, Clock, SystemClock
from otpy.errors import ConfigurationError, OperationTimeout

__all__ = ["IDLE_SECONDS", "call_with_timeout"]

T = TypeVar("T")
IDLE_SECONDS = 60.0  # a runner idle this long (real time) leaves the pool
_IDLE_NAME = "otpy-timeout-idle"

_log = logging.getLogger("otpy.resilience")


class _Call:
    """One timed call: what to run, and how it ended."""

    __slots__ = ("abandoned", "args", "context", "done", "error", "event", "finished",
                 "fn", "kwargs", "name", "timeout", "value")  # fmt: skip

    def __init__(self, fn: Callable[..., Any], args: Any, kwargs: Any, name: str) -> None:
        self.fn, self.args, self.kwargs, self.name = fn, args, kwargs, name
        self.context = contextvars.copy_context()
        self.done = _thread.allocate_lock()  # released when it has finished
        self.done.acquire()
        self.event: threading.Event | None = None  # set too, for a clock that waits on one
        self.finished = self.abandoned = False  # both under the pool's lock
        self.timeout = 0.0
        self.value: Any = None
        self.error: BaseException | None = None


class _Runner:
    """A pooled daemon thread that runs one call at a time."""

    __slots__ = ("call", "go", "pool")

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.call: _Call | None = None
        self.go = _thread.allocate_lock()  # released to hand over a call
        self.go.acquire()
        threading.Thread(target=self._loop, name=_IDLE_NAME, daemon=True).start()

    def _loop(self) -> None:
        me = threading.current_thread()
        while True:
            if not self.go.acquire(timeout=IDLE_SECONDS) and self.pool.retire(self):
                return
            call, self.call = self.call, None
            if call is None:  # woken for a call it was retired before: impossible, but safe
                continue
            me.name = f"otpy-timeout-{call.name}"
            try:
                call.value = call.context.run(call.fn, *call.args, **call.kwargs)
            except BaseException as exc:
                call.error = exc
            me.name = _IDLE_NAME
            abandoned = self.pool.finished(self, call)
            if abandoned:
                _log.debug(
                    "%r finished after its %g s timeout; its outcome is discarded",
                    call.name,
                    call.timeout,
                    exc_info=call.error,
                )
                call.error = None
            del call


class _Pool:
    """The process's runners: idle ones wait for a call; busy ones run one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[_Runner] = []

    def start(self, call: _Call) -> None:
        """Hand ``call`` to an idle runner, or to a new one."""
        with self.lock:
            runner = self.idle.pop() if self.idle else None
        if runner is None:
            runner = _Runner(self)
        runner.call = call
        runner.go.release()

    def finished(self, runner: _Runner, call: _Call) -> bool:
        """The runner is done with ``call``: back to the pool, then the caller is told.
        Returns whether the caller had already given up on it."""
        with self.lock:
            call.finished = True
            self.idle.append(runner)
        call.done.release()
        if call.event is not None:
            call.event.set()
        return call.abandoned

    def abandon(self, call: _Call) -> bool:
        """The caller's deadline passed: give up on ``call`` unless it has just finished."""
        with self.lock:
            call.abandoned = not call.finished
            return call.abandoned

    def retire(self, runner: _Runner) -> bool:
        """An idle runner asks to leave: yes, unless a call was just handed to it."""
        with self.lock:
            if runner in self.idle:
                self.idle.remove(runner)
                return True
            return False


_POOL = _Pool()


def _forked() -> None:
    global _POOL
    _POOL = _Pool()  # the parent's runner threads do not exist in a child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def call_with_timeout(
    fn: Callable[..., T],
    *args: object,
    timeout: float | None,
    clock: Clock | None = None,
    name: str = "call",
    **kwargs: object,
) -> T:
    """Return ``fn(*args, **kwargs)``, or raise ``OperationTimeout(name, timeout)`` if it
    has not finished within ``timeout`` seconds of ``clock``.

    ``timeout=None`` calls ``fn`` directly in the calling thread. Otherwise ``fn`` runs on
    a pooled daemon thread (named ``otpy-timeout-<name>`` while it runs it) in a copy of
    the caller's context (contextvars carry over) while the caller blocks in
    ``clock.wait``. Any exception of ``fn`` (a ``BaseException`` too) is re-raised in the
    caller with its traceback. On a timeout the call is abandoned (see the module
    docstring). ``ConfigurationError`` if ``timeout`` is not a finite number > 0. The
    keyword names above are taken: pass ``functools.partial`` for an ``fn`` that uses
    them.
    """
    if timeout is None:
        return fn(*args, **kwargs)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ConfigurationError(f"timeout must be a number of seconds or None, not {timeout!r}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ConfigurationError(
            f"timeout must be finite and > 0 seconds (or None), not {timeout!r}"
        )
    clock = clock or SYSTEM_CLOCK
    call = _Call(fn, args, kwargs, name)
    call.timeout = timeout
    system = type(clock) is SystemClock  # the real clock: wait on the lock itself
    if not system:
        call.event = threading.Event()
    pool = _POOL
    pool.start(call)
    if system:
        finished = call.done.acquire(timeout=timeout)
    else:
        finished = clock.wait(cast(threading.Event, call.event), timeout)
    if not finished and pool.abandon(call):
        raise OperationTimeout(name, timeout)
    error = call.error
    if error is not None:
        call.error = None  # no cycle through the traceback's frames
        try:
            raise error
        finally:
            del error
    return cast(T, call.value)
