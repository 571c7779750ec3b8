"""One step of a pipeline: :class:`PipelineStep` (the fields every step has) and
:class:`Fallback` (what runs when a step with ``on_error: fallback`` fails).

A step keeps the fields of its type as they are (``extra="allow"``); the step type's
``validate`` checks them. The fields every step has are handled by the executor:
``when`` and ``condition`` (run or skip), ``on_error`` and ``fallback``, ``provider`` and
``model``, ``output_to_file`` (write the output under the output directory) and
``output_schema`` (check the output against a JSON Schema).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias

import jsonschema  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from otpy.errors import StepValidationError
from otpy.expr import compile_condition
from otpy.pipelines._inputs import shown

__all__ = [
    "LITERAL_FIELDS",
    "NAME_PATTERN",
    "NOT_TEMPLATES",
    "Fallback",
    "OnError",
    "PipelineStep",
    "check_name",
    "template_fields",
]

NAME_PATTERN: Final = r"^\S(?:[^\x00-\x1f\x7f]*\S)?$"
"""What pipeline and step names look like: printable text without surrounding spaces."""
_NAME: Final = re.compile(NAME_PATTERN)
MAX_NAME: Final = 200

OnError: TypeAlias = Literal["fail", "continue", "fallback"]

NOT_TEMPLATES: Final = frozenset(
    {"name", "type", "description", "when", "on_error", "fallback", "condition", "output_schema"}
)
LITERAL_FIELDS: Final = {
    "pipeline": frozenset({"pipeline"}),
    "for_loop": frozenset({"steps", "break_condition", "continue_condition"}),
    "while_loop": frozenset({"steps"}),
}
"""Fields of a step type that hold no templates of this pipeline: an inline pipeline has
its own (checked when it runs), a loop's ``steps`` are rendered as each of them runs."""


def template_fields(step_type: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a step config whose strings are templates of the pipeline."""
    literal = LITERAL_FIELDS.get(step_type, frozenset())
    return {k: v for k, v in config.items() if k not in NOT_TEMPLATES and k not in literal}


def check_name(kind: str, value: Any) -> str:
    """``value`` if it is a valid pipeline or step name (printable text, no surrounding
    spaces, at most 200 characters); ValueError saying what is wrong otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"{kind} name must be a string, got {type(value).__name__} {shown(value)}")
    if not value or _NAME.fullmatch(value) is None or len(value) > MAX_NAME:
        raise ValueError(
            f"{kind} name {shown(value)} must be 1 to {MAX_NAME} printable characters, "
            "not starting or ending with a space"
        )
    return value


class Fallback(BaseModel):
    """What runs when a step with ``on_error: fallback`` fails: another ``step`` (named
    ``<name>.fallback`` unless it has a name), the same step on another ``provider``, or a
    fallback pipeline: ``{pipeline: path, inputs: {...}}`` is short for a step of type
    ``pipeline`` (relative paths are relative to this pipeline's file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step: PipelineStep | None = Field(default=None, description="A whole step to run instead.")
    provider: str | None = Field(
        default=None, min_length=1, description="Run the step on this provider."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Fallback:
        if (self.step is None) == (self.provider is None):
            raise ValueError("give exactly one of step (a step) or provider (a provider name)")
        return self


def _name_optional(schema: dict[str, Any]) -> None:
    """JSON Schema: a fallback step may omit its name (``Pipeline`` requires it of steps)."""
    schema["required"] = [field for field in schema.get("required", ()) if field != "name"]


class PipelineStep(BaseModel):
    """One step: ``name``, ``type`` and the type's own fields (kept as they are), with
    ``when`` (a ``{{ path }}``; a false, 0, empty or null value skips the step),
    ``condition`` (pipeline_ex's condition expression; false skips the step), ``on_error``
    (``fail``, ``continue`` or ``fallback`` with a ``fallback``), ``output_to_file`` and
    ``output_schema``."""

    model_config = ConfigDict(frozen=True, extra="allow", json_schema_extra=_name_optional)

    name: str = Field(description="Unique among its sibling steps; printable text.")
    type: str = Field(min_length=1, description="A registered step type.")
    description: str | None = None
    when: str | bool | None = Field(
        default=None, description="'{{ path }}': run only if it is truthy."
    )
    condition: Any = Field(
        default=None,
        description="A condition (text such as 'steps.check.score > 7', or and/or/not "
        "mappings): the step runs only if it holds.",
    )
    on_error: OnError = Field(default="fail", description="What a failure of this step does.")
    fallback: Fallback | None = Field(
        default=None, description="Required iff on_error is fallback."
    )
    provider: str | None = Field(
        default=None, description="The provider to use (else the default)."
    )
    model: str | None = Field(default=None, description="The model to use (else the default).")
    output_to_file: str | None = Field(
        default=None,
        min_length=1,
        description="Write the output to this file under the output directory.",
    )
    output_schema: dict[str, Any] | None = Field(
        default=None, description="A JSON Schema the output must match."
    )

    @field_validator("name", mode="before")
    @classmethod
    def _printable_name(cls, value: Any) -> Any:
        return check_name("a step", value)

    @model_validator(mode="before")
    @classmethod
    def _name_the_fallback_step(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        fallback = data.get("fallback")
        if not isinstance(fallback, Mapping):
            return data
        if "pipeline" in fallback and "step" not in fallback:
            step = {"type": "pipeline", "pipeline": fallback["pipeline"]}
            if "inputs" in fallback:
                step["inputs"] = fallback["inputs"]
            rest = {k: v for k, v in fallback.items() if k not in ("pipeline", "inputs")}
            fallback = {**rest, "step": step}
            data = {**data, "fallback": fallback}
        inner = fallback.get("step")
        if isinstance(inner, Mapping) and "name" not in inner and isinstance(data.get("name"), str):
            step = {"name": f"{data['name']}.fallback", **inner}
            return {**data, "fallback": {**fallback, "step": step}}
        return data

    @field_validator("when", mode="before")
    @classmethod
    def _when_is_text_or_bool(cls, value: Any) -> Any:
        if value is None or isinstance(value, str | bool):
            return value
        raise ValueError(
            "must be a template such as '{{ steps.check.output.ok }}' or true/false, got "
            f"{type(value).__name__} {shown(value)}"
        )

    @field_validator("output_schema")
    @classmethod
    def _a_json_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is None:
            return None
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.exceptions.SchemaError as exc:
            raise ValueError(f"is not a valid JSON Schema: {exc.message}") from None
        return schema

    @model_validator(mode="after")
    def _checked(self) -> PipelineStep:
        if self.condition is not None:
            compile_condition(self.condition, step=self.name)
        if self.on_error == "fallback" and self.fallback is None:
            raise StepValidationError(
                "is required when on_error is 'fallback': give {step: {...}} or {provider: <name>}",
                step=self.name,
                field="fallback",
            )
        if self.on_error != "fallback" and self.fallback is not None:
            raise StepValidationError(
                f"is only used with on_error: fallback (on_error is {self.on_error!r})",
                step=self.name,
                field="fallback",
            )
        return self

    @property
    def fields(self) -> dict[str, Any]:
        """The step type's own fields (everything but the common ones), a deep copy."""
        return copy.deepcopy(dict(self.model_extra or {}))

    @property
    def config(self) -> dict[str, Any]:
        """The step as written: name, type, the common fields it sets and its own fields
        (a new dict; no pipeline defaults: see ``Pipeline.step_config``)."""
        dumped = self.model_dump(exclude_unset=True)
        return {"name": self.name, "type": self.type, **dumped}


Fallback.model_rebuild()
