"""Supervisor reports into telemetry: every supervisor's progress and crash reports become
events on the default hub (``supervisor.child_started``, ``supervisor.child_exited``, ...)
and restarts are counted per supervisor. The supervision layer adds this sink at its first
report (see ``otpy.supervision._events``); nothing is installed when ``otpy`` is imported."""

from __future__ import annotations

import logging

from otpy.supervision import SupervisorEvent
from otpy.telemetry import get_telemetry

__all__ = ["supervisor_report_to_telemetry"]

_log = logging.getLogger("otpy.supervision")


def supervisor_report_to_telemetry(report: SupervisorEvent) -> None:
    """Emit ``report`` on the default telemetry hub and count restarts and give-ups."""
    hub = get_telemetry()
    hub.emit(
        report.name,
        report.measurements,
        {"supervisor": report.supervisor, "child_id": report.child_id, **report.metadata},
    )
    if report.name == "supervisor.child_restarted":
        hub.metrics.counter("supervisor.restarts", supervisor=report.supervisor).inc()
    elif report.name == "supervisor.max_intensity_reached":
        hub.metrics.counter("supervisor.gave_up", supervisor=report.supervisor).inc()
