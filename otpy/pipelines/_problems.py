"""Validation errors of a pipeline config as StepValidationErrors naming the step (its name,
else ``steps[<index>]``) and the field, with a message a person can act on."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, Final

import pydantic

from otpy.errors import StepValidationError
from otpy.pipelines._inputs import InputSpec
from otpy.pipelines._schema import Defaults, Pipeline
from otpy.pipelines._step_schema import Fallback

__all__ = ["copy_error", "from_pydantic", "shown"]

_MODELS: Final[dict[str, type[pydantic.BaseModel]]] = {
    "pipeline": Pipeline,
    "defaults": Defaults,
    "fallback": Fallback,
    "input": InputSpec,
}


def shown(value: Any) -> str:
    """``repr(value)``, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _dotted(parts: Sequence[Any]) -> str | None:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def _step_label(config: Mapping[str, Any], index: int) -> str:
    steps = config.get("steps")
    step = steps[index] if isinstance(steps, list) and index < len(steps) else None
    name = step.get("name") if isinstance(step, Mapping) else None
    return name if isinstance(name, str) and name else f"steps[{index}]"


def _unknown_field(loc: tuple[Any, ...]) -> str:
    parent = loc[:-1]
    if not parent:
        kind = "pipeline"
    elif parent == ("defaults",):
        kind = "defaults"
    elif parent[-1] == "fallback":
        kind = "fallback"
    else:
        kind = "input"
    fields = list(_MODELS[kind].model_fields)
    close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    if kind == "defaults" and not close:
        hint = "; defaults of step fields go under options"
    article = "an" if kind == "input" else "a"
    return f"not {article} {kind} field{hint} (fields: {', '.join(fields)})"


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    got = f", got {type(value).__name__} {shown(value)}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return _unknown_field(tuple(error["loc"]))
    if kind == "string_type":
        quote = isinstance(value, int | float) and not isinstance(value, bool)
        return f"must be a string{got}" + ("; quote it in YAML" if quote else "")
    if kind == "string_pattern_mismatch":
        return f"must start with a letter or '_' and hold only letters, digits, '_', '.', '-'{got}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, got {shown(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping{got}"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list{got}"
    if kind == "invalid_key":
        return f"field names must be strings, got {type(value).__name__} {shown(value)}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false{got}"
    if kind in ("value_error", "assertion_error") and ctx.get("error") is not None:
        return str(ctx["error"])
    return f"{error['msg']}{got}"


def copy_error(exc: StepValidationError, message: str) -> StepValidationError:
    """A StepValidationError with ``message`` as its whole text and ``exc``'s step/field."""
    new = StepValidationError(message)
    new.step, new.field = exc.step, exc.field
    return new


def from_pydantic(exc: pydantic.ValidationError, config: Mapping[str, Any]) -> StepValidationError:
    errors = exc.errors()
    first = errors[0]
    more = len(errors) - 1
    extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, StepValidationError):
        return copy_error(cause, f"{cause}{extra}")
    loc = tuple(first["loc"])
    if first["type"] == "invalid_key":
        loc = loc[:-1]  # the key itself is not a field
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        step: str | None = _step_label(config, loc[1])
        field = _dotted(loc[2:])
    else:
        step, field = None, _dotted(loc)
    return StepValidationError(_message(first) + extra, step=step, field=field)
