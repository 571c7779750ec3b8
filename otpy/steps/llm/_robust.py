"""``claude_robust``: extra attempts on the primary provider, then a fallback provider."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from otpy.agent import AgentResult
from otpy.errors import AllOptionsFailed, OtpyError, ProviderError, StepValidationError
from otpy.providers import Completion, CompletionRequest
from otpy.steps._base import Step, StepContext, StepMetadata, StepResult
from otpy.steps.llm._agentic import agent_metadata, ask, check_tool_fields
from otpy.steps.llm._common import (
    LLM_FIELDS,
    build_request,
    call_provider,
    check_int,
    check_llm_fields,
    check_str,
    check_str_list,
    step_label,
    with_tools,
)

__all__ = ["ClaudeRobustStep"]

DEFAULT_MAX_ATTEMPTS: Final = 3


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class ClaudeRobustStep(Step):
    """``claude_robust``: ``prompt`` with up to ``max_attempts`` (default 3) attempts on
    the primary provider (the step's ``provider``, or any with the text capability), then
    ``fallback_provider`` (a name) or ``fallback_capabilities`` (the registry selects) —
    exactly one of the two — with ``fallback_model`` (default: the fallback's own).

    The attempts here are *on top of* the retries the provider's guard already makes
    (rate-limit waits, backoff, Retry-After): each one is a whole guarded call, so keep
    ``max_attempts`` small (``1``: the guard's retries only). Only a retryable
    ``ProviderError`` earns another attempt, after the ``retry_after`` it carries (slept on
    the context's clock); a non-retryable one (auth, invalid
    request, spend limit) or any other expected error (breaker open, no provider) goes
    straight to the fallback. If the fallback fails too, ``AllOptionsFailed`` names both
    failures (its ``__cause__`` is the fallback's). Result metadata: ``served_by``
    (``"primary"`` or ``"fallback"``), ``primary_attempts``, ``primary_error`` (why the
    primary failed, or None). With ``claude_options`` allowing tools, each attempt (and
    the fallback) is a whole agent run: tool calls of a failed attempt are made again.
    """

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Prompt with extra attempts on the primary provider, then a fallback "
        "provider (by name or by capabilities); reports who served and why.",
        required_fields=("prompt",),
        optional_fields=(
            *LLM_FIELDS,
            "max_attempts",
            "fallback_provider",
            "fallback_capabilities",
            "fallback_model",
            "claude_options",
        ),
        capabilities=("text",),
    )

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        check_str(checked, "prompt", required=True)
        check_int(checked, "max_attempts", minimum=1, maximum=100)
        by_name = check_str(checked, "fallback_provider")
        by_capabilities = check_str_list(checked, "fallback_capabilities", non_empty=True)
        if (by_name is None) == (by_capabilities is None):
            raise StepValidationError(
                "give exactly one of fallback_provider (a provider name) or "
                "fallback_capabilities (a list the fallback must have)",
                step=step_label(checked),
                field="fallback_provider",
            )
        check_str(checked, "fallback_model")
        check_llm_fields(checked)
        check_tool_fields(checked)
        return checked

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        request = build_request(step, prompt=step["prompt"])
        capabilities = self.metadata.capabilities
        max_attempts: int = step.get("max_attempts") or DEFAULT_MAX_ATTEMPTS
        primary_error: OtpyError | None = None
        attempts = 0
        while attempts < max_attempts:
            attempts += 1
            try:
                completion, agent = ask(
                    step,
                    context,
                    request,
                    lambda asked: call_provider(context, step, asked, capabilities),
                )
            except ProviderError as exc:
                primary_error = exc
                if not exc.retryable:
                    break
                if exc.retry_after and attempts < max_attempts:
                    context.clock.sleep(exc.retry_after)
            except StepValidationError:
                raise  # the step's own config (a tool name, a cwd): no provider fixes it
            except OtpyError as exc:
                primary_error = exc
                break
            else:
                return self._result(completion, agent, "primary", attempts, primary_error)
        assert primary_error is not None
        fallback_name: str | None = step.get("fallback_provider")
        fallback_capabilities = tuple(step.get("fallback_capabilities") or capabilities)
        fallback_request = request.model_copy(update={"model": step.get("fallback_model")})

        def on_fallback(asked: CompletionRequest) -> Completion:
            wanted = with_tools(asked, fallback_capabilities)
            return context.complete(asked, provider=fallback_name, capabilities=wanted)

        try:
            completion, agent = ask(step, context, fallback_request, on_fallback)
        except OtpyError as exc:
            primary = step.get("provider") or "any provider"
            fallback = fallback_name or f"any provider with {', '.join(fallback_capabilities)}"
            raise AllOptionsFailed(
                step_label(step),
                [
                    (f"primary {primary} ({_count(attempts, 'attempt')})", primary_error),
                    (f"fallback {fallback}", exc),
                ],
            ) from exc
        return self._result(completion, agent, "fallback", attempts, primary_error)

    @staticmethod
    def _result(
        completion: Completion,
        agent: AgentResult | None,
        served_by: str,
        attempts: int,
        primary_error: OtpyError | None,
    ) -> StepResult:
        return StepResult.of_completion(
            completion,
            output=completion.text,
            retries=attempts - 1 if served_by == "primary" else attempts,
            metadata={
                "served_by": served_by,
                "primary_attempts": attempts,
                "primary_error": None if primary_error is None else _describe(primary_error),
                **agent_metadata(agent),
            },
        )
