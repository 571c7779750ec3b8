"""Stopping children the OTP way: shutdown with a timeout, then kill; or brutal_kill."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from otpy.clock import Clock

from ._exit import SHUTDOWN
from ._ref import ServerRef
from ._spec import Shutdown

__all__ = ["shutdown_all", "shutdown_one"]


def shutdown_one(ref: ServerRef[Any], shutdown: Shutdown, clock: Clock) -> None:
    """Stop ``ref`` (its monitor already cancelled) and wait for it, as ``shutdown`` says.

    A number is how long it may take over its mailbox and ``on_stop`` before it is
    killed; ``"brutal_kill"`` kills at once; None waits for as long as it takes.
    """
    shutdown_all([(ref, shutdown)], clock)


def shutdown_all(children: Sequence[tuple[ServerRef[Any], Shutdown]], clock: Clock) -> None:
    """Stop several children at once: all are asked together, each gets its own timeout."""
    waiting: list[tuple[ServerRef[Any], float | None]] = []
    start = clock.monotonic()
    for ref, shutdown in children:
        if shutdown == "brutal_kill":
            ref.kill()
        else:
            ref.exit(SHUTDOWN)
            waiting.append((ref, None if shutdown is None else start + float(shutdown)))
    for ref, deadline in waiting:
        exited = ref._life.exited
        if deadline is None:
            clock.wait(exited, None)
        elif not clock.wait(exited, max(0.0, deadline - clock.monotonic())):
            ref.kill()
