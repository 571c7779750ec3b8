"""Deterministic instances of a JSON Schema, for the simulated provider's structured output.

``sample_instance(schema, rng)`` builds one value valid for ``schema``, drawing every
choice from ``rng`` (same schema, same seed → same value). Supported: ``type`` (a name or a
list), ``enum``, ``const``, ``anyOf``/``oneOf`` (one branch is picked), ``allOf`` with one
schema, ``$ref`` to ``#/$defs/...`` or ``#/definitions/...`` (recursion allowed while a
finite instance exists), ``nullable``; objects (``properties``, ``required``,
``additionalProperties``), arrays (``items``, ``minItems``, ``maxItems``, ``uniqueItems``),
strings (``minLength``, ``maxLength``, a few ``format``\\ s), integers and numbers
(``minimum``, ``maximum``, ``exclusiveMinimum``/``exclusiveMaximum`` in both the number
and the draft-4 boolean form, ``multipleOf``), booleans, null, and annotations (title,
description, default, ...). Anything else (``pattern``, ``not``, ``if``, ``prefixItems``,
a remote ``$ref``, an unsatisfiable range, ...) raises :class:`UnsupportedSchema` naming
the feature and where it is. ``enum``/``const`` values are taken as given: they are assumed
to satisfy their sibling keywords (only their JSON type is checked against ``type``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

from otpy.providers._schema_keywords import FORMATS, UnsupportedSchema
from otpy.providers._schema_sampler import _Sampler

__all__ = ["FORMATS", "UnsupportedSchema", "invalid_text", "sample_instance"]


def sample_instance(schema: Any, rng: random.Random) -> Any:
    """One JSON value valid for ``schema`` (a dict or a boolean schema), drawn from ``rng``.

    Pure apart from ``rng``; raises :class:`UnsupportedSchema`.
    """
    return _Sampler(schema, rng).sample(schema, "#", 0)


def invalid_text(schema: Any, instance: Any, rng: random.Random) -> str:
    """A text that is NOT a valid answer for ``schema``, shaped like an LLM's bad output.

    One of: the instance as JSON with a required property missing (when the schema's root
    is an object with required properties), the instance's JSON cut before its closing
    bracket, or prose with no JSON at all — each always fails the schema.
    """
    root = _root_object(schema)
    options = ["prose"]
    present: list[str] = []
    if root is not None and isinstance(instance, dict):
        present = [name for name in root.get("required", ()) if name in instance]
        if present:
            options.append("drop")
    dumped = json.dumps(instance)
    if dumped[:1] in ("{", "["):
        options.append("truncate")
    choice = rng.choice(options)
    if choice == "drop":
        missing = rng.choice(present)
        return json.dumps({k: v for k, v in instance.items() if k != missing})
    if choice == "truncate":
        return dumped[:-1]
    return "I'm sorry, I could not put that answer into the requested JSON format."


def _root_object(schema: Any) -> Mapping[str, Any] | None:
    """The root schema after following ``$ref``/one-schema ``allOf`` hops, if it is a plain
    schema (not a union), else None."""
    node = schema
    for _ in range(16):
        if not isinstance(node, Mapping) or "anyOf" in node or "oneOf" in node:
            return None
        if "$ref" in node:
            try:
                node = _Sampler(schema, random.Random(0)).resolve(node["$ref"], "#")[0]
            except UnsupportedSchema:
                return None
        elif isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
            node = node["allOf"][0]
        else:
            return node
    return None
