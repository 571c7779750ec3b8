"""Events the resilience layer reports (waited, tripped, retried, fell back, ...).

Every event goes to the default telemetry hub (``otpy.telemetry.get_telemetry()``, with
the caller's correlation and span ids, ``source`` in its metadata) and to the ``on_event``
subscriber given to the guard, limiter or breaker, if any: any callable taking a
:class:`ResilienceEvent`. A subscriber that raises is logged and ignored: reporting never
breaks the call it reports on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from otpy.telemetry import emit_safely

__all__ = ["EventSink", "ResilienceEvent", "emit"]

_log = logging.getLogger("otpy.resilience")


@dataclass(frozen=True)
class ResilienceEvent:
    """Something a guard, limiter, breaker, retry or fallback did.

    ``name`` is one of: ``rate_limit.waited``, ``breaker.tripped``, ``breaker.rejected``,
    ``breaker.state_changed``, ``retry.retried``, ``retry.gave_up``, ``call.timed_out``,
    ``fallback.fell_back``, ``fallback.exhausted``.
    ``source`` names the guard / limiter / breaker; ``measurements`` holds numbers
    (seconds, attempt, ...), ``metadata`` everything else (error type, state, option).
    """

    name: str
    source: str
    measurements: Mapping[str, float] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)


EventSink = Callable[[ResilienceEvent], None]


def emit(
    sink: EventSink | None,
    name: str,
    source: str,
    measurements: Mapping[str, float] | None = None,
    **metadata: Any,
) -> None:
    """Deliver one event to telemetry and to ``sink`` (if any); failures are logged, never
    raised."""
    emit_safely(name, measurements, {"source": source, **metadata})
    if sink is None:
        return
    event = ResilienceEvent(name, source, dict(measurements or {}), metadata)
    try:
        sink(event)
    except Exception:
        _log.exception("resilience event subscriber failed on %s from %s", name, source)
