"""The root of the hierarchy, and bad settings or arguments."""

from __future__ import annotations

__all__ = ["ConfigurationError", "OtpyError"]


class OtpyError(Exception):
    """Base of every expected otpy error; a GenServer returns these without crashing."""


class ConfigurationError(OtpyError, ValueError):
    """A setting or argument is invalid; the message names it and the allowed values."""
