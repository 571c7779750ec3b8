"""The telemetry event record, and the ids events and spans are named by."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["Event", "make_event", "new_event_id"]


class _IdSource:
    """Unique ids: a random per-process prefix (48 bits) plus a counter, in hex.

    About ten times cheaper than ``uuid4().hex`` (0.15 µs against 1.6 µs). ``next()`` on an
    ``itertools.count`` is atomic under the GIL, so threads never share an id; a forked child
    draws a fresh prefix, so it never repeats its parent's ids either.
    """

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = os.urandom(6).hex()
        self.counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter):x}"


new_event_id = _IdSource()
"""``new_event_id() -> str``: a new id, unique across threads and processes."""

if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=new_event_id.reseed)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, as the hub emitted it.

    ``measurements`` holds numbers (durations in seconds, counts, tokens), ``metadata``
    everything else, already redacted. ``timestamp`` is epoch seconds from the hub's clock.
    ``correlation_id`` ties together every event of one trace (a job, a request);
    ``parent_id`` is the ``event_id`` of the span the event was emitted in (a span's id is
    the ``event_id`` of its ``.start`` event). Both mappings are the hub's own copies:
    treat them as read-only (they are shared with the store and every subscriber).
    """

    name: str
    measurements: Mapping[str, float]
    metadata: Mapping[str, Any]
    timestamp: float
    correlation_id: str | None
    parent_id: str | None
    event_id: str

    def to_dict(self) -> dict[str, Any]:
        """The event as plain dicts and scalars (for JSON, logs, export)."""
        return {
            "name": self.name,
            "measurements": dict(self.measurements),
            "metadata": dict(self.metadata),
            "timestamp": self.timestamp,
            "correlation_id": self.correlation_id,
            "parent_id": self.parent_id,
            "event_id": self.event_id,
        }


def _fast_constructor() -> Callable[[str, Any, Any, float, str | None, str | None, str], Event]:
    """``Event(...)`` at half the cost: a frozen dataclass's ``__init__`` goes through
    ``object.__setattr__`` per field; this fills the slots directly (0.4 µs against 0.8 µs
    an event). Same fields, same order; a test pins it to ``Event``."""
    new = object.__new__
    setters = [getattr(Event, f.name).__set__ for f in fields(Event)]
    if len(setters) != 7:  # pragma: no cover - guards an edit of Event
        raise TypeError("make_event is out of step with Event's fields")
    s_name, s_meas, s_meta, s_time, s_corr, s_parent, s_id = setters

    def make_event(
        name: str,
        measurements: Any,
        metadata: Any,
        timestamp: float,
        correlation_id: str | None,
        parent_id: str | None,
        event_id: str,
    ) -> Event:
        event: Event = new(Event)
        s_name(event, name)
        s_meas(event, measurements)
        s_meta(event, metadata)
        s_time(event, timestamp)
        s_corr(event, correlation_id)
        s_parent(event, parent_id)
        s_id(event, event_id)
        return event

    return make_event


make_event = _fast_constructor()
