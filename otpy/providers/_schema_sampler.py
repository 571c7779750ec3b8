"""The JSON Schema sampler behind ``sample_instance`` (see ``_schema_sample``): one
recursive walk of the schema, every choice drawn from the given random source."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Mapping
from fractions import Fraction
from typing import Any
from urllib.parse import unquote

from otpy.providers._schema_keywords import (
    _ARRAY,
    _BESIDE_COMBINATOR,
    _KNOWN,
    _MAX_DEPTH,
    _MAX_SIZE,
    _NUMERIC,
    _OBJECT,
    _SHALLOW,
    _STRING,
    _TYPES,
    _WORDS,
    FORMATS,
    UnsupportedSchema,
    _canonical,
    _has_type,
    _is_number,
)

__all__ = ["FORMATS", "UnsupportedSchema"]


class _Sampler:
    def __init__(self, root: Any, rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def sample(self, schema: Any, path: str, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise UnsupportedSchema(
                f"nesting deeper than {_MAX_DEPTH} levels (no finite instance found)", path
            )
        if schema is True:
            return self._any()
        if schema is False:
            raise UnsupportedSchema("the schema false (no value is valid)", path)
        if not isinstance(schema, Mapping):
            raise UnsupportedSchema(f"a schema that is a {type(schema).__name__}", path)
        for key in schema:
            if key not in _KNOWN:
                raise UnsupportedSchema(f"keyword {key!r}", path)
        if "$ref" in schema:
            self._alone(schema, "$ref", path)
            target, where = self.resolve(schema["$ref"], path)
            return self.sample(target, where, depth + 1)
        for key in ("anyOf", "oneOf", "allOf"):
            if key in schema:
                return self._combinator(schema, key, path, depth)
        if schema.get("nullable") is True and (depth >= _SHALLOW or self.rng.random() < 0.2):
            return None
        types = self._types(schema, path)
        if "const" in schema:
            return self._constant(schema["const"], types, "const", path)
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise UnsupportedSchema("an 'enum' that is not a non-empty list", path)
            allowed = [v for v in values if types is None or _has_type(v, types)]
            if not allowed:
                raise UnsupportedSchema(f"no 'enum' value has the type {types}", path)
            return self.rng.choice(allowed)
        if types is None:
            types = self._implied_types(schema)
        if "null" in types and len(types) > 1 and depth >= _SHALLOW:
            return None
        kind = self.rng.choice(types)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return getattr(self, f"_{kind}")(schema, path, depth)  # _object, _array, _string, ...

    def resolve(self, ref: Any, path: str) -> tuple[Any, str]:
        """The schema a local ``$ref`` points to, and its path."""
        text = ref if isinstance(ref, str) and ref.startswith("#/") else "#/"
        parts = [unquote(p).replace("~1", "/").replace("~0", "~") for p in text[2:].split("/")]
        if len(parts) < 2 or parts[0] not in ("$defs", "definitions"):
            raise UnsupportedSchema(
                f"$ref {ref!r} (only #/$defs/... and #/definitions/... are resolved)", path
            )
        node = self.root
        for part in parts:
            if not isinstance(node, Mapping) or part not in node:
                raise UnsupportedSchema(f"$ref {ref!r} to a definition that does not exist", path)
            node = node[part]
        return node, ref

    def _alone(self, schema: Mapping[str, Any], key: str, path: str) -> None:
        for other in schema:
            if other != key and other not in _BESIDE_COMBINATOR:
                raise UnsupportedSchema(f"keyword {other!r} beside {key!r}", path)

    def _combinator(self, schema: Mapping[str, Any], key: str, path: str, depth: int) -> Any:
        self._alone(schema, key, path)
        branches = schema[key]
        if not isinstance(branches, list) or not branches:
            raise UnsupportedSchema(f"{key!r} that is not a non-empty list", path)
        if key == "allOf":
            if len(branches) != 1:
                raise UnsupportedSchema(f"'allOf' of {len(branches)} schemas (one is)", path)
            index = 0
        elif depth >= _SHALLOW:  # head for the branch most likely to end the recursion
            index = min(range(len(branches)), key=lambda i: _weight(branches[i]))
        else:
            index = self.rng.randrange(len(branches))
        return self.sample(branches[index], f"{path}/{key}/{index}", depth + 1)

    def _types(self, schema: Mapping[str, Any], path: str) -> list[str] | None:
        declared = schema.get("type")
        if declared is None:
            return None
        types = [declared] if isinstance(declared, str) else declared
        if not isinstance(types, list) or not types:
            raise UnsupportedSchema(f"type {declared!r}", path)
        for name in types:
            if name not in _TYPES:
                raise UnsupportedSchema(f"type {name!r}", path)
        return list(dict.fromkeys(types))

    def _implied_types(self, schema: Mapping[str, Any]) -> list[str]:
        keys = set(schema)
        for group, kind in ((_OBJECT, "object"), (_ARRAY, "array"), (_STRING, "string")):
            if keys & group:
                return [kind]
        if keys & _NUMERIC:
            return ["number"]
        return ["string", "integer", "boolean"]

    def _constant(self, value: Any, types: list[str] | None, key: str, path: str) -> Any:
        if types is not None and not _has_type(value, types):
            raise UnsupportedSchema(f"{key!r} {value!r} that is not of type {types}", path)
        return value

    def _any(self) -> Any:
        r = self.rng
        return (r.choice(_WORDS), r.randint(0, 100), r.random() < 0.5)[r.randrange(3)]

    def _size(self, schema: Mapping[str, Any], key: str, path: str) -> int | None:
        value = schema.get(key)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise UnsupportedSchema(f"{key} {value!r} (a non-negative integer is needed)", path)
        if key.startswith("min") and value > _MAX_SIZE:
            raise UnsupportedSchema(f"{key} {value} (at most {_MAX_SIZE} is supported)", path)
        return value

    def _object(self, schema: Mapping[str, Any], path: str, depth: int) -> dict[str, Any]:
        props = schema.get("properties", {})
        required = schema.get("required", [])
        extra = schema.get("additionalProperties", True)
        if not isinstance(props, Mapping):
            raise UnsupportedSchema("'properties' that is not an object", path)
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise UnsupportedSchema("'required' that is not a list of names", path)
        if not isinstance(extra, bool | Mapping):
            raise UnsupportedSchema("'additionalProperties' that is not a schema", path)
        shallow = depth >= _SHALLOW
        out: dict[str, Any] = {}
        for name, sub in props.items():
            if name in required or (not shallow and self.rng.random() < 0.6):
                where = f"{path}/properties/{name.replace('~', '~0').replace('/', '~1')}"
                out[name] = self.sample(sub, where, depth + 1)
        for name in required:
            if name in out:
                continue
            if extra is False:
                raise UnsupportedSchema(
                    f"required property {name!r} that additionalProperties: false forbids", path
                )
            out[name] = self.sample(extra, f"{path}/additionalProperties", depth + 1)
        if isinstance(extra, Mapping) and not props and not shallow:
            for i in range(1, self.rng.randint(1, 2) + 1):
                out.setdefault(
                    f"key_{i}", self.sample(extra, f"{path}/additionalProperties", depth + 1)
                )
        return out

    def _array(self, schema: Mapping[str, Any], path: str, depth: int) -> list[Any]:
        items = schema.get("items", True)
        if isinstance(items, list):
            raise UnsupportedSchema("'items' as a list (tuple validation)", path)
        low = self._size(schema, "minItems", path) or 0
        high = self._size(schema, "maxItems", path)
        if high is not None and high < low:
            raise UnsupportedSchema(f"maxItems {high} below minItems {low}", path)
        count = low if depth >= _SHALLOW else max(low, self.rng.randint(1, 3))
        if high is not None:
            count = min(count, high)
        if items is False:
            if low:
                raise UnsupportedSchema(f"'items': false with minItems {low}", path)
            return []
        where = f"{path}/items"
        if schema.get("uniqueItems") is not True:
            return [self.sample(items, where, depth + 1) for _ in range(count)]
        out: list[Any] = []
        seen: set[str] = set()
        for _ in range(10 * count + 10):
            if len(out) >= count:
                break
            value = self.sample(items, where, depth + 1)
            key = _canonical(value)
            if key not in seen:
                seen.add(key)
                out.append(value)
        if len(out) < low:
            raise UnsupportedSchema(
                f"uniqueItems with minItems {low} (found {len(out)} distinct items)", path
            )
        return out

    def _string(self, schema: Mapping[str, Any], path: str, depth: int) -> str:
        low = self._size(schema, "minLength", path) or 0
        high = self._size(schema, "maxLength", path)
        if high is not None and high < low:
            raise UnsupportedSchema(f"maxLength {high} below minLength {low}", path)
        fmt = schema.get("format")
        if fmt is not None:
            if fmt not in FORMATS:
                raise UnsupportedSchema(f"format {fmt!r}", path)
            value = self._formatted(fmt)
            if len(value) < low or (high is not None and len(value) > high):
                raise UnsupportedSchema(f"format {fmt!r} with minLength/maxLength", path)
            return value
        text = " ".join(self.rng.choice(_WORDS) for _ in range(self.rng.randint(1, 3)))
        while len(text) < low:
            text += " " + self.rng.choice(_WORDS)
        return text if high is None else text[:high]

    def _formatted(self, fmt: str) -> str:
        r = self.rng
        date = f"{r.randint(2020, 2026):04d}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        clock = f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"
        word = r.choice(_WORDS)
        values = {
            "date-time": f"{date}T{clock}Z",
            "date": date,
            "time": f"{clock}Z",
            "duration": f"PT{r.randint(1, 12)}H{r.randint(0, 59)}M",
            "email": f"{word}@example.com",
            "uri": f"https://example.com/{word}",
            "uuid": str(uuid.UUID(int=r.getrandbits(128), version=4)),
            "hostname": f"{word}.example.com",
            "ipv4": f"192.0.2.{r.randint(1, 254)}",
            "ipv6": f"2001:db8::{r.randint(1, 0xFFFF):x}",
        }
        return values[fmt]

    def _bounds(
        self, schema: Mapping[str, Any], path: str
    ) -> tuple[float | None, bool, float | None, bool]:
        """(low, low exclusive, high, high exclusive) from every bound keyword present."""
        bounds: list[tuple[float | None, bool]] = []
        for inclusive, exclusive, sign in (
            ("minimum", "exclusiveMinimum", 1),
            ("maximum", "exclusiveMaximum", -1),
        ):
            best: float | None = None
            strict = False
            for key in (inclusive, exclusive):
                value = schema.get(key)
                if value is None or isinstance(value, bool):
                    continue
                if not _is_number(value):
                    raise UnsupportedSchema(f"{key} {value!r} (a finite number is needed)", path)
                is_strict = key == exclusive
                if best is None or value * sign > best * sign:
                    best, strict = value, is_strict
                elif value == best:
                    strict = strict or is_strict
            if best is not None and best == schema.get(inclusive) and schema.get(exclusive) is True:
                strict = True  # draft 4: a boolean exclusiveMinimum/Maximum
            bounds.append((best, strict))
        (low, low_x), (high, high_x) = bounds
        return low, low_x, high, high_x

    def _multiple(self, schema: Mapping[str, Any], path: str) -> Fraction | None:
        value = schema.get("multipleOf")
        if value is None:
            return None
        if not _is_number(value) or value <= 0:
            raise UnsupportedSchema(f"multipleOf {value!r} (a positive number is needed)", path)
        return Fraction(repr(value))

    def _integer(self, schema: Mapping[str, Any], path: str, depth: int) -> int:
        low_f, low_x, high_f, high_x = self._bounds(schema, path)
        low = None if low_f is None else math.floor(low_f) + 1 if low_x else math.ceil(low_f)
        high = None if high_f is None else math.ceil(high_f) - 1 if high_x else math.floor(high_f)
        if low is None:
            low = 0 if high is None else high - 100
        if high is None:
            high = low + 100
        step = self._multiple(schema, path)
        if step is not None:
            if step.denominator != 1:
                raise UnsupportedSchema(f"multipleOf {float(step)} on an integer", path)
            k_low, k_high = -((-low) // step.numerator), high // step.numerator
            if k_low > k_high:
                raise UnsupportedSchema("no multiple of multipleOf between the bounds", path)
            return self.rng.randint(k_low, k_high) * step.numerator
        if low > high:
            raise UnsupportedSchema(f"an empty integer range [{low}, {high}]", path)
        return self.rng.randint(low, high)

    def _number(self, schema: Mapping[str, Any], path: str, depth: int) -> float:
        low, low_x, high, high_x = self._bounds(schema, path)
        if low is None:
            low = 0.0 if high is None else high - 100.0
        if high is None:
            high = low + 100.0
        lo, hi = low, high

        def fits(x: float) -> bool:
            above = x > lo if low_x else x >= lo
            below = x < hi if high_x else x <= hi
            return above and below and math.isfinite(x)

        step = self._multiple(schema, path)
        if step is not None:
            k_low = math.ceil(Fraction(lo) / step)
            k_high = math.floor(Fraction(hi) / step)
            if low_x and k_low * step == lo:
                k_low += 1
            if high_x and k_high * step == hi:
                k_high -= 1
            if k_low <= k_high:
                value = float(self.rng.randint(k_low, k_high) * step)
                if fits(value):
                    return value
            raise UnsupportedSchema("no multiple of multipleOf between the bounds", path)
        u = self.rng.random()
        value = lo + u * (hi - lo)
        if not math.isfinite(value):
            value = lo * (1 - u) + hi * u
        for candidate in (round(value, 2), value, lo / 2 + hi / 2, lo):
            if fits(candidate):
                return float(candidate)
        raise UnsupportedSchema(f"an empty number range between {lo} and {hi}", path)


def _weight(schema: Any) -> int:
    """How likely a branch is to recurse: null first, then plain leaves, then the rest."""
    if not isinstance(schema, Mapping):
        return 1
    if schema.get("type") == "null":
        return 0
    return 2 if {"$ref", "anyOf", "oneOf", "properties", "items"} & set(schema) else 1
