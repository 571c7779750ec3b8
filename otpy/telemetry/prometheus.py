"""Prometheus exposition of otpy's counters, gauges and histograms (``prometheus_client``).

Needs the ``otel`` extra (``pip install 'otpy[otel]'``)::

    from prometheus_client import start_http_server, REGISTRY
    from otpy.telemetry import get_telemetry
    from otpy.telemetry.prometheus import OtpyCollector, exposition

    REGISTRY.register(OtpyCollector(get_telemetry().metrics))   # then scrape as usual
    start_http_server(9464)
    exposition(get_telemetry().metrics)                         # or: the text, as bytes

Names become ``otpy_<name>`` with every character Prometheus does not allow turned into
``_`` (``llm.calls`` → ``otpy_llm_calls_total``); tags become labels. A counter is a
Prometheus counter, a gauge a gauge, a histogram a *summary* (its ``_count``, ``_sum`` and
the 0.5 / 0.9 / 0.99 quantiles from its sketch: otpy histograms have no fixed buckets).
Read at each scrape; nothing is copied in between.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from otpy.telemetry._metrics import Counter, Gauge, Histogram, Metrics

__all__ = ["OtpyCollector", "exposition", "prometheus_name"]

_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9_]")
_QUANTILES = (("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"))


def prometheus_name(name: str, prefix: str = "otpy") -> str:
    """``name`` as a Prometheus metric or label name: ``prefix_`` + the name with every
    character outside ``[a-zA-Z0-9_]`` turned into ``_``."""
    clean = _NOT_ALLOWED.sub("_", name)
    if prefix:
        return f"{prefix}_{clean}"
    return f"_{clean}" if clean[:1].isdigit() else clean


class OtpyCollector(Collector):
    """A ``prometheus_client`` collector over an otpy :class:`Metrics` registry."""

    def __init__(self, metrics: Metrics, *, prefix: str = "otpy") -> None:
        self.metrics = metrics
        self.prefix = prefix

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for metric in self.metrics.collect():
            name = prometheus_name(metric.name, self.prefix)
            labels = {prometheus_name(k, ""): str(v) for k, v in metric.tags.items()}
            family = families.get(name)
            if family is None:
                family = families[name] = _family(metric, name, sorted(labels))
            _add(family, metric, labels)
        yield from families.values()


def _family(metric: Counter | Gauge | Histogram, name: str, labels: list[str]) -> Metric:
    text = f"otpy {metric.kind} {metric.name}"
    if isinstance(metric, Counter):
        return CounterMetricFamily(name, text, labels=labels)
    if isinstance(metric, Gauge):
        return GaugeMetricFamily(name, text, labels=labels)
    return SummaryMetricFamily(name, text, labels=labels)


def _add(family: Metric, metric: Counter | Gauge | Histogram, labels: dict[str, str]) -> None:
    suffix = family.name  # counters: prometheus_client adds _total itself
    if isinstance(metric, Counter | Gauge):
        sample = "_total" if isinstance(metric, Counter) else ""
        family.add_sample(suffix + sample, labels, float(metric.value))
        return
    summary = metric.summary()
    count = summary["count"]
    total = (summary["mean"] or 0.0) * count
    family.add_sample(suffix + "_count", labels, float(count))
    family.add_sample(suffix + "_sum", labels, total)
    for quantile, key in _QUANTILES:
        value = summary[key]
        if value is not None:
            family.add_sample(suffix, {**labels, "quantile": quantile}, float(value))


def exposition(metrics: Metrics, *, prefix: str = "otpy") -> bytes:
    """The Prometheus text exposition (format 0.0.4) of ``metrics``, as a scrape gets it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OtpyCollector(metrics, prefix=prefix))
    return generate_latest(registry)
