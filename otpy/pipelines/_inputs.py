"""A pipeline's declared inputs: :class:`InputSpec` and the strict type checks of values.

::

    inputs:
      question: {type: string, description: what to answer}
      style: {type: string, default: brief, enum: [brief, long]}
      items: {type: array}            # pipeline_ex's name for a list
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

__all__ = ["INPUT_NAME", "InputSpec", "InputType", "name_problem", "shown", "type_problem"]

INPUT_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
"""What input and output names look like (a template reads them as ``inputs.<name>``)."""

InputType: TypeAlias = Literal["string", "integer", "number", "boolean", "list", "object", "any"]

_TYPES: Final[dict[str, tuple[str, Callable[[Any], bool]]]] = {
    "string": ("a string", lambda v: isinstance(v, str)),
    "integer": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "number": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "boolean": ("a boolean", lambda v: isinstance(v, bool)),
    "list": ("a list", lambda v: isinstance(v, list | tuple)),
    "object": ("a mapping", lambda v: isinstance(v, Mapping)),
    "any": ("any value", lambda v: True),
}
_ALIASES: Final = {"array": "list", "map": "object", "dict": "object", "str": "string",
                   "int": "integer", "float": "number", "bool": "boolean"}  # fmt: skip


def shown(value: Any) -> str:
    """``repr(value)``, cut to 80 characters (for error messages)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def name_problem(kind: str, name: object) -> str | None:
    """None if ``name`` is a valid input or output name, else why not."""
    if isinstance(name, str) and INPUT_NAME.fullmatch(name):
        return None
    return (
        f"{kind} name {shown(name)} must start with a letter or '_' and hold only letters, "
        "digits, '_' and '-'"
    )


def type_problem(kind: str, value: Any) -> str | None:
    """None if ``value`` has type ``kind``, else ``must be a string, got int 3``."""
    wanted, accepts = _TYPES[kind]
    if accepts(value):
        return None
    return f"must be {wanted}, got {type(value).__name__} {shown(value)}"


class InputSpec(BaseModel):
    """One pipeline input. Without a ``default`` it is required, unless ``required:
    false`` (then it is None when not given). ``enum`` lists the values it may take."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: InputType = Field(default="any", description="The type a given value must have.")
    default: Any = Field(
        default=None, description="The value when none is given (makes it optional)."
    )
    required: bool | None = Field(
        default=None, description="Default: required unless it has a default."
    )
    description: str | None = None
    enum: tuple[Any, ...] | None = Field(default=None, description="The values it may take.")

    @model_validator(mode="before")
    @classmethod
    def _empty_is_any(cls, data: Any) -> Any:
        if data is None:
            return {}  # `question:` with nothing under it
        if isinstance(data, Mapping) and isinstance(data.get("type"), str):
            kind = data["type"].lower()
            return {**data, "type": _ALIASES.get(kind, kind)}
        return data

    @field_validator("default")
    @classmethod
    def _default_has_the_type(cls, value: Any, info: ValidationInfo) -> Any:
        problem = type_problem(info.data.get("type", "any"), value)
        if value is not None and problem is not None:
            raise ValueError(f"the default {problem}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        if self.required and self.has_default:
            raise ValueError("has a default, so it cannot be required: drop one of the two")
        if self.enum is not None:
            if not self.enum:
                raise ValueError("enum must list at least one value")
            if self.has_default and self.default is not None and self.default not in self.enum:
                raise ValueError(f"the default {shown(self.default)} is not one of enum")
        return self

    @property
    def has_default(self) -> bool:
        """Whether a default was given (``default: null`` counts)."""
        return "default" in self.model_fields_set

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else not self.has_default

    def problem(self, value: Any) -> str | None:
        """None if ``value`` fits this input (type and enum), else why not."""
        problem = type_problem(self.type, value)
        if problem is None and self.enum is not None and value not in self.enum:
            problem = f"must be one of {', '.join(map(shown, self.enum))}, got {shown(value)}"
        return problem

    def describe(self) -> str:
        """``string, default 'brief'`` / ``integer, required`` (for messages)."""
        if self.has_default:
            return f"{self.type}, default {shown(self.default)}"
        return f"{self.type}, {'required' if self.is_required else 'optional'}"
