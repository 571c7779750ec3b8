"""Validation errors of a pipeline config as StepValidationErrors naming the step (its name,
else ``steps[<index>]``) and the field, with a message a person can act on."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Final

import pydantic

from otpy.documents import describe, dotted, more_problems, shown
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


def copy_error(exc: StepValidationError, message: str) -> StepValidationError:
    """A StepValidationError with ``message`` as its whole text and ``exc``'s step/field."""
    new = StepValidationError(message)
    new.step, new.field = exc.step, exc.field
    return new


def from_pydantic(exc: pydantic.ValidationError, config: Mapping[str, Any]) -> StepValidationError:
    """``exc`` (a validation error of ``config``) as a StepValidationError naming the step
    (by name, else ``steps[<index>]``) and the field of its first problem."""
    first = exc.errors()[0]
    extra = more_problems(exc)
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, StepValidationError):
        return copy_error(cause, f"{cause}{extra}")
    loc = tuple(first["loc"])
    if first["type"] == "invalid_key":
        loc = loc[:-1]  # the key itself is not a field
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        step: str | None = _step_label(config, loc[1])
        field = dotted(loc[2:])
    else:
        step, field = None, dotted(loc)
    return StepValidationError(describe(first, _unknown_field) + extra, step=step, field=field)
