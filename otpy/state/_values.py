"""Variable names and the JSON values variables hold: name checks and a checked deep copy."""

from __future__ import annotations

import math
import re
from typing import Any, Final

from otpy.errors import ConfigurationError

__all__ = [
    "MAX_DEPTH",
    "MAX_NAME_LENGTH",
    "NAME_PATTERN",
    "NotJSON",
    "check_name",
    "is_valid_name",
    "json_copy",
]


NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_.\-/]*$"
MAX_NAME_LENGTH: Final = 200
MAX_DEPTH: Final = 100
"""How deep a JSON value may nest (a value that contains itself never ends)."""

_NAME_RE: Final = re.compile(NAME_PATTERN[1:-1])


def is_valid_name(name: object) -> bool:
    """Whether ``name`` can name a variable (ids never can: lookups are unambiguous)."""
    return (
        isinstance(name, str)
        and len(name) <= MAX_NAME_LENGTH
        and _NAME_RE.fullmatch(name) is not None
    )


def check_name(name: object) -> str:
    """Return ``name`` if it is a valid variable name, else raise ConfigurationError."""
    if not is_valid_name(name):
        raise ConfigurationError(
            f"variable name {name!r} is invalid: field 'name' must be a str matching "
            f"{NAME_PATTERN} of at most {MAX_NAME_LENGTH} characters"
        )
    assert isinstance(name, str)
    return name


class NotJSON(ValueError):
    """A value that is not JSON data; the message gives the path to the bad part."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}" if path else why)


def json_copy(value: Any, path: str = "", depth: int = 0) -> Any:
    """A plain deep copy of a JSON value (tuples become lists); raises NotJSON if it is not."""
    if value is None or type(value) in (str, bool, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotJSON(path, f"{value!r} is not a finite number")
        return float(value)
    if isinstance(value, int):  # a subclass (IntEnum): store the plain value
        return int.__int__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if depth >= MAX_DEPTH:
        raise NotJSON(path, f"nested deeper than {MAX_DEPTH} levels (or contains itself)")
    if isinstance(value, dict):
        copied: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotJSON(path, f"key {key!r} is not a str")
            copied[str(key)] = json_copy(item, f"{path}[{key!r}]", depth + 1)
        return copied
    if isinstance(value, list | tuple):
        return [json_copy(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise NotJSON(path, f"a {type(value).__name__} is not JSON")


def _plain_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_copy(item) for item in value]
    return value
