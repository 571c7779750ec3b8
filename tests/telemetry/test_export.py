"""Telemetry out of the process: the OpenTelemetry bridge (the SDK's in-memory exporters)
and the Prometheus exposition (parsed back with prometheus_client's parser)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client.parser import text_string_to_metric_families

from otpy.telemetry import Telemetry, TraceContext, current_context, use_context
from otpy.telemetry.otel import OtelBridge
from otpy.telemetry.prometheus import exposition, prometheus_name
from otpy.testing import FakeClock


@pytest.fixture
def otel() -> Iterator[tuple[Telemetry, InMemorySpanExporter, InMemoryMetricReader]]:
    hub = Telemetry(FakeClock())
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    bridge = OtelBridge(
        hub, tracer_provider=tracer_provider, meter_provider=MeterProvider([reader])
    )
    yield hub, exporter, reader
    bridge.close()


def test_spans_reach_the_exporter_with_one_trace_id_and_parent_links(
    otel: tuple[Telemetry, InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    hub, exporter, _ = otel
    with hub.span("job", {"job_id": "j1"}) as job:
        with hub.span("evaluation", {"index": 3}):
            hub.emit("llm.call", {"tokens": 812}, {"provider": "anthropic"})
        ctx = current_context()

        def worker() -> None:  # a span in another thread, in the same trace
            with use_context(ctx), hub.span("step"):
                pass

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        with pytest.raises(RuntimeError), hub.span("failing"):
            raise RuntimeError("bad")
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"job", "evaluation", "step", "failing"}
    root = spans["job"]
    assert root.parent is None
    assert root.attributes is not None and root.attributes["job_id"] == "j1"
    assert root.attributes["otpy.correlation_id"] == job.correlation_id
    trace_id = root.context.trace_id
    for name in ("evaluation", "step", "failing"):
        span = spans[name]
        assert span.context.trace_id == trace_id
        assert span.parent is not None and span.parent.span_id == root.context.span_id
    (event,) = spans["evaluation"].events
    assert event.name == "llm.call" and event.attributes == {
        "provider": "anthropic",
        "tokens": 812,
        "otpy.correlation_id": job.correlation_id,
    }
    assert spans["failing"].status.status_code is StatusCode.ERROR
    assert spans["failing"].status.description == "bad"


def test_a_span_whose_parent_is_not_open_here_joins_its_trace(
    otel: tuple[Telemetry, InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    hub, exporter, _ = otel
    remote = "0af7651916cd43dd8448eb211c80319c"  # a trace begun in another process
    with use_context(TraceContext(remote, "abc123")), hub.span("handler"):
        pass
    hub.emit("lonely")  # outside any span: a zero-length span of its own
    spans = {span.name: span for span in exporter.get_finished_spans()}
    handler = spans["handler"]
    assert handler.context.trace_id == int(remote, 16)
    assert handler.parent is not None and handler.parent.is_remote
    assert spans["lonely"].parent is None


def test_metrics_become_otel_instruments(
    otel: tuple[Telemetry, InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    hub, _, reader = otel
    hub.metrics.counter("llm.calls", provider="anthropic").inc(3)
    hub.metrics.gauge("queue.length").set(7)
    for value in (0.1, 0.2, 0.3):
        hub.metrics.histogram("step.duration").record(value)
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[tuple[dict[str, object], float]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = [
                    (dict(p.attributes or {}), p.value)  # type: ignore[union-attr]
                    for p in metric.data.data_points
                ]
    assert ({"metric": "llm.calls", "provider": "anthropic"}, 3) in points["otpy.counters"]
    assert ({"metric": "queue.length"}, 7) in points["otpy.gauges"]
    assert ({"metric": "step.duration"}, 3) in points["otpy.histogram.count"]
    stats = {a["stat"]: v for a, v in points["otpy.histogram"] if a["metric"] == "step.duration"}
    assert stats["max"] == pytest.approx(0.3) and stats["mean"] == pytest.approx(0.2)


def test_prometheus_text_parses_with_prometheus_clients_parser() -> None:
    hub = Telemetry(FakeClock())
    hub.metrics.counter("llm.calls", provider="anthropic").inc(3)
    hub.metrics.counter("llm.calls", provider="gemini").inc()
    hub.metrics.gauge("breaker.state", provider="anthropic").set(1)
    histogram = hub.metrics.histogram("job.duration")
    for value in range(1, 101):
        histogram.record(value / 100)
    hub.metrics.histogram("empty")
    families = {
        family.name: family
        for family in text_string_to_metric_families(exposition(hub.metrics).decode())
    }
    calls = families["otpy_llm_calls"]
    assert calls.type == "counter"
    assert {(s.labels["provider"], s.value) for s in calls.samples} == {
        ("anthropic", 3.0),
        ("gemini", 1.0),
    }
    assert families["otpy_breaker_state"].samples[0].value == 1.0
    duration = families["otpy_job_duration"]
    assert duration.type == "summary"
    samples = {(s.name, s.labels.get("quantile")): s.value for s in duration.samples}
    assert samples[("otpy_job_duration_count", None)] == 100
    assert samples[("otpy_job_duration_sum", None)] == pytest.approx(50.5)
    assert samples[("otpy_job_duration", "0.99")] == pytest.approx(0.99, rel=0.01)
    assert families["otpy_empty"].samples[0].value == 0  # count 0, no quantiles
    assert prometheus_name("a.b-c/d") == "otpy_a_b_c_d" and prometheus_name("9x", "") == "_9x"
