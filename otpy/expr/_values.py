"""Walking and comparing plain values the way pipeline_ex's templates and conditions do.

- :func:`dig` follows a path of keys and list indexes into mappings and lists (a digit
  segment also reads the int key; a segment into a string holding JSON reads the parsed
  JSON, so ``steps.review.score`` works when the model answered ``{"score": 8}``);
  ``length`` past the end of a path is the size of the value.
- :func:`truthy` is pipeline_ex's truthiness: None, False, ``""``, ``[]`` and ``{}`` are
  false, everything else (``0`` too) is true.
- :func:`text_of` is how a value enters text: strings as they are, mappings and lists as
  JSON, None as ``""``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = ["MISSING", "as_number", "dig", "equal", "json_in", "size", "text_of", "truthy"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()
"""What :func:`dig` gives when the path leads nowhere."""

_FENCE: Final = re.compile(r"```(?:json|JSON)?[ \t]*\n(.*?)```", re.DOTALL)
_JSON_CACHE_LIMIT: Final = 256
_json_cache: dict[str, Any] = {}
_NOT_CACHED: Final = object()


def json_in(text: str) -> Any:
    """The JSON value ``text`` holds (the whole text, else its first fenced block), or
    MISSING. Cached for the last few texts (a loop reads the same answer often)."""
    cached = _json_cache.get(text, _NOT_CACHED)
    if cached is not _NOT_CACHED:
        return cached
    found: Any = MISSING
    stripped = text.strip()
    candidates = [stripped] if stripped[:1] in ("{", "[") else []
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)][:1]
    for candidate in candidates:
        try:
            found = json.loads(candidate)
            break
        except (ValueError, RecursionError):
            continue
    if len(_json_cache) >= _JSON_CACHE_LIMIT:
        _json_cache.clear()
    _json_cache[text] = found
    return found


def size(value: Any) -> int | None:
    """The length of a string, list or mapping; None for anything else."""
    if isinstance(value, str | Mapping) or (
        isinstance(value, Sequence) and not isinstance(value, bytes)
    ):
        return len(value)
    return None


def _step(value: Any, segment: str | int) -> Any:
    if isinstance(value, str):
        value = json_in(value)  # a key of an answer that is JSON
    if isinstance(value, Mapping):
        if segment in value:
            return value[segment]
        if isinstance(segment, int) and str(segment) in value:
            return value[str(segment)]
        if isinstance(segment, str) and segment.isdigit() and int(segment) in value:
            return value[int(segment)]
        return MISSING
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        index = (
            segment if isinstance(segment, int) else (int(segment) if segment.isdigit() else None)
        )
        if index is not None and -len(value) <= index < len(value):
            return value[index]
    return MISSING


def dig(value: Any, segments: Sequence[str | int]) -> Any:
    """``value`` followed along ``segments``; MISSING where the path leads nowhere. A last
    segment ``length`` that is not a key gives the size of the value (pipeline_ex's
    ``items.length``)."""
    for position, segment in enumerate(segments):
        found = _step(value, segment)
        if found is MISSING:
            if segment == "length" and position == len(segments) - 1:
                measured = size(value)
                if measured is not None:
                    return measured
            return MISSING
        value = found
    return value


def truthy(value: Any) -> bool:
    """pipeline_ex's truthiness: None, False, MISSING, ``""``, ``[]``, ``{}`` are false."""
    if value is None or value is False or value is MISSING:
        return False
    if isinstance(value, str | list | tuple | dict):
        return len(value) > 0
    if isinstance(value, Mapping):
        return len(value) > 0
    return True


def as_number(value: Any) -> int | float | None:
    """``value`` as a number: numbers (not booleans) as they are, numeric text parsed;
    None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value if not (isinstance(value, float) and math.isnan(value)) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def equal(left: Any, right: Any) -> bool:
    """Equality as pipeline_ex compares: ``1 == 1.0``, but a boolean never equals a
    number and a string never equals a number."""
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    if isinstance(left, int | float) and isinstance(right, int | float):
        return bool(left == right)
    if type(left) is not type(right) and not (
        isinstance(left, Mapping) and isinstance(right, Mapping)
    ):
        if isinstance(left, list | tuple) and isinstance(right, list | tuple):
            return list(left) == list(right)
        return False
    return bool(left == right)


def text_of(value: Any) -> str:
    """How ``value`` enters a text: strings as they are, None as ``""``, booleans as
    ``true``/``false``, mappings and lists as JSON, anything else with ``str``."""
    if isinstance(value, str):
        return value
    if value is None or value is MISSING:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list | tuple):
        plain = dict(value) if isinstance(value, Mapping) else list(value)
        return json.dumps(plain, ensure_ascii=False, default=str)
    return str(value)
