"""Waiting for actors without sleeping: a condition, every actor idle, one actor's exit,
and stopping every actor between tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pykka import ActorRegistry

from otpy.supervision import ServerRef, handled_count, is_supervisor

__all__ = ["stop_all", "wait_exit", "wait_idle", "wait_until"]

_POLL = 0.001  # seconds between checks of a condition nobody can signal


def wait_until(
    predicate: Callable[[], Any], timeout: float = 5.0, message: str = "condition"
) -> Any:
    """Return ``predicate()``'s first truthy value; TimeoutError after ``timeout`` seconds.

    For states nobody signals (e.g. a count reached); prefer an event where there is one.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} not reached within {timeout} s")
        time.sleep(_POLL)


def _live_servers() -> list[ServerRef[Any]]:
    return [r for r in ActorRegistry.get_all() if isinstance(r, ServerRef) and r.is_alive()]


def wait_idle(timeout: float = 5.0) -> None:
    """Wait until every GenServer has handled all it was sent, including what that sent on.

    Pings each live GenServer until two rounds in a row see no new message handled and no
    actor started or stopped. Timers of a :class:`FakeClock` do not fire by themselves, so
    they never keep this waiting.
    """
    deadline = time.monotonic() + timeout
    previous: dict[str, int] | None = None
    while True:
        current: dict[str, int] = {}
        for ref in _live_servers():
            remaining = max(0.001, deadline - time.monotonic())
            try:
                current[ref.actor_urn] = handled_count(ref, remaining)
            except Exception:  # it died meanwhile: the set changed, go round again
                current[ref.actor_urn] = -1
        if current == previous:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"actors still busy after {timeout} s")
        previous = current


def wait_exit(ref: ServerRef[Any], timeout: float = 5.0) -> Any:
    """Wait for ``ref`` to exit and return its exit reason; TimeoutError otherwise."""
    if not ref.wait_exit(timeout):
        raise TimeoutError(f"{ref} still alive after {timeout} s")
    return ref.exit_reason


def stop_all(timeout: float = 5.0) -> None:
    """Stop every actor: supervisors first, oldest first (so none restarts a child), then
    the rest; anything that does not stop within ``timeout`` is killed."""
    for ref in ActorRegistry.get_all():
        if is_supervisor(ref):
            ref.shutdown(timeout)
    for ref in ActorRegistry.get_all():
        if isinstance(ref, ServerRef):
            ref.shutdown(timeout)
        else:
            ref.stop(block=True, timeout=timeout)
