"""The telemetry hub: emit events, deliver them to subscribers, keep them, time spans."""

from __future__ import annotations

import fnmatch
import functools
import inspect
import itertools
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import ConfigurationError
from otpy.redaction import Redactor
from otpy.telemetry._context import CURRENT
from otpy.telemetry._event import Event, make_event, new_event_id
from otpy.telemetry._metrics import Metrics
from otpy.telemetry._span import Span
from otpy.telemetry._store import EventStore

__all__ = ["Subscriber", "Telemetry", "TelemetryStats"]

_log = logging.getLogger("otpy.telemetry")

_P = ParamSpec("_P")
_R = TypeVar("_R")

Subscriber = Callable[[Event], object]
_LOG_EVERY = 100  # a failing subscriber is logged on its 1st failure, then every 100th
_MATCH_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class TelemetryStats:
    """A snapshot of a :class:`Telemetry` hub."""

    events_emitted: int
    subscribers: int
    subscriber_failures: int
    store_size: int
    store_max_events: int
    store_dropped: int


class _Subscription:
    __slots__ = ("_cache", "_regex", "all", "callback", "failures", "id", "pattern")

    def __init__(self, sub_id: str, callback: Subscriber, pattern: str) -> None:
        self.id = sub_id
        self.callback = callback
        self.pattern = pattern
        self.all = pattern == "*"
        self.failures = 0
        self._regex = re.compile(fnmatch.translate(pattern))
        self._cache: dict[str, bool] = {}

    def matches(self, name: str) -> bool:
        hit = self._cache.get(name)
        if hit is None:
            hit = self._regex.match(name) is not None
            if len(self._cache) >= _MATCH_CACHE_SIZE:
                self._cache.clear()
            self._cache[name] = hit
        return hit


