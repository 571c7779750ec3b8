"""Counters, gauges and histograms, and the registry that names them."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import Any, TypeVar

from otpy.errors import ConfigurationError
from otpy.telemetry._sketch import QuantileSketch

__all__ = ["Counter", "Gauge", "Histogram", "Metrics", "metric_key"]


def _number(value: Any, what: str) -> Any:
    """``value`` if it is a finite int or float; bools, NaN, infinities, non-numbers raise."""
    kind = type(value)
    if (kind is not float and kind is not int) and (
        isinstance(value, bool) or not isinstance(value, int | float)
    ):
        raise ConfigurationError(f"{what} takes a number, got {value!r}")
    if value - value != 0:
        raise ConfigurationError(f"{what} takes a finite number, got {value!r}")
    return value


def _float(value: Any, what: str) -> float:
    """``value`` as a finite float (see ``_number``; an int too big for a float raises)."""
    try:
        return float(_number(value, what))
    except OverflowError:
        raise ConfigurationError(f"{what} takes a finite number, got {value!r}") from None


def metric_key(name: str, tags: dict[str, str]) -> str:
    """The snapshot key: ``name``, or ``name{k=v,...}`` with the tags sorted by key."""
    if not tags:
        return name
    return name + "{" + ",".join(f"{k}={v}" for k, v in sorted(tags.items())) + "}"


class _Metric:
    __slots__ = ("_lock", "key", "name", "tags")
    kind = ""

    def __init__(self, name: str, tags: dict[str, str] | None = None) -> None:
        self.name = name
        self.tags: dict[str, str] = dict(tags or {})
        self.key = metric_key(name, self.tags)
        self._lock = threading.Lock()

    def snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r}, {self.snapshot()!r})"


class _Scalar(_Metric):
    """A metric that is one number (a counter or a gauge)."""

    __slots__ = ("_value",)

    def __init__(self, name: str, tags: dict[str, str] | None = None) -> None:
        super().__init__(name, tags)
        self._value: float = 0

    @property
    def value(self) -> float:
        """The value now (an int while only ints were added)."""
        return self._value

    def snapshot(self) -> dict[str, Any]:
        return {"type": self.kind, "value": self._value}

    def reset(self) -> None:
        with self._lock:
            self._value = 0


class Counter(_Scalar):
    """A number that only goes up (calls made, tokens spent). Thread-safe."""

    __slots__ = ()
    kind = "counter"

    def inc(self, n: float = 1) -> None:
        """Add ``n`` (default 1); a negative ``n`` or a non-number raises ConfigurationError."""
        n = _number(n, f"counter {self.key!r}")
        if n < 0:
            raise ConfigurationError(
                f"counter {self.key!r} only goes up; inc({n!r}) is negative (use a Gauge)"
            )
        with self._lock:
            self._value += n


class Gauge(_Scalar):
    """A number that goes up and down (queue length, breaker state). Thread-safe."""

    __slots__ = ()
    kind = "gauge"

    def set(self, value: float) -> None:
        """Set the value."""
        value = _number(value, f"gauge {self.key!r}")
        with self._lock:
            self._value = value

    def inc(self, n: float = 1) -> None:
        """Add ``n`` (default 1)."""
        n = _number(n, f"gauge {self.key!r}")
        with self._lock:
            self._value += n

    def dec(self, n: float = 1) -> None:
        """Subtract ``n`` (default 1)."""
        n = _number(n, f"gauge {self.key!r}")
        with self._lock:
            self._value -= n


class Histogram(_Metric):
    """The distribution of a measurement (durations, sizes): count, min, max, mean,
    standard deviation and percentiles, in bounded memory. Thread-safe; ``record`` costs
    about 1 µs.

    ``mean`` and ``stddev`` are exact (Welford's online algorithm; ``stddev`` is the
    *population* standard deviation, ``sqrt(sum((x - mean)**2) / count)``). ``min`` and
    ``max`` are exact. Percentiles come from a :class:`QuantileSketch` (nearest rank,
    within 0.5% relative error by default; see there for the bucket cap). Every statistic
    is ``None`` while the histogram is empty.
    """

    __slots__ = ("_m2", "_mean", "_sketch")
    kind = "histogram"

    def __init__(
        self,
        name: str,
        tags: dict[str, str] | None = None,
        *,
        relative_accuracy: float = 0.005,
        max_buckets: int = 2048,
    ) -> None:
        super().__init__(name, tags)
        self._sketch = QuantileSketch(relative_accuracy, max_buckets)
        self._mean = 0.0
        self._m2 = 0.0

    def record(self, value: float) -> None:
        """Add one value; a non-number, a bool, NaN or an infinity raises ConfigurationError."""
        if type(value) is not float:
            value = _float(value, f"histogram {self.key!r}")
        try:
            with self._lock:
                self._sketch.add(value)
                n = self._sketch.count
                delta = value - self._mean
                self._mean += delta / n
                self._m2 += delta * (value - self._mean)
        except ConfigurationError:
            raise ConfigurationError(
                f"histogram {self.key!r} takes finite numbers, got {value!r}"
            ) from None

    def record_many(self, values: Iterable[float]) -> None:
        """``record`` each value, holding the lock once; a bad value raises
        ConfigurationError and the values before it stay recorded."""
        what = f"histogram {self.key!r}"
        with self._lock:
            sketch = self._sketch
            for value in values:
                if type(value) is not float or value - value != 0.0:
                    value = _float(value, what)
                sketch.add(value)
                delta = value - self._mean
                self._mean += delta / sketch.count
                self._m2 += delta * (value - self._mean)

    @property
    def count(self) -> int:
        """How many values were recorded."""
        return self._sketch.count

    @property
    def min(self) -> float | None:
        """The smallest value recorded."""
        with self._lock:
            return self._sketch.min

    @property
    def max(self) -> float | None:
        """The largest value recorded."""
        with self._lock:
            return self._sketch.max

    @property
    def mean(self) -> float | None:
        """The arithmetic mean."""
        with self._lock:
            return self._mean if self._sketch.count else None

    @property
    def stddev(self) -> float | None:
        """The population standard deviation."""
        with self._lock:
            return self._stddev()

    def _stddev(self) -> float | None:
        n = self._sketch.count
        return math.sqrt(max(0.0, self._m2) / n) if n else None

    @property
    def bucket_count(self) -> int:
        """How many sketch buckets are in use (bounded by ``max_buckets``)."""
        with self._lock:
            return self._sketch.bucket_count

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile, ``0 <= q <= 100`` (nearest rank, estimated)."""
        with self._lock:
            return self._sketch.percentile(q)

    def summary(self) -> dict[str, Any]:
        """``count``, ``min``, ``max``, ``mean``, ``stddev``, ``p50``, ``p90``, ``p99`` from
        one consistent moment."""
        with self._lock:
            s = self._sketch
            p50, p90, p99 = s.percentiles([50, 90, 99])
            return {
                "count": s.count,
                "min": s.min,
                "max": s.max,
                "mean": self._mean if s.count else None,
                "stddev": self._stddev(),
                "p50": p50,
                "p90": p90,
                "p99": p99,
            }

    def snapshot(self) -> dict[str, Any]:
        return {"type": self.kind, **self.summary()}

    def reset(self) -> None:
        with self._lock:
            self._sketch.clear()
            self._mean = 0.0
            self._m2 = 0.0


