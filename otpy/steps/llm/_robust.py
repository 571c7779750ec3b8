"""``claude_robust``: retries on the primary provider, then a fallback provider, then
pipeline_ex's ``fallback_action``.

::

    - name: deploy_plan
      type: claude_robust
      retry_config:
        max_retries: 3                    # extra attempts (default 3)
        backoff_strategy: exponential     # linear, fixed (delays from base_delay_ms: 1000)
        retry_conditions: [timeout, rate_limit, temporary_error]   # the default
        fallback_action: graceful_degradation   # or simplified_prompt, emergency_response,
                                                # use_cached_response, fail
      fallback_provider: gemini           # optional: try this provider before the action
      prompt: ...

Each attempt is a whole guarded call (the provider guard's own retries come first). An
error earns another attempt only when its description (type, message, and tags such as
``rate_limit``, ``timeout``, ``temporary_error``, ``api_error``) contains one of
``retry_conditions``; the delay before it follows ``backoff_strategy`` (or the error's
``retry_after`` when longer), slept on the run's clock. When the primary is out of
attempts: ``fallback_provider``/``fallback_capabilities`` if given, then
``fallback_action`` — ``graceful_degradation`` and ``emergency_response`` answer with a
degraded text (metadata ``degraded: true`` and the error; a warning is logged),
``simplified_prompt`` asks once more with a short prompt, ``use_cached_response`` (otpy
keeps no responses) and ``fail`` raise AllOptionsFailed naming every failure. The default
action is ``graceful_degradation`` (pipeline_ex's), or ``fail`` when the step names a
fallback provider.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from otpy.agent import AgentResult
from otpy.errors import (
    AllOptionsFailed,
    CircuitOpenError,
    OperationTimeout,
    OtpyError,
    OverloadedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    RateLimitTimeout,
    ServerError,
    StepValidationError,
)
from otpy.providers import Completion, CompletionRequest
from otpy.steps._base import Step, StepContext, StepMetadata, StepResult, check_choice
from otpy.steps.llm._agentic import agent_metadata, ask, check_tool_fields
from otpy.steps.llm._common import (
    CLAUDE_FIELDS,
    LLM_FIELDS,
    call_provider,
    check_int,
    check_llm_fields,
    check_str,
    check_str_list,
    step_label,
    with_tools,
)
from otpy.steps.llm._prompting import check_preset, preset_request

__all__ = ["ACTIONS", "ClaudeRobustStep"]

logger = logging.getLogger("otpy.steps.llm")

DEFAULT_RETRIES: Final = 3
DEFAULT_CONDITIONS: Final = ("timeout", "rate_limit", "temporary_error")
DEFAULT_PRESET: Final = "production"
"""claude_robust's preset when none is given (pipeline_ex's)."""
ACTIONS: Final = ("graceful_degradation", "simplified_prompt", "emergency_response",
                  "use_cached_response", "fail")  # fmt: skip
STRATEGIES: Final = ("exponential", "linear", "fixed")
_TAGS: Final[tuple[tuple[type[BaseException], str], ...]] = (
    (RateLimitedError, "rate_limit"),
    (RateLimitTimeout, "rate_limit timeout"),
    (ProviderTimeoutError, "timeout temporary_error"),
    (OperationTimeout, "timeout temporary_error"),
    (OverloadedError, "overloaded temporary_error api_error"),
    (ServerError, "server_error temporary_error api_error"),
    (ProviderConnectionError, "connection temporary_error"),
    (CircuitOpenError, "circuit_open"),
    (ProviderError, "api_error"),
)


def describe(exc: BaseException) -> str:
    """What retry conditions are matched against: type, message and tags, lower-case."""
    tags = " ".join(tag for kind, tag in _TAGS if isinstance(exc, kind))
    return f"{type(exc).__name__} {exc} {tags}".lower()


def _delay(config: Mapping[str, Any], attempt: int) -> float:
    base = config.get("base_delay_ms", 1000) / 1000.0
    strategy = config.get("backoff_strategy", "exponential")
    if strategy == "fixed":
        return float(base)
    if strategy == "linear":
        return float(base * (attempt + 1))
    return float(base * 2**attempt)


def _degraded(step: Mapping[str, Any], error: str, kind: str) -> str:
    if kind == "emergency_response":
        return (
            f"EMERGENCY RESPONSE MODE\n\nThe step '{step_label(step)}' could not get an "
            f"answer: {error}\n\nThis is a minimal safe response; manual intervention may "
            "be required."
        )
    return (
        f"This step ('{step_label(step)}') could not get an answer and gives this basic "
        f"response instead.\n\nOriginal error: {error}"
    )


class ClaudeRobustStep(Step):
    """``claude_robust`` (see the module docstring). Result metadata: ``served_by``
    (``primary``, ``fallback``, ``simplified_prompt`` or ``degraded``),
    ``primary_attempts``, ``primary_error``, ``degraded``."""

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Prompt with retries (retry_config: max_retries, backoff, conditions), "
        "then a fallback provider, then a fallback_action (degraded answer, simplified "
        "prompt, or fail).",
        required_fields=("prompt",),
        optional_fields=(
            *LLM_FIELDS, *CLAUDE_FIELDS, "retry_config", "preset", "max_attempts",
            "fallback_provider", "fallback_capabilities", "fallback_model",
        ),
        capabilities=("text",),
    )  # fmt: skip

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        label = step_label(checked)
        check_str(checked, "prompt", required=True)
        check_int(checked, "max_attempts", minimum=1, maximum=100)
        by_name = check_str(checked, "fallback_provider")
        by_capabilities = check_str_list(checked, "fallback_capabilities", non_empty=True)
        if by_name is not None and by_capabilities is not None:
            raise StepValidationError(
                "give at most one of fallback_provider (a provider name) or "
                "fallback_capabilities (a list the fallback must have)",
                step=label,
                field="fallback_provider",
            )
        check_str(checked, "fallback_model")
        retry = checked.get("retry_config")
        if retry is not None:
            if not isinstance(retry, Mapping):
                raise StepValidationError("must be a mapping", step=label, field="retry_config")
            for key, low in (("max_retries", 0), ("base_delay_ms", 0)):
                value = retry.get(key)
                if value is not None and (
                    not isinstance(value, int) or isinstance(value, bool) or value < low
                ):
                    raise StepValidationError(
                        f"must be an integer >= {low}, got {value!r}",
                        step=label,
                        field=f"retry_config.{key}",
                    )
            if retry.get("fallback_action") is not None and not isinstance(
                retry["fallback_action"], str
            ):
                raise StepValidationError(
                    "must be an action name", step=label, field="retry_config.fallback_action"
                )
            check_choice(
                retry.get("backoff_strategy"), STRATEGIES,
                step=label, field="retry_config.backoff_strategy",
            )  # fmt: skip
            conditions = retry.get("retry_conditions", retry.get("retry_on"))
            if conditions is not None and not (
                isinstance(conditions, list) and all(isinstance(c, str) for c in conditions)
            ):
                raise StepValidationError(
                    "must be a list of words", step=label, field="retry_config.retry_conditions"
                )
        check_preset(checked)
        check_llm_fields(checked)
        check_tool_fields(checked)
        return checked

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        preset, request = preset_request(step, DEFAULT_PRESET)
        capabilities = self.metadata.capabilities
        retry: Mapping[str, Any] = step.get("retry_config") or {}
        attempts_allowed = step.get("max_attempts") or 1 + retry.get("max_retries", DEFAULT_RETRIES)
        conditions = [
            c.lower()
            for c in retry.get("retry_conditions", retry.get("retry_on", DEFAULT_CONDITIONS))
        ]
        failures: list[tuple[str, BaseException]] = []
        attempts = 0
        while attempts < attempts_allowed:
            attempts += 1
            try:
                answer = ask(
                    step, context, request,
                    lambda asked: call_provider(context, step, asked, capabilities),
                )  # fmt: skip
            except StepValidationError:
                raise  # the step's own config (a tool name, a cwd): no provider fixes it
            except OtpyError as exc:
                failures.append((f"attempt {attempts}", exc))
                if attempts >= attempts_allowed or not any(c in describe(exc) for c in conditions):
                    break
                wait = max(_delay(retry, attempts - 1), getattr(exc, "retry_after", None) or 0.0)
                context.clock.sleep(wait)
            else:
                return self._result(answer, "primary", attempts, failures, preset)
        fallback = self._fallback(step, context, request, failures)
        if fallback is not None:
            return self._result(fallback, "fallback", attempts, failures, preset)
        named = step.get("fallback_provider") or step.get("fallback_capabilities")
        action = retry.get("fallback_action", "fail" if named else "graceful_degradation")
        if action not in ACTIONS:
            action = "graceful_degradation"  # pipeline_ex answers any other action so
        return self._action(step, context, action, attempts, failures, preset)

    def _fallback(
        self, step: Mapping[str, Any], context: StepContext, request: CompletionRequest,
        failures: list[tuple[str, BaseException]],
    ) -> tuple[Completion, AgentResult | None] | None:  # fmt: skip
        """The fallback provider's answer (a whole agent run when the step uses tools);
        None when the step names no fallback or it failed too (added to ``failures``)."""
        name: str | None = step.get("fallback_provider")
        capabilities = step.get("fallback_capabilities")
        if name is None and capabilities is None:
            return None
        wanted = tuple(capabilities or self.metadata.capabilities)

        def send(asked: CompletionRequest) -> Completion:
            return context.complete(asked, provider=name, capabilities=with_tools(asked, wanted))

        try:
            return ask(
                step, context, request.model_copy(update={"model": step.get("fallback_model")}),
                send,
            )  # fmt: skip
        except OtpyError as exc:
            failures.append((f"fallback {name or 'any provider with ' + ', '.join(wanted)}", exc))
            return None

    def _action(
        self, step: Mapping[str, Any], context: StepContext, action: str, attempts: int,
        failures: list[tuple[str, BaseException]], preset: str,
    ) -> StepResult:  # fmt: skip
        label = step_label(step)
        last = failures[-1][1]
        if action == "simplified_prompt":
            request = CompletionRequest(
                prompt=f"Provide a brief, simple response for: {label}", temperature=0.3,
                model=step.get("model"),
            )  # fmt: skip
            try:
                completion = call_provider(context, step, request, self.metadata.capabilities)
            except OtpyError as exc:
                failures.append(("simplified prompt", exc))
            else:
                answer = (completion, None)
                return self._result(answer, "simplified_prompt", attempts, failures, preset)
        elif action in ("graceful_degradation", "emergency_response"):
            error = f"{type(last).__name__}: {last}"
            logger.warning(
                "step %r: every attempt failed (%s); answering with a %s", label, error, action
            )
            text = _degraded(step, error, action)
            metadata = self._metadata("degraded", attempts, failures, preset)
            return StepResult(
                output=text,
                text=text,
                retries=attempts,
                metadata={**metadata, "fallback_action": action},
            )
        elif action == "use_cached_response":
            failures.append(("use_cached_response", OtpyError("otpy keeps no cached responses")))
        primary = [exc for where, exc in failures if where.startswith("attempt")]
        count = f"{len(primary)} attempt{'s' if len(primary) != 1 else ''}"
        chain = [(f"primary {step.get('provider') or 'any provider'} ({count})", primary[-1])]
        chain += [(where, exc) for where, exc in failures if not where.startswith("attempt")]
        raise AllOptionsFailed(label, chain) from last

    def _result(
        self, answer: tuple[Completion, AgentResult | None], served_by: str, attempts: int,
        failures: list[tuple[str, BaseException]], preset: str,
    ) -> StepResult:  # fmt: skip
        completion, agent = answer
        metadata = self._metadata(served_by, attempts, failures, preset)
        return StepResult.of_completion(
            completion,
            output=completion.text,
            retries=attempts - 1 if served_by == "primary" else attempts,
            metadata={**metadata, **agent_metadata(agent)},
        )

    @staticmethod
    def _metadata(
        served_by: str, attempts: int, failures: list[tuple[str, BaseException]], preset: str
    ) -> dict[str, Any]:
        primary = [exc for where, exc in failures if where.startswith("attempt")]
        return {
            "served_by": served_by,
            "primary_attempts": attempts,
            "primary_error": f"{type(primary[-1]).__name__}: {primary[-1]}" if primary else None,
            "degraded": served_by == "degraded",
            "preset": preset,
        }
