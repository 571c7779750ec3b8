"""The pipeline schema (pydantic, frozen) and the checks run before a pipeline runs.

::

    name: qa
    inputs: {question: {type: string}, style: {type: string, default: brief}}
    defaults: {provider: simulated, options: {temperature: 0.2}}
    steps:
      - {name: answer, type: claude, prompt: "{{ inputs.question }}", on_error: continue}
    outputs: {answer: "{{ steps.answer.output }}"}

A step keeps the fields of its type as they are (``extra="allow"``); the step type's
``validate`` checks them (``Pipeline.step_config`` gives the config it gets).
:func:`check_references` checks every template of a pipeline against its steps and inputs.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from otpy.compat import MigrationResult, parse_requirement
from otpy.errors import ConfigurationError, StepValidationError
from otpy.steps import COMMON_FIELDS

__all__ = [
    "NAME_PATTERN",
    "Defaults",
    "Fallback",
    "InputSpec",
    "InputType",
    "OnError",
    "Pipeline",
    "PipelineStep",
]

NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"
"""What pipeline and step names look like."""
_INPUT_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")

InputType: TypeAlias = Literal["string", "integer", "number", "boolean", "list", "object", "any"]
OnError: TypeAlias = Literal["fail", "continue", "fallback"]

_TYPES: Final[dict[str, tuple[str, Callable[[Any], bool]]]] = {
    "string": ("a string", lambda v: isinstance(v, str)),
    "integer": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "number": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "boolean": ("a boolean", lambda v: isinstance(v, bool)),
    "list": ("a list", lambda v: isinstance(v, list | tuple)),
    "object": ("a mapping", lambda v: isinstance(v, Mapping)),
    "any": ("any value", lambda v: True),
}
NOT_TEMPLATES: Final = frozenset({"name", "type", "description", "when", "on_error", "fallback"})
LITERAL_FIELDS: Final = {"pipeline": frozenset({"pipeline"})}
"""Fields of a step type that hold no templates of this pipeline: a ``pipeline`` step's
inline pipeline has its own inputs and steps (checked when it runs)."""


def template_fields(step_type: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a step config whose strings are templates of the pipeline."""
    literal = LITERAL_FIELDS.get(step_type, frozenset())
    return {k: v for k, v in config.items() if k not in NOT_TEMPLATES and k not in literal}


