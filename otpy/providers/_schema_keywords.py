"""The JSON Schema keywords the sampler knows, the error for those it does not, and value
checks (JSON types, JSON Schema equality)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["FORMATS", "UnsupportedSchema"]


_ANNOTATIONS = frozenset(
    {
        "title", "description", "default", "examples", "$schema", "$id", "$comment",
        "deprecated", "readOnly", "writeOnly", "discriminator", "propertyOrdering",
    }
)  # fmt: skip


_OBJECT = frozenset({"properties", "required", "additionalProperties"})
_ARRAY = frozenset({"items", "minItems", "maxItems", "uniqueItems"})


_STRING = frozenset({"minLength", "maxLength", "format"})
_NUMERIC = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})


_GENERAL = frozenset(
    {"type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions", "nullable"}
)


_KNOWN = _ANNOTATIONS | _OBJECT | _ARRAY | _STRING | _NUMERIC | _GENERAL
_BESIDE_COMBINATOR = _ANNOTATIONS | {"$defs", "definitions", "nullable"}


_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
FORMATS = frozenset(
    {"date-time", "date", "time", "duration", "email", "uri", "uuid", "hostname", "ipv4", "ipv6"}
)
"""The string ``format`` values the sampler can produce."""


_SHALLOW = 6  # from this depth on: no optional properties, shortest arrays, null if allowed
_MAX_DEPTH = 40  # deeper than this, the schema has no finite instance (or a silly one)


_MAX_SIZE = 10_000  # minLength / minItems above this are refused (memory)
_WORDS = (
    "alpha", "amber", "beacon", "cedar", "delta", "ember", "falcon", "garnet", "harbor",
    "indigo", "juniper", "kestrel", "lumen", "meadow", "nectar", "orbit", "pebble", "quartz",
    "river", "saffron", "timber", "umber", "velvet", "willow", "xenon", "yarrow", "zephyr",
)  # fmt: skip


class UnsupportedSchema(ValueError):
    """A schema feature the sampler does not support, or a schema no value satisfies.

    ``feature`` names it; ``path`` is a JSON pointer to where it is (``#/properties/a``).
    """

    def __init__(self, feature: str, path: str) -> None:
        super().__init__(f"unsupported JSON Schema feature: {feature} (at {path})")
        self.feature = feature
        self.path = path


_IS_TYPE: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: v.is_integer() if isinstance(v, float) else _IS_TYPE["number"](v),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _has_type(value: Any, types: list[str]) -> bool:
    return any(_IS_TYPE[name](value) for name in types)


def _canonical(value: Any) -> str:
    """A key equal for values JSON Schema calls equal (``1 == 1.0``, ``true != 1``)."""

    def norm(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v

    return json.dumps(norm(value), sort_keys=True)


def _is_number(value: Any) -> bool:
    """A JSON number a float can hold (bounds beyond ±1e308 are refused, not overflowed)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return abs(value) < 1e308
