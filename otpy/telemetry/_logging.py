"""A logging filter that stamps each record with the current trace's ids."""

from __future__ import annotations

import logging

from otpy.telemetry._context import CURRENT

__all__ = ["CorrelationFilter"]


class CorrelationFilter(logging.Filter):
    """Sets ``record.correlation_id`` and ``record.span_id`` (the current context's, or
    ``"-"`` outside a trace) so a format string can show them: ``"%(correlation_id)s"``.

    Never drops a record, and keeps ids a caller passed with ``extra=``. Attach it to a
    handler: filters run in the logging thread, which is where the context is. (Behind a
    ``QueueHandler``, attach it to the QueueHandler, not to the listener's handlers.)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = CURRENT.get()
        if not hasattr(record, "correlation_id"):
            record.correlation_id = ctx.correlation_id or "-"
        if not hasattr(record, "span_id"):
            record.span_id = ctx.span_id or "-"
        return True
