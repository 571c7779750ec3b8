"""Exit reasons, as in Erlang: ``"normal"``, ``"shutdown"``, ``"killed"``, ``"noproc"``
or the exception that crashed the actor."""

from __future__ import annotations

from typing import Final, TypeAlias

__all__ = ["KILLED", "NOPROC", "NORMAL", "SHUTDOWN", "ExitReason", "is_abnormal"]

NORMAL: Final = "normal"
"""The actor stopped by itself or was asked to stop (``ref.stop()``)."""
SHUTDOWN: Final = "shutdown"
"""Its supervisor stopped it; also how a supervisor exits after too many restarts."""
KILLED: Final = "killed"
"""Killed without cleanup (``brutal_kill``, or a shutdown that timed out)."""
NOPROC: Final = "noproc"
"""Given to a monitor set on an actor that had already gone, reason unknown."""

ExitReason: TypeAlias = str | BaseException
"""One of the constants above, or the exception that crashed the actor."""


def is_abnormal(reason: ExitReason) -> bool:
    """True unless ``reason`` is normal or shutdown (what restarts a transient child)."""
    return reason != NORMAL and reason != SHUTDOWN