_M = TypeVar("_M", Counter, Gauge, Histogram)


class Metrics:
    """The registry: one metric per name and tags, made on first use. Thread-safe.

    ``counter("llm.calls", provider="anthropic")`` returns the same Counter every time;
    a name belongs to one kind (asking for ``"llm.calls"`` as a gauge afterwards raises
    ConfigurationError). Tag values are compared as strings.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: dict[tuple[str, tuple[tuple[str, str], ...]], _Metric] = {}
        self._kinds: dict[str, str] = {}

    def counter(self, name: str, **tags: Any) -> Counter:
        """The counter ``name`` with these tags."""
        return self._get(Counter, name, tags)

    def gauge(self, name: str, **tags: Any) -> Gauge:
        """The gauge ``name`` with these tags."""
        return self._get(Gauge, name, tags)

    def histogram(self, name: str, **tags: Any) -> Histogram:
        """The histogram ``name`` with these tags."""
        return self._get(Histogram, name, tags)

    def _get(self, cls: type[_M], name: str, tags: dict[str, Any]) -> _M:
        key = (name, tuple(sorted((k, str(v)) for k, v in tags.items())) if tags else ())
        metric = self._metrics.get(key)
        if metric is None:
            if not isinstance(name, str) or not name:
                raise ConfigurationError(f"a metric name must be a non-empty string: {name!r}")
            with self._lock:
                kind = self._kinds.setdefault(name, cls.kind)
                if kind != cls.kind:
                    raise ConfigurationError(
                        f"metric {name!r} is a {kind}; it cannot also be a {cls.kind}"
                    )
                metric = self._metrics.get(key)
                if metric is None:
                    metric = self._metrics[key] = cls(name, dict(key[1]))
        if not isinstance(metric, cls):
            raise ConfigurationError(
                f"metric {name!r} is a {metric.kind}; it cannot also be a {cls.kind}"
            )
        return metric

    def collect(self) -> list[Counter | Gauge | Histogram]:
        """Every metric object, sorted by key (for exporters: OTel, Prometheus)."""
        with self._lock:
            metrics = list(self._metrics.values())
        return sorted(metrics, key=lambda m: m.key)  # type: ignore[arg-type]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every metric's numbers, keyed ``name`` or ``name{k=v,...}`` (tags sorted), each
        with a ``"type"`` (``counter`` / ``gauge`` / ``histogram``)."""
        with self._lock:
            metrics = list(self._metrics.values())
        return {m.key: m.snapshot() for m in sorted(metrics, key=lambda m: m.key)}

    def reset(self) -> None:
        """Zero every metric in place (counters and gauges to 0, histograms emptied).
        Registrations stay, so code holding a metric keeps counting into the registry."""
        with self._lock:
            metrics = list(self._metrics.values())
        for metric in metrics:
            metric.reset()

    def __len__(self) -> int:
        return len(self._metrics)
