"""Telemetry: events with trace ids, spans, metrics, and correlation ids in logs.

::

    from otpy.telemetry import get_telemetry

    hub = get_telemetry()
    hub.subscribe(print, "llm.*")                       # runs in the emitting thread
    with hub.span("job", {"job_id": "j1"}) as job:      # a span at top level starts a trace
        with hub.span("evaluation"):                    # a child span
            hub.emit("llm.call", {"tokens": 812}, {"provider": "anthropic"})
    for root in hub.store.trace_tree(job.correlation_id):
        print(root.render())                            # the job as an indented tree
    hub.metrics.histogram("job.duration").summary()     # count, mean, p50 / p90 / p99

The trace follows the work through ``contextvars``; hand ``current_context()`` to a
worker thread and run the work ``with use_context(ctx):`` there.
"""

from otpy.redaction import REDACTED, is_secret_key, redact_value
from otpy.telemetry._context import (
    TraceContext,
    correlation,
    current_context,
    new_correlation_id,
    use_context,
)
from otpy.telemetry._event import Event
from otpy.telemetry._hub import (
    Subscriber,
    Telemetry,
    TelemetryStats,
    emit,
    emit_safely,
    get_telemetry,
    set_telemetry,
    span,
)
from otpy.telemetry._logging import CorrelationFilter
from otpy.telemetry._metrics import Counter, Gauge, Histogram, Metrics
from otpy.telemetry._sketch import QuantileSketch, nearest_rank
from otpy.telemetry._span import Span
from otpy.telemetry._store import EventStore, StoreStats, TraceNode

__all__ = [
    "REDACTED",
    "CorrelationFilter",
    "Counter",
    "Event",
    "EventStore",
    "Gauge",
    "Histogram",
    "Metrics",
    "QuantileSketch",
    "Span",
    "StoreStats",
    "Subscriber",
    "Telemetry",
    "TelemetryStats",
    "TraceContext",
    "TraceNode",
    "correlation",
    "current_context",
    "emit",
    "emit_safely",
    "get_telemetry",
    "is_secret_key",
    "nearest_rank",
    "new_correlation_id",
    "redact_value",
    "set_telemetry",
    "span",
    "use_context",
]