def shown(value: Any) -> str:
    """``repr(value)``, cut to 80 characters (for error messages)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _name_problem(kind: str, name: object) -> str | None:
    if isinstance(name, str) and _INPUT_NAME.fullmatch(name):
        return None
    return (
        f"{kind} name {shown(name)} must start with a letter or '_' and hold only letters, "
        "digits, '_' and '-'"
    )


class InputSpec(BaseModel):
    """One pipeline input. Without a ``default`` it is required, unless ``required:
    false`` (then it is None when not given)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: InputType = Field(default="any", description="The type a given value must have.")
    default: Any = Field(
        default=None, description="The value when none is given (makes it optional)."
    )
    required: bool | None = Field(
        default=None, description="Default: required unless it has a default."
    )
    description: str | None = None

    @field_validator("default")
    @classmethod
    def _default_has_the_type(cls, value: Any, info: ValidationInfo) -> Any:
        problem = _type_problem(info.data.get("type", "any"), value)
        if value is not None and problem is not None:
            raise ValueError(f"the default {problem}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _empty_is_any(cls, data: Any) -> Any:
        return {} if data is None else data  # `question:` with nothing under it

    @model_validator(mode="after")
    def _not_required_and_defaulted(self) -> InputSpec:
        if self.required and self.has_default:
            raise ValueError("has a default, so it cannot be required: drop one of the two")
        return self

    @property
    def has_default(self) -> bool:
        """Whether a default was given (``default: null`` counts)."""
        return "default" in self.model_fields_set

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else not self.has_default

    def describe(self) -> str:
        """``string, default 'brief'`` / ``integer, required`` (for messages)."""
        if self.has_default:
            return f"{self.type}, default {shown(self.default)}"
        return f"{self.type}, {'required' if self.is_required else 'optional'}"


def _type_problem(kind: str, value: Any) -> str | None:
    """None if ``value`` has type ``kind``, else ``must be a string, got int 3``."""
    wanted, accepts = _TYPES[kind]
    if accepts(value):
        return None
    return f"must be {wanted}, got {type(value).__name__} {shown(value)}"


class Defaults(BaseModel):
    """Applied to every step lacking them: ``provider``, ``model``, and ``options`` (step
    fields such as ``temperature``; only to steps whose type has that field); ``failover``
    says whether a failing provider's calls move to another capable provider."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str | None = Field(default=None, min_length=1, description="Default provider name.")
    model: str | None = Field(default=None, min_length=1, description="Default model name.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Default step fields, e.g. {temperature: 0.2}."
    )
    failover: bool = Field(
        default=True,
        description="When a provider fails, move the call to another provider with the "
        "capabilities it needs (false: fail with the step's provider).",
    )

    @field_validator("options")
    @classmethod
    def _options_are_step_fields(cls, options: dict[str, Any]) -> dict[str, Any]:
        common = sorted(COMMON_FIELDS.intersection(options))
        if common:
            raise ValueError(
                f"{', '.join(map(repr, common))} cannot be options: options are default "
                "values of a step type's own fields (provider and model have their own "
                "defaults)"
            )
        return options


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


def _steps_named(schema: dict[str, Any]) -> None:
    schema["properties"]["steps"]["items"]["required"] = ["name"]


class PipelineStep(BaseModel):
    """One step: ``name``, ``type`` and the type's own fields (kept as they are), with
    ``when`` (a ``{{ path }}``; a false, 0, empty or null value skips the step) and
    ``on_error`` (``fail``, ``continue`` or ``fallback`` with a ``fallback``)."""

    model_config = ConfigDict(frozen=True, extra="allow", json_schema_extra=_name_optional)

    name: str = Field(pattern=NAME_PATTERN, description="Unique within the pipeline.")
    type: str = Field(min_length=1, description="A registered step type.")
    description: str | None = None
    when: str | bool | None = Field(
        default=None, description="'{{ path }}': run only if it is truthy."
    )
    on_error: OnError = Field(default="fail", description="What a failure of this step does.")
    fallback: Fallback | None = Field(
        default=None, description="Required iff on_error is fallback."
    )
    provider: str | None = Field(
        default=None, description="The provider to use (else the default)."
    )
    model: str | None = Field(default=None, description="The model to use (else the default).")

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

    @model_validator(mode="after")
    def _fallback_iff_on_error_fallback(self) -> PipelineStep:
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


class Pipeline(BaseModel):
    """A pipeline: named, ordered steps with inputs, defaults and outputs.

    Build one with ``otpy.pipelines.load_pipeline`` (YAML file or text, or a dict): it
    migrates legacy configs, turns validation errors into StepValidationError naming the
    step, the field and the file position, and runs :func:`check_references`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_steps_named)

    name: str = Field(pattern=NAME_PATTERN, description="The pipeline's name.")
    description: str | None = None
    version: str | None = Field(default=None, description="The pipeline's own version (a string).")
    requires: dict[str, str] = Field(
        default_factory=dict,
        description="Step type -> version requirement, e.g. {claude: '>=1.0'}.",
    )
    inputs: dict[str, InputSpec] = Field(default_factory=dict, description="Input name -> spec.")
    defaults: Defaults = Field(default_factory=lambda: Defaults())
    steps: tuple[PipelineStep, ...] = Field(
        description="Run in this order.", json_schema_extra={"minItems": 1}
    )
    outputs: dict[str, str] = Field(
        default_factory=dict, description="Output name -> template, e.g. '{{ steps.a.output }}'."
    )

    _migration: MigrationResult | None = PrivateAttr(default=None)
    _source: tuple[str, str | None, Mapping[str, Any]] | None = PrivateAttr(default=None)

    @field_validator("requires")
    @classmethod
    def _requirements_parse(cls, requires: dict[str, str]) -> dict[str, str]:
        for step_type, requirement in requires.items():
            try:
                parse_requirement(requirement, step=step_type)
            except StepValidationError as exc:
                detail = str(exc).removeprefix(f"step {exc.step!r}, field {exc.field!r}: ")
                raise StepValidationError(detail, field=f"requires.{step_type}") from None
        return requires

    @field_validator("inputs", "outputs")
    @classmethod
    def _names(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        kind = "an input" if info.field_name == "inputs" else "an output"
        for name in value:
            problem = _name_problem(kind, name)
            if problem is not None:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _steps_named_once(self) -> Pipeline:
        if not self.steps:
            raise StepValidationError("must list at least one step", field="steps")
        first: dict[str, int] = {}
        for index, step in enumerate(self.steps):
            if step.name in first:
                raise StepValidationError(
                    f"duplicate step name: steps[{first[step.name]}] and steps[{index}] are "
                    f"both {step.name!r}",
                    step=step.name,
                    field="name",
                )
            first[step.name] = index
        return self

    @property
    def migration(self) -> MigrationResult | None:
        """The migration report if this pipeline was migrated from a legacy config."""
        return self._migration

    def __eq__(self, other: object) -> bool:
        """Equal when the fields are: where it was loaded from does not count."""
        if not isinstance(other, Pipeline):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = BaseModel.__hash__

    @property
    def source(self) -> tuple[str, str | None, Mapping[str, Any]] | None:
        """Where it was loaded from: the label (a path, ``<text>`` or ``<dict>``), the
        YAML text (None for a dict) and the config as loaded; None if built directly."""
        return self._source

    @property
    def base_dir(self) -> Path | None:
        """The directory of the file it was loaded from (None if not from a file)."""
        if self._source is None or self._source[0] in ("<text>", "<dict>"):
            return None
        return Path(self._source[0]).resolve().parent

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.steps)

    def step(self, name: str) -> PipelineStep:
        """The step called ``name``; ConfigurationError listing the steps if none is."""
        for step in self.steps:
            if step.name == name:
                return step
        raise ConfigurationError(
            f"pipeline {self.name!r} has no step {name!r} (steps: {', '.join(self.step_names)})"
        )

    def step_config(
        self, step: PipelineStep | str, *, accepted: Collection[str] | None = None
    ) -> dict[str, Any]:
        """``step``'s config with the pipeline defaults applied, ready for
        ``StepRegistry.validate_step``: ``provider``, ``model`` and each option the step
        does not set (a field set to null stays null: an opt-out). Options go only to
        fields in ``accepted`` (the step type's fields) when it is given. A new dict."""
        spec = self.step(step) if isinstance(step, str) else step
        config = spec.config
        defaults = self.defaults
        for key, value in (("provider", defaults.provider), ("model", defaults.model)):
            if key not in config and value is not None:
                config[key] = value
        for key, value in defaults.options.items():
            if key not in config and (accepted is None or key in accepted):
                config[key] = copy.deepcopy(value)
        return config

    def resolve_inputs(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The run's inputs: ``given`` checked strictly against the declared types (no
        coercion; None only where the default is None), defaults (copies) filled in,
        optional inputs without a default None.

        Raises ConfigurationError naming the unknown inputs (and listing the declared
        ones), the missing required ones, or the input of the wrong type and what it needs.
        """
        if not isinstance(given, Mapping):
            raise ConfigurationError(
                f"pipeline {self.name!r}: inputs must be a mapping, got {type(given).__name__}"
            )
        declared = ", ".join(f"{n} ({s.describe()})" for n, s in self.inputs.items()) or "none"
        unknown = [str(name) for name in given if name not in self.inputs]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(self.inputs), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(
                f"pipeline {self.name!r}: unknown input{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}{hint} (inputs: {declared})"
            )
        missing = [n for n, spec in self.inputs.items() if spec.is_required and n not in given]
        if missing:
            which = ", ".join(f"{n!r} ({self.inputs[n].type})" for n in missing)
            verb = "is" if len(missing) == 1 else "are"
            raise ConfigurationError(f"pipeline {self.name!r}: input {which} {verb} required")
        resolved: dict[str, Any] = {}
        for name, spec in self.inputs.items():
            if name not in given:
                resolved[name] = copy.deepcopy(spec.default)
                continue
            value = given[name]
            problem = _type_problem(spec.type, value)
            optional_none = value is None and spec.default is None and not spec.is_required
            if problem is not None and not optional_none:
                raise ConfigurationError(f"pipeline {self.name!r}: input {name!r} {problem}")
            resolved[name] = value
        return resolved
