"""The pipeline schema (pydantic, frozen): :class:`Pipeline` and its :class:`Defaults`.

::

    name: qa
    inputs: {question: {type: string}, style: {type: string, default: brief}}
    defaults: {provider: simulated, options: {temperature: 0.2}}
    steps:
      - {name: answer, type: claude, prompt: "{{ inputs.question }}", on_error: continue}
    outputs: {answer: "{{ steps.answer.output }}"}

pipeline_ex's workflow documents (``workflow:`` at the root) load into the same model: their
environment fields (``workspace_dir``, ``output_dir``, ``checkpoint_enabled``...), ``defaults``
(``claude_options``, ``gemini_model``...), ``global_vars``, ``variables`` and
``gemini_functions`` are fields here; ``otpy.compat`` names the fields otpy does not honour.
:func:`otpy.pipelines.check_references` checks every template of a pipeline.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Final

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
from otpy.pipelines._inputs import InputSpec, name_problem
from otpy.pipelines._step_schema import PipelineStep, check_name
from otpy.steps import COMMON_FIELDS
from otpy.workspace import DEFAULT_CHECKPOINT_DIR, DEFAULT_OUTPUT_DIR, DEFAULT_WORKSPACE_DIR

__all__ = ["GEMINI_TYPES", "Defaults", "Pipeline"]

GEMINI_TYPES: Final = frozenset({"gemini", "gemini_instructor"})
"""Step types that take ``defaults.gemini_model`` and ``defaults.gemini_token_budget``."""


class Defaults(BaseModel):
    """Applied to every step lacking them: ``provider``, ``model``, and ``options`` (step
    fields such as ``temperature``; only to steps whose type has that field); ``failover``
    says whether a failing provider's calls move to another capable provider. From
    pipeline_ex: ``claude_options`` (merged under each claude step's own), ``claude_preset``,
    ``gemini_model``, ``gemini_token_budget``, ``output_dir`` and ``continue_on_error``."""

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

    claude_options: dict[str, Any] = Field(
        default_factory=dict, description="Claude options every claude step starts from."
    )
    claude_preset: str | None = Field(default=None, description="The default preset.")
    gemini_model: str | None = Field(default=None, description="The model of gemini steps.")
    gemini_token_budget: dict[str, Any] = Field(
        default_factory=dict, description="The token_budget of gemini steps."
    )
    output_dir: str | None = Field(default=None, description="Where output_to_file writes.")
    continue_on_error: bool = Field(
        default=False, description="A failing step lets the pipeline go on (on_error: continue)."
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


def _steps_named(schema: dict[str, Any]) -> None:
    schema["properties"]["steps"]["items"]["required"] = ["name"]


class Pipeline(BaseModel):
    """A pipeline: named, ordered steps with inputs, defaults and outputs.

    Build one with ``otpy.pipelines.load_pipeline`` (YAML file or text, or a dict): it
    migrates legacy configs, turns validation errors into StepValidationError naming the
    step, the field and the file position, and runs :func:`check_references`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_steps_named)

    name: str = Field(description="The pipeline's name (printable text).")
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
    workspace_dir: str | None = Field(
        default=None, description="The directory its files live in (default ./workspace)."
    )
    output_dir: str | None = Field(
        default=None, description="Where output_to_file writes (default ./outputs)."
    )
    checkpoint_enabled: bool = Field(
        default=False, description="Save progress after every step; resume with --resume."
    )
    checkpoint_dir: str | None = Field(
        default=None, description="Where checkpoints go (default ./checkpoints)."
    )
    environment: dict[str, Any] = Field(
        default_factory=dict, description="pipeline_ex's environment (mode: ...)."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free information.")
    global_vars: dict[str, Any] = Field(
        default_factory=dict, description="Read-only values, {{ global_vars.<name> }}."
    )
    variables: dict[str, Any] = Field(
        default_factory=dict, description="The run's starting variables, {{ state.<name> }}."
    )
    gemini_functions: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Function declarations gemini steps may name."
    )

    _migration: MigrationResult | None = PrivateAttr(default=None)
    _open_inputs: bool = PrivateAttr(default=False)
    _source: tuple[str, str | None, Mapping[str, Any]] | None = PrivateAttr(default=None)

    @field_validator("name", mode="before")
    @classmethod
    def _printable_name(cls, value: Any) -> Any:
        return check_name("a pipeline", value)

    @field_validator("gemini_functions")
    @classmethod
    def _declarations(cls, functions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, declaration in functions.items():
            for key in ("description", "parameters"):
                if key not in declaration:
                    raise ValueError(f"function {name!r} needs {key}")
            if not isinstance(declaration["parameters"], Mapping):
                raise ValueError(f"function {name!r}: parameters must be a JSON Schema mapping")
        return functions

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
            problem = name_problem(kind, name)
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
    def open_inputs(self) -> bool:
        """Whether it takes any input (a pipeline_ex workflow declaring none: a nested
        pipeline reads ``{{ inputs.x }}`` its parent passes)."""
        return self._open_inputs and not self.inputs

    @property
    def pipeline_ex(self) -> bool:
        """Whether it was a pipeline_ex workflow document (``workflow:`` at the root)."""
        return self._open_inputs

    def directories(self) -> tuple[str, str, str]:
        """The workspace, output and checkpoint directories as written (relative to where
        the pipeline runs unless absolute), pipeline_ex's defaults filled in."""
        output = self.output_dir or self.defaults.output_dir or DEFAULT_OUTPUT_DIR
        return (
            self.workspace_dir or DEFAULT_WORKSPACE_DIR,
            output,
            self.checkpoint_dir or DEFAULT_CHECKPOINT_DIR,
        )

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
        fields in ``accepted`` (the step type's fields) when it is given; so do the
        pipeline_ex defaults: ``claude_options`` (merged under the step's own, and each
        parallel task's), ``claude_preset``, and for gemini steps ``gemini_model`` and
        ``gemini_token_budget``; the ``gemini_functions`` a step names come along. A new dict."""
        spec = self.step(step) if isinstance(step, str) else step
        return apply_defaults(spec.config, self, accepted)

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
        if self.open_inputs:
            return dict(given)
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
            problem = spec.problem(value)
            optional_none = value is None and spec.default is None and not spec.is_required
            if problem is not None and not optional_none:
                raise ConfigurationError(f"pipeline {self.name!r}: input {name!r} {problem}")
            resolved[name] = value
        return resolved


def _merged(defaults: Mapping[str, Any], own: Any) -> Any:
    if not defaults:
        return own
    return {**copy.deepcopy(dict(defaults)), **own} if isinstance(own, Mapping) else own


def _with_options(task: Any, options: Mapping[str, Any]) -> Any:
    if not isinstance(task, Mapping):
        return task
    return {**task, "claude_options": _merged(options, task.get("claude_options") or {})}


def apply_defaults(
    config: dict[str, Any], pipeline: Pipeline, accepted: Collection[str] | None
) -> dict[str, Any]:
    """``config`` (a step's, changed in place and returned) with ``pipeline``'s defaults
    applied; see :meth:`Pipeline.step_config`."""
    defaults = pipeline.defaults

    def takes(field: str) -> bool:
        return accepted is None or field in accepted

    for key, value in (("provider", defaults.provider), ("model", defaults.model)):
        if key not in config and value is not None:
            config[key] = value
    for key, value in defaults.options.items():
        if key not in config and takes(key):
            config[key] = copy.deepcopy(value)
    if defaults.claude_options and takes("claude_options"):
        config["claude_options"] = _merged(
            defaults.claude_options, config.get("claude_options") or {}
        )
    tasks = config.get("parallel_tasks")
    if defaults.claude_options and isinstance(tasks, list):
        config["parallel_tasks"] = [_with_options(task, defaults.claude_options) for task in tasks]
    if defaults.claude_preset and "preset" not in config and takes("preset"):
        config["preset"] = defaults.claude_preset
    mode = pipeline.environment.get("mode")
    if config.get("environment_aware") is True and "preset" not in config and isinstance(mode, str):
        config["preset"] = mode
    if config.get("type") in GEMINI_TYPES:
        if defaults.gemini_model and config.get("model") is None:
            config["model"] = defaults.gemini_model
        if defaults.gemini_token_budget and "token_budget" not in config and takes("token_budget"):
            config["token_budget"] = copy.deepcopy(defaults.gemini_token_budget)
    names = config.get("functions")
    if pipeline.gemini_functions and isinstance(names, list) and takes("gemini_functions"):
        config["gemini_functions"] = {
            name: copy.deepcopy(pipeline.gemini_functions[name])
            for name in names
            if isinstance(name, str) and name in pipeline.gemini_functions
        }
    return config
