"""What the built-in LLM step types share: config checks, request building, the provider call.

Plain functions, no state. Every check raises ``StepValidationError`` naming the step (its
``name``, else its ``type``) and the offending field.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from otpy._checks import is_finite_number as is_number
from otpy.errors import StepValidationError
from otpy.providers import Completion, CompletionRequest, Message
from otpy.steps._base import StepContext

__all__ = [
    "CLAUDE_FIELDS",
    "GEMINI_FIELDS",
    "LLM_FIELDS",
    "check_claude_options",
    "check_token_budget",
    "build_request",
    "call_provider",
    "check_bool",
    "check_int",
    "check_llm_fields",
    "check_str",
    "check_str_list",
    "is_number",
    "step_label",
    "with_tools",
]

LLM_FIELDS = ("system", "temperature", "max_tokens", "stop")
"""The sampling fields every prompting step accepts (besides ``model``)."""
CLAUDE_FIELDS = ("claude_options",)
"""pipeline_ex's claude settings, a mapping kept as it is (see :func:`check_claude_options`)."""
GEMINI_FIELDS = ("token_budget", "functions", "gemini_functions")
"""pipeline_ex's gemini settings: ``token_budget`` (max_output_tokens, temperature),
``functions`` (names of the workflow's ``gemini_functions``, handed on as they are)."""

logger = logging.getLogger("otpy.steps.llm")
_OPTION_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "system_prompt": (str, "text"),
    "append_system_prompt": (str, "text"),
    "model": (str, "a model name"),
    "fallback_model": (str, "a model name"),
    "cwd": (str, "a path"),
    "output_format": (str, "text, json or stream_json"),
    "max_turns": (int, "an integer from 1 to 1000"),
    "max_total_tokens": (int, "an integer >= 1"),
    "max_tokens": (int, "an integer >= 1"),
    "timeout_ms": (int, "a number of milliseconds"),
    "allowed_tools": (list, "a list of tool names"),
    "disallowed_tools": (list, "a list of tool names"),
}

DEFAULT_MAX_TOKENS = 1024


def step_label(config: Mapping[str, Any], default: str = "step") -> str:
    """How errors name a step: its ``name``, else its ``type``, else ``default``."""
    return str(config.get("name") or config.get("type") or default)


def check_str(
    config: Mapping[str, Any], field: str, *, required: bool = False, empty: bool = False
) -> str | None:
    """``config[field]`` if it is a str (non-empty unless ``empty``); None if absent and
    not ``required``."""
    value = config.get(field)
    if value is None:
        if required:
            raise StepValidationError("is required", step=step_label(config), field=field)
        return None
    if not isinstance(value, str):
        raise StepValidationError(
            f"must be a string, got {type(value).__name__}", step=step_label(config), field=field
        )
    if not empty and not value.strip():
        raise StepValidationError("must not be empty", step=step_label(config), field=field)
    return value


def check_int(
    config: Mapping[str, Any], field: str, *, minimum: int, maximum: int | None = None
) -> int | None:
    """``config[field]`` if it is an int within bounds; None if absent."""
    value = config.get(field)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise StepValidationError(
            f"must be an integer, got {value!r}", step=step_label(config), field=field
        )
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise StepValidationError(
            f"must be {bounds}, got {value}", step=step_label(config), field=field
        )
    return value


def check_bool(config: Mapping[str, Any], field: str) -> bool | None:
    """``config[field]`` if it is True or False; None if absent."""
    value = config.get(field)
    if value is not None and not isinstance(value, bool):
        raise StepValidationError(
            f"must be true or false, got {value!r}", step=step_label(config), field=field
        )
    return value


def check_str_list(
    config: Mapping[str, Any], field: str, *, non_empty: bool = False
) -> list[str] | None:
    """``config[field]`` if it is a list of non-empty strings; None if absent."""
    value = config.get(field)
    if value is None:
        return None
    label = step_label(config)
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise StepValidationError(
            f"must be a list of strings, got {type(value).__name__}", step=label, field=field
        )
    if non_empty and not value:
        raise StepValidationError("must not be an empty list", step=label, field=field)
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise StepValidationError(
                f"item {index} must be a non-empty string, got {item!r}", step=label, field=field
            )
    return list(value)


def check_claude_options(config: Mapping[str, Any], field: str = "claude_options") -> None:
    """``config[field]`` (absent is fine) must be a mapping; the keys otpy knows have the
    right shape (text, whole numbers >= 1, lists of tool names, a temperature from 0 to 2).
    Other keys are kept as they are (``otpy.compat`` names them in the document's warning).
    StepValidationError naming ``field.key``."""
    options = config.get(field)
    if options is None:
        return
    label = step_label(config)
    if not isinstance(options, Mapping):
        raise StepValidationError(
            f"must be a mapping, got {type(options).__name__}", step=label, field=field
        )
    for key, (kind, wanted) in _OPTION_TYPES.items():
        value = options.get(key)
        if value is None:
            continue
        bad = not isinstance(value, kind) or isinstance(value, bool)
        if kind is int and not bad:
            bad = value < 1 or (key == "max_turns" and value > 1000)
        if kind is list and not bad:
            bad = not all(isinstance(item, str) and item for item in value)
        if bad:
            raise StepValidationError(
                f"must be {wanted}, got {value!r}", step=label, field=f"{field}.{key}"
            )
    _check_temperature(options.get("temperature"), label, f"{field}.temperature")


