"""A per-call timeout for blocking calls: run the call in a thread, stop waiting for it.

Python cannot stop a thread. A call that runs past its timeout is *abandoned*: it keeps
running in its daemon thread until it returns on its own, and its result or exception is
then discarded (an exception is logged at debug level). Give the call its own timeout
(e.g. the HTTP client's) as well, so abandoned threads do not pile up.
"""

from __future__ import annotations

import contextvars
import logging
import math
import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import ConfigurationError, OperationTimeout

__all__ = ["call_with_timeout"]

T = TypeVar("T")

_log = logging.getLogger("otpy.resilience")


class _Outcome(Generic[T]):
    __slots__ = ("abandoned", "done", "error", "lock", "value")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.abandoned = False
        self.value: T | None = None
        self.error: BaseException | None = None


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

    ``timeout=None`` calls ``fn`` directly in the calling thread. Otherwise ``fn`` runs in
    a new daemon thread ``otpy-timeout-<name>`` in a copy of the caller's context
    (contextvars carry over) while the caller blocks in ``clock.wait``. Any exception of
    ``fn`` (a ``BaseException`` too) is re-raised in the caller with its traceback. On a
    timeout the thread is abandoned (see the module docstring). ``ConfigurationError``
    if ``timeout`` is not a finite number > 0. The keyword names above are taken: pass
    ``functools.partial`` for an ``fn`` that uses them.
    """
    if timeout is None:
        return fn(*args, **kwargs)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ConfigurationError(f"timeout must be a number of seconds or None, not {timeout!r}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ConfigurationError(
            f"timeout must be finite and > 0 seconds (or None), not {timeout!r}"
        )
    outcome: _Outcome[T] = _Outcome()
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome.value = context.run(fn, *args, **kwargs)
        except BaseException as exc:
            outcome.error = exc
        with outcome.lock:
            outcome.done.set()
            abandoned = outcome.abandoned
        if abandoned:
            _log.debug(
                "%r finished after its %g s timeout; its outcome is discarded",
                name,
                timeout,
                exc_info=outcome.error,
            )

    thread = threading.Thread(target=run, name=f"otpy-timeout-{name}", daemon=True)
    thread.start()
    finished = (clock or SYSTEM_CLOCK).wait(outcome.done, timeout)
    if not finished:
        with outcome.lock:
            outcome.abandoned = not outcome.done.is_set()
        if outcome.abandoned:
            raise OperationTimeout(name, timeout)
    error = outcome.error
    if error is not None:
        outcome.error = None  # no cycle through the traceback's frames
        try:
            raise error
        finally:
            del error
    return cast(T, outcome.value)
