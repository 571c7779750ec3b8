"""Logging set-up: one call for applications, and a filter that keeps secrets out of logs."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from otpy.redaction import REDACTED, SECRET_ENV_VARS, mask, secret_literals
from otpy.telemetry import CorrelationFilter

__all__ = ["REDACTED", "SECRET_ENV_VARS", "SecretFilter", "configure_logging", "get_logger"]


class SecretFilter(logging.Filter):
    """Masks API keys in log records: known key shapes, ``api_key=...`` pairs, and the
    values of the provider key environment variables (read when the filter is made)."""

    def __init__(self, extra_secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._literals = secret_literals(extra_secrets)

    def redact(self, text: str) -> str:
        """``text`` masked (:func:`otpy.redaction.mask`)."""
        return mask(text, self._literals)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        return True


def get_logger(name: str) -> logging.Logger:
    """The logger for an otpy component (``otpy.<name>``)."""
    return logging.getLogger(name if name.startswith("otpy") else f"otpy.{name}")


def configure_logging(level: int | str = "INFO", *, fmt: str | None = None) -> logging.Handler:
    """Send otpy's (and pykka's) logs to stderr with secrets masked and each record's
    trace ids (``%(correlation_id)s``, ``%(span_id)s``, ``-`` outside a trace); returns
    the handler.

    For applications and the CLI; a library embedding otpy can configure logging itself
    (then add :class:`SecretFilter` to its handlers). Calling it again replaces the handler.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter(
            fmt
            or "%(asctime)s %(levelname)-7s %(name)s [%(threadName)s] "
            "[%(correlation_id)s/%(span_id)s] %(message)s"
        )
    )
    handler.addFilter(SecretFilter())
    handler.addFilter(CorrelationFilter())
    handler.set_name("otpy")
    for name in ("otpy", "pykka"):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "otpy"]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    return handler
