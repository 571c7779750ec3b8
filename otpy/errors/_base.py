"""The root of the hierarchy, and bad settings or arguments."""

from __future__ import annotations

from typing import Any

__all__ = ["ConfigurationError", "OtpyError"]


class OtpyError(Exception):
    """Base of every expected otpy error; a GenServer returns these without crashing."""


class ConfigurationError(OtpyError, ValueError):
    """A setting or argument is invalid; the message names it and the allowed values."""


def located(message: str, what: str, name: Any, field: str | None) -> str:
    """``message`` after where it applies: ``<what> 'name', field 'f': message`` (either
    part left out when it is None)."""
    where = []
    if name is not None:
        where.append(f"{what} {name!r}")
    if field is not None:
        where.append(f"field {field!r}")
    return f"{', '.join(where)}: {message}" if where else message


class PlainLookup(LookupError):
    """A LookupError whose ``str`` is its message as given (a LookupError from a dict
    lookup would quote it like a key)."""

    def __str__(self) -> str:
        return str(self.args[0])
