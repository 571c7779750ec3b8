"""Supervisor reports: what a supervisor did to its children, for whoever listens.

The counterpart of OTP's supervisor progress and crash reports (SASL). Every supervisor in
the process reports to the sinks added here. otpy's own sink, which forwards to the
telemetry hub (``otpy._reports``), is imported and added at the first report, not when
``otpy`` is imported (importing registers nothing); ``remove_event_sink`` takes it out like
any other. A sink runs in the supervisor's own thread, so it must be quick; one that
raises is logged and ignored: reporting never disturbs supervision.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SupervisorEvent", "SupervisorEventSink", "add_event_sink", "remove_event_sink"]

_log = logging.getLogger("otpy.supervision")


@dataclass(frozen=True)
class SupervisorEvent:
    """One thing a supervisor did.

    ``name`` is one of ``supervisor.child_started``, ``supervisor.child_restarted``,
    ``supervisor.child_start_failed``, ``supervisor.child_exited``,
    ``supervisor.max_intensity_reached``; ``supervisor`` names the supervisor, ``child_id``
    the child (``None`` for the intensity report); ``measurements`` holds numbers
    (restarts in the window, backoff delay), ``metadata`` the rest (exit reason, strategy).
    """

    name: str
    supervisor: str
    child_id: Any
    measurements: Mapping[str, float] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)


SupervisorEventSink = Callable[[SupervisorEvent], None]

_sinks: tuple[SupervisorEventSink, ...] = ()
_sinks_lock = threading.Lock()
_DEFAULT_SINK = ("otpy._reports", "supervisor_report_to_telemetry")
_default_pending = True  # otpy's telemetry sink: added on first use (see the docstring)


def _add_default() -> None:
    """Add otpy's telemetry sink, once (a supervisor layer without it is still complete:
    a failed import is logged and reporting goes on without it)."""
    global _default_pending, _sinks
    with _sinks_lock:
        if not _default_pending:
            return
        _default_pending = False
        module, name = _DEFAULT_SINK
        try:
            sink = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            _log.exception("could not load the default supervisor event sink %s.%s", *_DEFAULT_SINK)
            return
        if sink not in _sinks:
            _sinks = (*_sinks, sink)


def add_event_sink(sink: SupervisorEventSink) -> None:
    """Send every supervisor's reports to ``sink`` too (adding one twice is a no-op)."""
    global _sinks
    _add_default()
    with _sinks_lock:
        if sink not in _sinks:
            _sinks = (*_sinks, sink)


def remove_event_sink(sink: SupervisorEventSink) -> bool:
    """Stop sending reports to ``sink``; whether it was there."""
    global _sinks
    _add_default()
    with _sinks_lock:
        if sink not in _sinks:
            return False
        _sinks = tuple(s for s in _sinks if s is not sink)
        return True


def report(
    name: str,
    supervisor: object,
    child_id: Any,
    measurements: Mapping[str, float] | None = None,
    **metadata: Any,
) -> None:
    """Deliver one report to every sink (none: nothing is built)."""
    if _default_pending:
        _add_default()
    sinks = _sinks
    if not sinks:
        return
    event = SupervisorEvent(name, str(supervisor), child_id, dict(measurements or {}), metadata)
    for sink in sinks:
        try:
            sink(event)
        except Exception:
            _log.exception("supervisor event sink failed on %s from %s", name, event.supervisor)
