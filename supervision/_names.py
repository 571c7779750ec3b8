"""Named actors: a process-wide name → ref table, like Erlang's ``register/2``."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from otpy.errors import NameTakenError

if TYPE_CHECKING:
    from pykka import ActorRef

__all__ = ["register", "registered", "unregister", "wait_for_name", "whereis"]

_names: dict[str, ActorRef[Any]] = {}
_changed = threading.Condition()


def register(name: str, ref: ActorRef[Any]) -> None:
    """Register ``ref`` under ``name``; raises NameTakenError if a live actor holds it.

    A name held by a dead actor is taken over. GenServers register their own name at
    start (``start_named``) and drop it when they exit.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"an actor name must be a non-empty str, got {name!r}")
    with _changed:
        current = _names.get(name)
        if current is not None and current is not ref and current.is_alive():
            raise NameTakenError(name, current)
        _names[name] = ref
        _changed.notify_all()


def unregister(name: str, ref: ActorRef[Any] | None = None) -> None:
    """Drop ``name``; with ``ref``, only if the name still points at that ref."""
    with _changed:
        if ref is None or _names.get(name) is ref:
            _names.pop(name, None)


def whereis(name: str) -> ActorRef[Any] | None:
    """The live actor registered under ``name``, or None. Never blocks on a mailbox."""
    ref = _names.get(name)
    if ref is not None and ref.is_alive():
        return ref
    return None


def wait_for_name(name: str, timeout: float | None) -> ActorRef[Any] | None:
    """Block until a live actor holds ``name`` (e.g. while it is being restarted).

    Returns it, or None after ``timeout`` seconds (real time: an upper bound, not a
    schedule).
    """
    with _changed:
        if _changed.wait_for(lambda: whereis(name) is not None, timeout):
            return whereis(name)
    return None


def registered() -> dict[str, ActorRef[Any]]:
    """A snapshot of every live registered name."""
    with _changed:
        return {name: ref for name, ref in _names.items() if ref.is_alive()}
