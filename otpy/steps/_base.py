"""The step behaviour: what a pipeline step type is, and what it gets and gives back."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from otpy.agent import ToolRegistry
from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import ConfigurationError, StepValidationError
from otpy.providers import Completion, CompletionRequest, ProviderGateway, Usage
from otpy.steps._host import StepHost
from otpy.workspace import Workspace

__all__ = ["COMMON_FIELDS", "Step", "StepContext", "StepMetadata", "StepResult", "check_choice"]

COMMON_FIELDS = frozenset(
    {"name", "type", "description", "when", "condition", "on_error", "fallback", "provider",
     "model", "output_to_file", "output_schema"}
)  # fmt: skip
"""Fields any step config may carry; the executor handles them, so ``validate`` allows them."""


class StepMetadata(BaseModel):
    """What a step type declares about itself: a description, the config fields it needs
    and accepts, the provider capabilities it uses, and its version (``MAJOR.MINOR.PATCH``;
    pipelines may require a version)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str = ""
    required_fields: tuple[str, ...] = ()
    optional_fields: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    version: str = Field(default="1.0.0", pattern=r"^\d+\.\d+\.\d+$")


class StepResult(BaseModel):
    """What a step produced: ``output`` (what later steps read as
    ``steps.<name>.output``), the ``text`` answer if any, token ``usage``, the
    ``provider`` and ``model`` that served it, ``retries`` spent, and free ``metadata``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    output: Any = None
    text: str | None = None
    usage: Usage = Field(default_factory=Usage)
    provider: str | None = None
    model: str | None = None
    retries: int = Field(default=0, ge=0)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of_completion(cls, completion: Completion, output: Any = None, **more: Any) -> StepResult:
        """A result carrying a completion's text, usage, provider and model; ``output``
        defaults to the structured answer if there is one, else the text."""
        if output is None:
            output = completion.structured if completion.structured is not None else completion.text
        return cls(
            output=output,
            text=completion.text,
            usage=completion.usage,
            provider=completion.provider,
            model=completion.model,
            **more,
        )


@dataclass
class StepContext:
    """What a running step can see and use: the run's ``inputs``, the ``outputs`` of the
    steps before it (by step name), the run's ``variables`` (steps such as
    ``set_variable`` write them, ``session_variables`` outlive the run, ``local_variables``
    the current loop iteration), the ``providers`` gateway, the run's ``clock`` and id,
    ``run_pipeline`` for nested pipelines, the pipeline's ``workspace`` and ``output_dir``
    (paths confined to them), the ``tools`` agent steps may call (the runtime's registry;
    None: the built-in ones under default limits) and ``host`` (the executor, for loops).
    The executor makes one per step execution; the dicts in it are the run's own."""

    providers: ProviderGateway | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    clock: Clock = SYSTEM_CLOCK
    run_id: str = ""
    run_pipeline: Callable[..., Any] | None = None
    """``run_pipeline(source, inputs, outputs=..., config=...)`` runs another pipeline (a
    path, YAML text or a dict) inside this run and returns its PipelineResult (the
    ``pipeline`` step type uses it); None outside a run."""
    session_variables: dict[str, Any] = field(default_factory=dict)
    local_variables: dict[str, Any] | None = None
    tools: ToolRegistry | None = None
    workspace: Workspace | None = None
    output_dir: Workspace | None = None
    host: StepHost | None = None
    pipeline: str = ""
    """The running pipeline's name."""

    def complete(
        self,
        request: CompletionRequest,
        *,
        provider: str | None = None,
        capabilities: Sequence[str] = (),
    ) -> Completion:
        """Complete ``request`` on the named provider, or on one the registry selects for
        ``capabilities`` (guarded: rate limits, breaker, retries, fallbacks)."""
        if self.providers is None:
            raise ConfigurationError("this step context has no provider gateway")
        return self.providers.complete(request, provider=provider, capabilities=capabilities)

    def need_workspace(self, step_type: str) -> Workspace:
        """The run's workspace, created if missing; ConfigurationError outside a run."""
        if self.workspace is None:
            raise ConfigurationError(
                f"{step_type} needs a workspace: it runs only inside a pipeline run"
            )
        self.workspace.ensure()
        return self.workspace


def check_choice(value: Any, choices: Sequence[str], *, step: str, field: str) -> None:
    """Raise StepValidationError unless ``value`` is None or one of ``choices``."""
    if value is not None and value not in choices:
        raise StepValidationError(
            f"must be one of {', '.join(choices)}, got {value!r}", step=step, field=field
        )


class Step(ABC):
    """A pipeline step type. Subclasses set ``metadata`` and implement ``execute``.

    A step class is made with no arguments and one instance may serve many runs at once:
    ``execute`` must be thread-safe and keep per-run data in the context. ``validate``
    checks a step's config before anything runs; ``execute(step, context)`` runs it with
    the validated config. An ``OtpyError`` from ``execute`` is an expected failure of the
    step (the pipeline's ``on_error`` decides); anything else is a crash of the step.
    """

    metadata: ClassVar[StepMetadata] = StepMetadata()

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``config`` and return it as a plain dict (subclasses extend this and call
        ``super().validate``): every required field present and not ``None``, no field the
        type does not know. Raises StepValidationError naming the step and the field."""
        if not isinstance(config, Mapping):
            raise StepValidationError(f"a step config must be a mapping, got {config!r}")
        step = config.get("name") or config.get("type") or cls.__name__
        step = str(step)
        for name in cls.metadata.required_fields:
            if config.get(name) is None:
                raise StepValidationError("is required", step=step, field=name)
        known = COMMON_FIELDS.union(cls.metadata.required_fields, cls.metadata.optional_fields)
        for name in config:
            if name not in known:
                allowed = ", ".join(sorted(known - COMMON_FIELDS)) or "none"
                raise StepValidationError(
                    f"unknown field for this step type (its fields: {allowed})",
                    step=step,
                    field=str(name),
                )
        return dict(config)

    @abstractmethod
    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        """Run the step with its validated config ``step``."""
