"""The one-prompt steps: ``claude``, ``gemini`` and ``claude_smart`` (with presets).

Each sends one request and returns the text; one whose ``claude_options`` (or, for
``gemini``, ``functions``) allows tools runs the agent loop instead (see
:mod:`otpy.steps.llm._agentic`). None of them names a provider by default:
the step's ``provider`` field picks one, otherwise the registry selects any provider with
the ``text`` capability (the embedded runtime has ``simulated``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from otpy.agent import AgentResult
from otpy.errors import StepValidationError
from otpy.providers import Completion, CompletionRequest
from otpy.steps._base import Step, StepContext, StepMetadata, StepResult
from otpy.steps.llm._agentic import agent_metadata, ask, check_tool_fields
from otpy.steps.llm._common import (
    CLAUDE_FIELDS,
    GEMINI_FIELDS,
    LLM_FIELDS,
    build_request,
    call_provider,
    check_llm_fields,
    check_str,
    step_label,
)
from otpy.steps.llm._functions import call_declared, declared_functions

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "ClaudeSmartStep",
    "ClaudeStep",
    "GeminiStep",
    "Preset",
    "PromptStep",
    "preset_of",
]


class PromptStep(Step):
    """Base of the one-prompt steps: ``prompt`` (required) plus ``system``,
    ``temperature``, ``max_tokens`` and ``stop``; the output is the answer's text.

    ``execute`` blocks in the calling thread on the provider call (through the context's
    gateway: rate limits, breaker, retries); a ``ProviderError`` or ``NoProviderAvailable``
    from it propagates unchanged.
    """

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="One prompt, one answer.",
        required_fields=("prompt",),
        optional_fields=LLM_FIELDS,
        capabilities=("text",),
    )

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        check_str(checked, "prompt", required=True)
        check_llm_fields(checked)
        check_tool_fields(checked)
        return checked

    def request(self, step: Mapping[str, Any]) -> CompletionRequest:
        """The request this step sends."""
        return build_request(step, prompt=step["prompt"])

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        completion, agent = self.answer(step, context)
        return StepResult.of_completion(
            completion, output=completion.text, metadata=agent_metadata(agent)
        )

    def answer(
        self, step: Mapping[str, Any], context: StepContext
    ) -> tuple[Completion, AgentResult | None]:
        """The answer to this step's request: one completion, or the agent run's."""
        capabilities = self.metadata.capabilities
        return ask(
            step,
            context,
            self.request(step),
            lambda request: call_provider(context, step, request, capabilities),
        )


class ClaudeStep(PromptStep):
    """``claude``: one prompt to a text model (Anthropic's when ``provider: anthropic``).

    ``claude_options`` (pipeline_ex's) is kept as it is: ``system_prompt`` (with
    ``append_system_prompt`` appended), ``model``, ``temperature`` and ``max_tokens`` shape
    the request; ``allowed_tools`` (with ``max_turns``, ``cwd``...) run the agent loop.
    """

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Claude-style prompt: one prompt (with optional system prompt, "
        "temperature, max_tokens, stop sequences, claude_options) and its text answer; with "
        "claude_options.allowed_tools an agent that calls tools in its workspace.",
        required_fields=("prompt",),
        optional_fields=(*LLM_FIELDS, *CLAUDE_FIELDS),
        capabilities=("text",),
    )


class GeminiStep(PromptStep):
    """``gemini``: one prompt to a text model (Google's when ``provider: gemini``).
    ``token_budget`` (``max_output_tokens``, ``temperature``) shapes the request;
    ``functions`` naming the workflow's ``gemini_functions`` declarations ask for a call of
    the first (:mod:`otpy.steps.llm._functions`); other names are tools (the agent loop)."""

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Gemini-style prompt: one prompt (with optional system instruction, "
        "temperature, max_tokens, stop sequences, token_budget) and its text answer; any "
        "provider with the text capability serves it unless provider names one; with "
        "functions, an agent calling those tools (or pipeline_ex's declared functions).",
        required_fields=("prompt",),
        optional_fields=(*LLM_FIELDS, *GEMINI_FIELDS, "max_turns", "max_total_tokens"),
        capabilities=("text",),
    )

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        if declared_functions(step):
            return call_declared(step, context, self.metadata.capabilities)
        return super().execute(step, context)


@dataclass(frozen=True, slots=True)
class Preset:
    """A ``claude_smart`` preset: the system prompt and sampling defaults it applies."""

    system: str
    temperature: float
    max_tokens: int
    description: str


PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        "analysis": Preset(
            system=(
                "You are a careful analyst. Examine the input thoroughly, state your "
                "assumptions, and support every conclusion with evidence from the input."
            ),
            temperature=0.2,
            max_tokens=2048,
            description="thorough, evidence-based analysis",
        ),
        "code_review": Preset(
            system=(
                "You are a senior code reviewer. List bugs, security problems, unclear code "
                "and missing tests, most important first; quote the code you mean and "
                "propose a concrete fix for each."
            ),
            temperature=0.1,
            max_tokens=2048,
            description="prioritised review findings with fixes",
        ),
        "development": Preset(
            system=(
                "You are an experienced software engineer. Write correct, idiomatic, tested "
                "code and explain briefly what you changed and why."
            ),
            temperature=0.3,
            max_tokens=4096,
            description="writing and changing code",
        ),
        "chat": Preset(
            system="You are a helpful, friendly assistant. Answer conversationally and briefly.",
            temperature=0.7,
            max_tokens=1024,
            description="conversation",
        ),
        "production": Preset(
            system=(
                "You are a dependable assistant inside a production system. Answer precisely "
                "and conservatively; when unsure, say so instead of guessing."
            ),
            temperature=0.0,
            max_tokens=2048,
            description="conservative, repeatable answers",
        ),
        "test": Preset(
            system="You are a test double: answer briefly and deterministically.",
            temperature=0.0,
            max_tokens=256,
            description="short deterministic answers for tests",
        ),
    }
)
"""The ``claude_smart`` presets by name. Each sets the system prompt, temperature and
max_tokens; ``claude_options`` and then a step's own ``system``, ``temperature`` or
``max_tokens`` override the preset's (the whole system prompt is replaced, not appended
to)."""

DEFAULT_PRESET = "development"
"""claude_smart's preset when neither the step, ``defaults.claude_preset`` nor
``environment_aware`` gives one (pipeline_ex's)."""


def preset_of(step: Mapping[str, Any], default: str) -> str:
    """The step's preset name (``default`` when it names none)."""
    preset = step.get("preset")
    return preset if isinstance(preset, str) else default


def check_preset(config: Mapping[str, Any]) -> None:
    """``preset``, where given, names a preset of :data:`PRESETS`."""
    preset = config.get("preset")
    if preset is not None and (not isinstance(preset, str) or preset not in PRESETS):
        raise StepValidationError(
            f"unknown preset {preset!r} (presets: {', '.join(PRESETS)})",
            step=step_label(config),
            field="preset",
        )


def preset_request(
    step: Mapping[str, Any], default: str, **more: Any
) -> tuple[str, CompletionRequest]:
    """The preset name and the request of a preset step (``more``: build_request's
    other arguments: messages, a response schema)."""
    name = preset_of(step, default)
    preset = PRESETS[name]
    request = build_request(
        step,
        prompt=more.pop("prompt", step.get("prompt")),
        system=preset.system,
        temperature=preset.temperature,
        max_tokens=preset.max_tokens,
        **more,
    )
    return name, request


class ClaudeSmartStep(PromptStep):
    """``claude_smart``: a prompt with a preset (see :data:`PRESETS`; default
    ``development``, or ``defaults.claude_preset``, or with ``environment_aware: true`` the
    workflow's ``environment.mode``); the result's metadata names the preset."""

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Prompt with a preset (analysis, code_review, development, chat, "
        "production, test; default development) supplying system prompt, temperature and "
        "max_tokens; claude_options and explicit fields override the preset; tools as "
        "for claude.",
        required_fields=("prompt",),
        optional_fields=(*LLM_FIELDS, *CLAUDE_FIELDS, "preset", "environment_aware"),
        capabilities=("text",),
    )

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        check_preset(checked)
        return checked

    def request(self, step: Mapping[str, Any]) -> CompletionRequest:
        return preset_request(step, DEFAULT_PRESET)[1]

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        completion, agent = self.answer(step, context)
        return StepResult.of_completion(
            completion,
            output=completion.text,
            metadata={"preset": preset_of(step, DEFAULT_PRESET), **agent_metadata(agent)},
        )
