"""The bounded in-memory event store: recent events, queries, and trace trees."""

from __future__ import annotations

import fnmatch
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from otpy.errors import ConfigurationError
from otpy.telemetry._event import Event

__all__ = ["EventStore", "StoreStats", "TraceNode"]


@dataclass(frozen=True, slots=True)
class StoreStats:
    """A snapshot of an :class:`EventStore`: ``size`` events held of ``max_events``,
    ``added`` in its lifetime, ``dropped`` because it was full (``clear`` keeps both)."""

    size: int
    max_events: int
    added: int
    dropped: int


@dataclass(slots=True)
class TraceNode:
    """One event of a trace tree and the events under it, in time order.

    A span's ``.start`` event is a node; the events emitted inside the span, its nested
    spans and its ``.stop`` / ``.exception`` event are its children.
    """

    event: Event
    children: list[TraceNode] = field(default_factory=list)

    def render(self) -> str:
        """This subtree as indented text, one event a line, with durations and errors::

        job.start
          evaluation.start
            evaluation.stop  duration=1.5s
          job.stop  duration=2s
        """
        lines: list[str] = []
        stack: list[tuple[TraceNode, int]] = [(self, 0)]
        while stack:
            node, depth = stack.pop()
            lines.append("  " * depth + _describe(node.event))
            stack.extend((child, depth + 1) for child in reversed(node.children))
        return "\n".join(lines)


def _describe(event: Event) -> str:
    text = event.name
    duration = event.measurements.get("duration")
    if duration is not None:
        text += f"  duration={duration:.6g}s"
    error = event.metadata.get("error_type")
    if error is not None:
        text += f"  error={error}"
    return text


def _name_matcher(name: str) -> Callable[[str], bool]:
    if any(c in name for c in "*?["):
        match = re.compile(fnmatch.translate(name)).match
        return lambda candidate: match(candidate) is not None
    return name.__eq__


class EventStore:
    """The most recent ``max_events`` events, oldest dropped first (and counted).

    Thread-safe: ``add`` holds a lock for an append; queries copy the events under the
    lock and filter outside it (so a ``where`` callback may use the store).
    """

    def __init__(self, max_events: int = 10_000) -> None:
        if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 0:
            raise ConfigurationError(f"max_events must be an int >= 0, got {max_events!r}")
        self._max = max_events
        self._events: deque[Event] = deque(maxlen=max_events)
        self._lock = threading.Lock()
        self._added = 0
        self._dropped = 0

    @property
    def max_events(self) -> int:
        """How many events the store holds at most (0 keeps none)."""
        return self._max

    def add(self, event: Event) -> None:
        """Keep ``event``; if the store is full, the oldest event is dropped."""
        with self._lock:
            self._added += 1
            if len(self._events) == self._max:
                self._dropped += 1
            self._events.append(event)

    def query(
        self,
        *,
        correlation_id: str | None = None,
        name: str | None = None,
        where: Callable[[Event], bool] | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """The events that match every given filter, oldest first.

        ``name`` is an exact name, or a glob pattern if it contains ``*``, ``?`` or ``[``
        (``"breaker.*"``). ``where`` is any predicate (it runs in the calling thread, no
        lock held; if it raises, so does ``query``). ``limit`` keeps the *most recent*
        ``limit`` matches (still returned oldest first).
        """
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ConfigurationError(f"limit must be an int >= 0 or None, got {limit!r}")
        with self._lock:
            events = list(self._events)
        if correlation_id is not None:
            events = [e for e in events if e.correlation_id == correlation_id]
        if name is not None:
            matches = _name_matcher(name)
            events = [e for e in events if matches(e.name)]
        if where is not None:
            events = [e for e in events if where(e)]
        if limit is not None:
            events = events[len(events) - limit :] if limit else []
        return events

    def trace_tree(self, correlation_id: str) -> list[TraceNode]:
        """The trace ``correlation_id`` as trees: the roots in time order, each with its
        children in time order (ties keep emission order).

        A root is an event whose ``parent_id`` is ``None`` or names no event of this trace
        still in the store (its parent was dropped, or belongs to another trace).
        """
        events = sorted(self.query(correlation_id=correlation_id), key=lambda e: e.timestamp)
        nodes = {e.event_id: TraceNode(e) for e in events}
        roots: list[TraceNode] = []
        for event in events:
            parent = nodes.get(event.parent_id) if event.parent_id is not None else None
            if parent is None or event.parent_id == event.event_id:
                roots.append(nodes[event.event_id])
            else:
                parent.children.append(nodes[event.event_id])
        return roots

    def statistics(self) -> StoreStats:
        """A consistent snapshot of the counts."""
        with self._lock:
            return StoreStats(len(self._events), self._max, self._added, self._dropped)

    def clear(self) -> None:
        """Drop every event (the lifetime ``added`` / ``dropped`` counts stay)."""
        with self._lock:
            self._events.clear()

    def __len__(self) -> int:
        return len(self._events)

    def __repr__(self) -> str:
        return f"EventStore({len(self)}/{self._max} events)"
