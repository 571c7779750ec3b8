"""A GenServer's state as ``otpy.sys`` shows and replaces it: its own attributes.

A GenServer keeps its state in instance attributes. ``get_state`` hands out a
:class:`ServerState` namespace of them, each a deep copy where it can be copied (so it is
safe to read from another thread) and the live object where it cannot (locks, pools,
refs, connections); ``replace_state`` runs a function on such a namespace in the server's
thread and installs what it returns.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Callable
from typing import Any

from otpy.errors import ConfigurationError

from ._sysmsg import summary

__all__ = ["ServerState", "format_state", "replace_attributes", "state_of"]

FRAMEWORK = frozenset(
    {
        "actor_urn",
        "actor_inbox",
        "actor_stopped",
        "_actor_ref",
        "_otpy_expected",
        "_otpy_stop_reason",
    }
)
"""Attributes Pykka and GenServer keep on every server: not the server's state."""


class ServerState(types.SimpleNamespace):
    """A GenServer's attributes by name (``state.count``); see the module docstring."""


def _own(server: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(server).items() if k not in FRAMEWORK}


def _copy(value: Any) -> Any:
    try:
        return copy.deepcopy(value)
    except Exception:  # a lock, a thread pool, a connection: hand out the live object
        return value


def state_of(server: Any) -> ServerState:
    """The server's attributes, each deep-copied where it can be."""
    return ServerState(**{k: _copy(v) for k, v in _own(server).items()})


def replace_attributes(server: Any, fn: Callable[[Any], Any]) -> ServerState:
    """Run ``fn`` on :func:`state_of` and install the namespace it returns.

    An attribute is installed when ``fn`` rebound it or changed its copy in place (the
    copy no longer equals the live value); untouched ones keep their live objects, so
    objects shared with other threads stay shared. Nothing is installed if ``fn`` raises
    or returns something else than a namespace holding every attribute
    (ConfigurationError: a server's attribute cannot be dropped this way).
    """
    handed = state_of(server)
    given = dict(vars(handed))
    new = fn(handed)
    if not isinstance(new, types.SimpleNamespace):
        raise ConfigurationError(
            f"replace_state: the function must return the state namespace it was given "
            f"(changed), got {summary(new)}"
        )
    values = vars(new)
    missing = sorted(set(given) - set(values))
    if missing:
        raise ConfigurationError(
            f"replace_state: the new state lacks attribute(s) {', '.join(missing)}; "
            "a server's attributes can be changed, not removed"
        )
    live = _own(server)
    changes = {}
    for name, value in values.items():
        if name in given and value is given[name]:
            current = live[name]
            if value is current or _same(value, current):
                continue
        changes[name] = value
    vars(server).update(changes)
    return state_of(server)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def format_state(server: Any, limit: int = 20) -> dict[str, str]:
    """A short text per attribute (at most ``limit`` attributes), for statuses."""
    own = _own(server)
    shown = {name: summary(value, 80) for name, value in list(own.items())[:limit]}
    if len(own) > limit:
        shown["..."] = f"{len(own) - limit} more attribute(s)"
    return shown
