"""OpenTelemetry bridge: otpy spans as OTel spans, otpy metrics as OTel instruments.

Needs the ``otel`` extra (``pip install 'otpy[otel]'``)::

    from otpy.telemetry import get_telemetry
    from otpy.telemetry.otel import OtelBridge

    bridge = OtelBridge(get_telemetry())     # the global tracer / meter providers
    ...                                      # every otpy span is now an OTel span
    bridge.close()

Each ``<name>.start`` / ``<name>.stop`` (or ``.exception``) pair on the hub becomes one OTel
span named ``<name>``, timed by the events' timestamps, with its metadata and measurements
as attributes (``otpy.correlation_id``, ``otpy.span_id`` among them) and the span of the
enclosing otpy span as its parent, across threads; an ``.exception`` sets the ERROR status.
An event emitted inside an open span becomes an OTel event of that span; one outside any
span a zero-length span of its own. A span whose parent is not open here (ended, or in
another process) joins its trace through a remote parent context with the same trace id.
The metrics of ``hub.metrics`` are observed at each collection, through four
instruments whose attribute ``metric`` names the otpy metric (its tags are attributes
too; metrics made after the bridge are included): ``otpy.counters`` (ObservableCounter),
``otpy.gauges`` (ObservableGauge), ``otpy.histogram.count`` (ObservableCounter: values
recorded) and ``otpy.histogram`` (ObservableGauge, attribute ``stat``: ``mean``, ``max``,
``p50``, ``p90``, ``p99``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter_provider
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    TracerProvider,
)

from otpy.telemetry._event import Event
from otpy.telemetry._hub import Telemetry
from otpy.telemetry._metrics import Metrics

__all__ = ["OtelBridge"]

SCOPE = "otpy"
_ENDS = (".stop", ".exception")
_STATS = ("mean", "max", "p50", "p90", "p99")


def _ns(timestamp: float) -> int:
    return int(timestamp * 1e9)


def _id(text: str, bits: int) -> int:
    """A stable non-zero OTel id of ``bits`` bits for an otpy id (hex ids kept as is)."""
    if bits == 128 and len(text) == 32:
        try:
            value = int(text, 16)
        except ValueError:
            value = 0
        if value:
            return value
    digest = hashlib.blake2b(text.encode(), digest_size=bits // 8).digest()
    return int.from_bytes(digest, "big") or 1


def _attribute(value: Any) -> Any:
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    return str(value)


def _attributes(event: Event) -> dict[str, Any]:
    attributes = {key: _attribute(value) for key, value in event.metadata.items()}
    attributes.update(event.measurements)
    if event.correlation_id is not None:
        attributes["otpy.correlation_id"] = event.correlation_id
    return attributes


class OtelBridge:
    """Forwards one hub's spans and metrics to OpenTelemetry until :meth:`close`.

    ``tracer_provider`` / ``meter_provider`` default to the global ones. Spans are made
    in the emitting thread (a subscriber of the hub; keep the exporter batched).
    ``max_open`` bounds the spans awaiting their end: past it the oldest is ended with
    status ERROR "not ended" (a span whose work never finished must not leak)."""

    def __init__(
        self,
        hub: Telemetry,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        metrics: bool = True,
        max_open: int = 10_000,
    ) -> None:
        self.hub = hub
        provider = tracer_provider or trace.get_tracer_provider()
        self._tracer = provider.get_tracer(SCOPE)
        self._open: OrderedDict[str, Span] = OrderedDict()
        self._lock = threading.Lock()
        self._max_open = max_open
        self._subscription: str | None = hub.subscribe(self._on_event)
        if metrics:
            self._observe(meter_provider or get_meter_provider(), hub.metrics)

    def close(self) -> None:
        """Stop forwarding; spans still open are ended now."""
        if self._subscription is not None:
            self.hub.unsubscribe(self._subscription)
            self._subscription = None
        with self._lock:
            spans, self._open = list(self._open.values()), OrderedDict()
        for span in spans:
            span.end()

    # -- spans ---------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        name = event.name
        if name.endswith(".start"):
            self._start(event, name[: -len(".start")])
            return
        if name.endswith(_ENDS) and event.parent_id is not None:
            with self._lock:
                span = self._open.pop(event.parent_id, None)
            if span is not None:
                self._end(span, event)
                return
        with self._lock:
            parent = self._open.get(event.parent_id) if event.parent_id else None
        if parent is not None:
            parent.add_event(name, _attributes(event), _ns(event.timestamp))
        else:
            span = self._tracer.start_span(
                name, self._context(event), attributes=_attributes(event),
                start_time=_ns(event.timestamp),
            )  # fmt: skip
            span.end(_ns(event.timestamp))

    def _context(self, event: Event) -> Any:
        """The OTel parent context of ``event``: its open parent span, else a remote
        parent in its trace, else none (a new trace)."""
        parent_id = event.parent_id
        if parent_id is not None:
            with self._lock:
                parent = self._open.get(parent_id)
            if parent is not None:
                return trace.set_span_in_context(parent)
        if event.correlation_id is None or parent_id is None:
            return None
        remote = SpanContext(
            trace_id=_id(event.correlation_id, 128),
            span_id=_id(parent_id, 64),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        return trace.set_span_in_context(NonRecordingSpan(remote))

    def _start(self, event: Event, name: str) -> None:
        attributes = _attributes(event)
        attributes["otpy.span_id"] = event.event_id
        if event.parent_id is not None:
            attributes["otpy.parent_id"] = event.parent_id
        span = self._tracer.start_span(
            name, self._context(event), attributes=attributes, start_time=_ns(event.timestamp)
        )
        evicted: list[Span] = []
        with self._lock:
            self._open[event.event_id] = span
            while len(self._open) > self._max_open:
                evicted.append(self._open.popitem(last=False)[1])
        for old in evicted:
            old.set_status(Status(StatusCode.ERROR, "not ended (otpy bridge max_open)"))
            old.end()

    def _end(self, span: Span, event: Event) -> None:
        span.set_attributes(_attributes(event))
        if event.name.endswith(".exception"):
            message = str(event.metadata.get("error_message", ""))
            span.set_status(Status(StatusCode.ERROR, message))
        span.end(_ns(event.timestamp))

    # -- metrics -------------------------------------------------------------------------

    def _observe(self, provider: MeterProvider, metrics: Metrics) -> None:
        meter = provider.get_meter(SCOPE)
        self._metrics = metrics
        self._counters = meter.create_observable_counter(
            "otpy.counters", callbacks=[self._counter_values], description="otpy counters"
        )
        self._gauges = meter.create_observable_gauge(
            "otpy.gauges", callbacks=[self._gauge_values], description="otpy gauges"
        )
        self._histogram_counts = meter.create_observable_counter(
            "otpy.histogram.count",
            callbacks=[self._histogram_counts_of],
            description="values recorded in each otpy histogram",
        )
        self._histogram_stats = meter.create_observable_gauge(
            "otpy.histogram",
            callbacks=[self._histogram_stats_of],
            description="otpy histograms: mean, max and percentiles (attribute stat)",
        )

    def _by_kind(self, kind: str) -> Iterable[tuple[str, Mapping[str, str], Any]]:
        for metric in self._metrics.collect():
            if metric.kind == kind:
                yield metric.name, metric.tags, metric

    def _counter_values(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, tags, metric in self._by_kind("counter"):
            yield Observation(metric.value, {"metric": name, **tags})

    def _gauge_values(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, tags, metric in self._by_kind("gauge"):
            yield Observation(metric.value, {"metric": name, **tags})

    def _histogram_counts_of(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, tags, metric in self._by_kind("histogram"):
            yield Observation(metric.count, {"metric": name, **tags})

    def _histogram_stats_of(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, tags, metric in self._by_kind("histogram"):
            summary = metric.summary()
            for stat in _STATS:
                value = summary[stat]
                if value is not None:
                    yield Observation(value, {"metric": name, "stat": stat, **tags})