def _measurements(event: str, measurements: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in measurements.items():
        kind = type(value)
        if (
            kind is not float
            and kind is not int
            and (isinstance(value, bool) or not isinstance(value, int | float))
        ):
            raise ConfigurationError(
                f"event {event!r}: measurement {key!r} must be a number (int or float), got "
                f"{value!r}; put other values in metadata"
            )
        out[key] = value
    return out


class Telemetry:
    """The hub: ``emit`` events, ``subscribe`` to them, time work with ``span``.

    Every event is redacted (``redact=True``: API keys in metadata and exception messages
    are masked, with the provider key environment variables read when the hub is made),
    kept in ``store`` (the most recent ``store_size``) and handed to every subscriber whose
    pattern matches, synchronously in the emitting thread. ``metrics`` holds counters,
    gauges and histograms (span durations among them). Thread-safe.
    """

    def __init__(
        self, clock: Clock = SYSTEM_CLOCK, *, store_size: int = 10_000, redact: bool = True
    ) -> None:
        self.clock = clock
        self.store = EventStore(store_size)
        self.metrics = Metrics()
        self._redactor = Redactor() if redact else None
        self._subscribers: tuple[_Subscription, ...] = ()
        self._sub_lock = threading.Lock()
        self._sub_ids = itertools.count(1)
        self._failures = 0

    # -- events -------------------------------------------------------------------------

    def emit(
        self,
        name: str,
        measurements: Mapping[str, float] | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        parent_id: str | None = None,
    ) -> Event:
        """Emit an event and return it (as stored: redacted, with its ids).

        ``correlation_id`` and ``parent_id`` default to the current context's trace and
        span (the parent only when the event stays in the current trace). A measurement
        that is not an int or float (bools included) raises ConfigurationError. Subscribers
        run in this thread before ``emit`` returns; one that raises is logged and skipped.
        """
        ctx = CURRENT.get()
        if correlation_id is None:
            correlation_id = ctx.correlation_id
            if parent_id is None:
                parent_id = ctx.span_id
        elif parent_id is None and correlation_id == ctx.correlation_id:
            parent_id = ctx.span_id
        return self._emit(name, measurements, metadata, correlation_id, parent_id, new_event_id())

    def _emit(
        self,
        name: str,
        measurements: Mapping[str, float] | None,
        metadata: Mapping[str, Any] | None,
        correlation_id: str | None,
        parent_id: str | None,
        event_id: str,
    ) -> Event:
        if type(name) is not str or not name:
            raise ConfigurationError(f"an event name must be a non-empty string, got {name!r}")
        event = make_event(
            name,
            _measurements(name, measurements) if measurements else {},
            (
                (self._redactor.mapping(metadata) if self._redactor else dict(metadata))
                if metadata
                else {}
            ),
            self.clock.time(),
            correlation_id,
            parent_id,
            event_id,
        )
        return self.ingest(event)

    def ingest(self, event: Event) -> Event:
        """Keep ``event`` and hand it to the subscribers as it is: an event emitted in
        another process (a Ray worker's evaluation), with its ids and timestamp, its data
        redacted where it was emitted. Subscribers run in this thread; returns ``event``."""
        name = event.name
        self.store.add(event)
        for sub in self._subscribers:
            if sub.all or sub.matches(name):
                try:
                    sub.callback(event)
                except Exception:
                    self._subscriber_failed(sub, event)
        return event

    def _subscriber_failed(self, sub: _Subscription, event: Event) -> None:
        with self._sub_lock:
            sub.failures += 1
            self._failures += 1
            count = sub.failures
        if count == 1 or count % _LOG_EVERY == 0:
            _log.error(
                "telemetry subscriber %s (%s, pattern %r) failed on event %r; "
                "failure %d (the first and every %dth are logged)",
                sub.id,
                getattr(sub.callback, "__qualname__", repr(sub.callback)),
                sub.pattern,
                event.name,
                count,
                _LOG_EVERY,
                exc_info=True,
            )

    # -- subscribers --------------------------------------------------------------------

    def subscribe(self, callback: Subscriber, pattern: str = "*") -> str:
        """Call ``callback(event)`` for every event whose name matches ``pattern`` (fnmatch,
        case-sensitive: ``"breaker.*"``); returns the subscription id for ``unsubscribe``.

        The callback runs in the emitting thread, before ``emit`` returns: keep it short
        (send a message to an actor for slow work). If it raises an ``Exception``, the
        failure is counted and logged (logger ``otpy.telemetry``, with the traceback: the
        first failure, then every 100th) and the emitter and other subscribers carry on.
        Subscribing and unsubscribing are safe from inside a callback; an emit already
        under way delivers to the subscribers it started with.
        """
        if not callable(callback):
            raise ConfigurationError(f"a subscriber must be callable, got {callback!r}")
        if not isinstance(pattern, str) or not pattern:
            raise ConfigurationError(f"pattern must be a non-empty string, got {pattern!r}")
        with self._sub_lock:
            sub = _Subscription(f"sub-{next(self._sub_ids)}", callback, pattern)
            self._subscribers = (*self._subscribers, sub)
        return sub.id

    def unsubscribe(self, sub_id: str) -> bool:
        """Stop a subscription; ``False`` if there is none with that id."""
        with self._sub_lock:
            kept = tuple(s for s in self._subscribers if s.id != sub_id)
            found = len(kept) != len(self._subscribers)
            self._subscribers = kept
        return found

    # -- spans --------------------------------------------------------------------------

    def span(
        self,
        name: str,
        metadata: Mapping[str, Any] | None = None,
        measurements: Mapping[str, float] | None = None,
    ) -> Span:
        """A :class:`Span` to run work in: ``with hub.span("job", {"job_id": j}) as s:``."""
        return Span(self, name, metadata, measurements)

    def spanned(
        self, name: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorator: every call of the function runs in a span (named ``name``, or the
        function's qualified name). Works on ``async def`` functions too."""

        def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
            span_name = name or func.__qualname__
            if inspect.iscoroutinefunction(func):

                @functools.wraps(func)
                async def async_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
                    with self.span(span_name, metadata):
                        return await func(*args, **kwargs)

                return cast(Callable[_P, _R], async_wrapper)

            @functools.wraps(func)
            def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
                with self.span(span_name, metadata):
                    return func(*args, **kwargs)

            return wrapper

        return decorate

    # -- introspection ------------------------------------------------------------------

    def statistics(self) -> TelemetryStats:
        """Events emitted, subscribers and their failures, the store's size and drops."""
        store = self.store.statistics()
        return TelemetryStats(
            events_emitted=store.added,
            subscribers=len(self._subscribers),
            subscriber_failures=self._failures,
            store_size=store.size,
            store_max_events=store.max_events,
            store_dropped=store.dropped,
        )

    def __repr__(self) -> str:
        return (
            f"Telemetry({len(self._subscribers)} subscribers, {len(self.store)}/"
            f"{self.store.max_events} events)"
        )


_default: Telemetry | None = None
_default_lock = threading.Lock()


def get_telemetry() -> Telemetry:
    """The process's default hub (made on first use, on the real clock)."""
    global _default
    hub = _default
    if hub is None:
        with _default_lock:
            if _default is None:
                _default = Telemetry()
            hub = _default
    return hub


def set_telemetry(telemetry: Telemetry) -> Telemetry:
    """Make ``telemetry`` the default hub; returns the previous one (to put it back)."""
    global _default
    if not isinstance(telemetry, Telemetry):
        raise ConfigurationError(f"set_telemetry needs a Telemetry, got {telemetry!r}")
    with _default_lock:
        previous = _default if _default is not None else Telemetry()
        _default = telemetry
    return previous


def emit(
    name: str,
    measurements: Mapping[str, float] | None = None,
    metadata: Mapping[str, Any] | None = None,
    **ids: str | None,
) -> Event:
    """``get_telemetry().emit(...)``: emit on the default hub (``ids``: its
    ``correlation_id`` and ``parent_id`` keywords)."""
    return (_default or get_telemetry()).emit(name, measurements, metadata, **ids)


def emit_safely(
    name: str,
    measurements: Mapping[str, float] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """``emit`` on the default hub for code reporting on its own work (a registry, a guard,
    a health check): an event the hub refuses (a measurement that is not a number) is
    logged on ``otpy.telemetry`` and dropped, never raised, so reporting never breaks the
    work it reports on. Returns the event, or None if it was refused."""
    try:
        return (_default or get_telemetry()).emit(name, measurements, metadata)
    except Exception:
        _log.exception("telemetry refused event %r", name)
        return None


def span(
    name: str,
    metadata: Mapping[str, Any] | None = None,
    measurements: Mapping[str, float] | None = None,
) -> Span:
    """``get_telemetry().span(...)``: a span on the default hub."""
    return (_default or get_telemetry()).span(name, metadata, measurements)