def _check_temperature(temperature: Any, label: str, field: str) -> None:
    if temperature is not None and not (is_number(temperature) and 0.0 <= temperature <= 2.0):
        raise StepValidationError(
            f"must be a number from 0 to 2, got {temperature!r}", step=label, field=field
        )


def check_token_budget(config: Mapping[str, Any]) -> None:
    """``token_budget`` (gemini): a mapping with max_output_tokens >= 1 and temperature
    from 0 to 2 where given."""
    budget = config.get("token_budget")
    if budget is None:
        return
    label = step_label(config)
    if not isinstance(budget, Mapping):
        raise StepValidationError("must be a mapping", step=label, field="token_budget")
    tokens = budget.get("max_output_tokens")
    if tokens is not None and (
        not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1
    ):
        raise StepValidationError(
            f"must be an integer >= 1, got {tokens!r}",
            step=label,
            field="token_budget.max_output_tokens",
        )
    _check_temperature(budget.get("temperature"), label, "token_budget.temperature")


def check_llm_fields(config: Mapping[str, Any]) -> None:
    """Check ``system``, ``temperature`` (0 to 2), ``max_tokens`` (> 0), ``stop`` (list of
    strings) and the common ``provider`` and ``model`` (strings) where present."""
    check_str(config, "system", empty=True)
    check_str(config, "provider")
    check_str(config, "model")
    temperature = config.get("temperature")
    if temperature is not None and not (is_number(temperature) and 0.0 <= temperature <= 2.0):
        raise StepValidationError(
            f"must be a number from 0 to 2, got {temperature!r}",
            step=step_label(config),
            field="temperature",
        )
    check_int(config, "max_tokens", minimum=1)
    check_str_list(config, "stop")
    check_claude_options(config)
    check_token_budget(config)


def build_request(
    step: Mapping[str, Any],
    *,
    prompt: str | None,
    messages: Sequence[Message] = (),
    response_schema: dict[str, Any] | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> CompletionRequest:
    """A request from a step's sampling fields; the keyword arguments are defaults that
    the step's own fields override (a preset's, say). pipeline_ex's settings come between:
    ``claude_options`` (``system_prompt`` with ``append_system_prompt`` appended,
    ``model``, ``temperature``, ``max_tokens``) and ``token_budget``
    (``max_output_tokens``, ``temperature``) override the defaults, the step's own
    ``system``, ``model``, ``temperature``, ``max_tokens`` override them."""
    options: Mapping[str, Any] = _mapping(step.get("claude_options"))
    budget: Mapping[str, Any] = _mapping(step.get("token_budget"))
    system = options.get("system_prompt") or system
    append = options.get("append_system_prompt")
    if append:
        system = f"{system}\n\n{append}" if system else append
    temperature = _first(budget.get("temperature"), options.get("temperature"), temperature)
    max_tokens = _first(budget.get("max_output_tokens"), options.get("max_tokens"), max_tokens)
    chosen_max = _pick(step, "max_tokens", max_tokens)
    return CompletionRequest(
        prompt=prompt,
        messages=tuple(messages),
        system=_pick(step, "system", system),
        model=step.get("model") or options.get("model"),
        temperature=_pick(step, "temperature", temperature),
        max_tokens=DEFAULT_MAX_TOKENS if chosen_max is None else chosen_max,
        stop=tuple(step.get("stop") or ()),
        response_schema=response_schema,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _first(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def _pick(step: Mapping[str, Any], field: str, default: Any) -> Any:
    value = step.get(field)
    return default if value is None else value


def call_provider(
    context: StepContext,
    step: Mapping[str, Any],
    request: CompletionRequest,
    capabilities: Sequence[str],
    *,
    provider: str | None = None,
) -> Completion:
    """Complete ``request`` on ``provider`` (default: the step's ``provider`` field; None
    lets the registry select one with ``capabilities``), through the context's gateway.
    A request offering tools also asks for the ``tools`` capability."""
    name = provider if provider is not None else step.get("provider")
    return context.complete(request, provider=name, capabilities=with_tools(request, capabilities))


def with_tools(request: CompletionRequest, capabilities: Sequence[str]) -> tuple[str, ...]:
    """``capabilities``, plus ``tools`` when ``request`` offers tools."""
    if request.tools and "tools" not in capabilities:
        return (*capabilities, "tools")
    return tuple(capabilities)
