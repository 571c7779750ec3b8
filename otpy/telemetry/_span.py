"""Spans: a timed piece of work that emits ``.start`` and ``.stop`` (or ``.exception``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import Token
from types import TracebackType
from typing import Any, Protocol

from otpy.clock import Clock
from otpy.errors import ConfigurationError
from otpy.telemetry._context import CURRENT, TraceContext, new_correlation_id, restore
from otpy.telemetry._event import Event, new_event_id
from otpy.telemetry._metrics import Histogram, Metrics

__all__ = ["Span", "SpanHub"]


class SpanHub(Protocol):
    """What a span needs of its hub (:class:`~otpy.telemetry.Telemetry` is one):
    ``_emit(name, measurements, metadata, correlation_id, parent_id, event_id)``."""

    @property
    def clock(self) -> Clock: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def _emit(self) -> Callable[..., Event]: ...


class Span:
    """A timed piece of work; use it as ``with hub.span("job") as span: ...``.

    On entry it emits ``<name>.start`` (its ``event_id`` is the span id, its parent the
    enclosing span) and becomes the current span, so events and spans in the body are its
    children. On exit it emits ``<name>.stop`` with ``measurements={"duration": seconds}``
    (the hub clock's ``monotonic``), or ``<name>.exception`` with the duration and
    ``error_type`` / ``error_message`` (redacted) in metadata, and the exception goes on.
    Either way the duration is recorded in the histogram ``<name>.duration``. The end event
    carries the span's metadata plus whatever ``set`` added.

    The span takes its trace from the context current when it is *made*: a span made
    outside any trace starts one (a new correlation id). Single-use; not thread-safe (one
    span belongs to the code that runs it; hand ``current_context()`` to other threads).
    """

    __slots__ = (
        "_extra",
        "_histogram",
        "_hub",
        "_measurements",
        "_metadata",
        "_previous",
        "_started",
        "_token",
        "correlation_id",
        "name",
        "parent_id",
        "span_id",
    )

    def __init__(
        self,
        hub: SpanHub,
        name: str,
        metadata: Mapping[str, Any] | None = None,
        measurements: Mapping[str, float] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a span name must be a non-empty string, got {name!r}")
        ctx = CURRENT.get()
        self._hub = hub
        self.name = name
        self.span_id: str = new_event_id()
        if ctx.correlation_id is None:
            self.correlation_id: str = new_correlation_id()
            self.parent_id: str | None = None
        else:
            self.correlation_id = ctx.correlation_id
            self.parent_id = ctx.span_id
        self._metadata = dict(metadata) if metadata else {}
        self._measurements = measurements
        self._extra: dict[str, Any] = {}
        self._token: Token[TraceContext] | None = None
        self._previous = ctx
        self._started: float | None = None
        self._histogram: Histogram | None = None

    def set(self, **metadata: Any) -> None:
        """Add metadata to the span's end event (later values win)."""
        self._extra.update(metadata)

    def __enter__(self) -> Span:
        if self._started is not None:
            raise ConfigurationError(
                f"span {self.name!r} was already entered; spans are single-use"
            )
        hub = self._hub
        self._histogram = hub.metrics.histogram(f"{self.name}.duration")
        hub._emit(
            f"{self.name}.start",
            self._measurements,
            self._metadata,
            self.correlation_id,
            self.parent_id,
            self.span_id,
        )
        self._previous = CURRENT.get()
        self._token = CURRENT.set(TraceContext(self.correlation_id, self.span_id))
        self._started = hub.clock.monotonic()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        hub = self._hub
        started = self._started
        if started is None or self._token is None or self._histogram is None:
            raise ConfigurationError(f"span {self.name!r} exited without being entered")
        duration = max(0.0, hub.clock.monotonic() - started)
        restore(self._token, self._previous)
        self._token = None
        self._histogram.record(duration)
        metadata = {**self._metadata, **self._extra} if self._extra else self._metadata
        if exc is None:
            name = f"{self.name}.stop"
        else:
            name = f"{self.name}.exception"
            metadata = {
                **metadata,
                "error_type": type(exc).__qualname__,
                "error_message": _message(exc),
            }
        hub._emit(
            name,
            {"duration": duration},
            metadata,
            self.correlation_id,
            self.span_id,
            new_event_id(),
        )

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return (
            f"Span({self.name!r}, span_id={self.span_id!r}, correlation_id={self.correlation_id!r})"
        )


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__qualname__}>"
