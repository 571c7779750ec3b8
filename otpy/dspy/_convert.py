"""DSPy's canonical request and response (``dspy.lm15``) to and from otpy's provider layer.

- :func:`to_completion_request`: a ``dspy.lm15.Request`` as an otpy ``CompletionRequest``
  (system, text turns, temperature, max_tokens, stop, a JSON response format), and the
  capabilities it needs. What the provider layer cannot carry is refused with a
  ConfigurationError naming it (tools, non-text parts, logprobs); a sampling setting it
  does not honour is named in a warning, once per engine, and left out.
- :func:`to_response`: a ``Completion`` as a ``dspy.lm15.Response`` with its usage.
- :func:`lm15_error`: an otpy error as the ``dspy.lm15`` error DSPy maps to its own
  (``LMRateLimitError``, ``LMServerError``, ...), so DSPy code sees what it knows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dspy import lm15  # type: ignore[import-untyped]

from otpy import errors
from otpy.errors import CircuitOpenError, ConfigurationError
from otpy.providers import Completion, CompletionRequest, Message

__all__ = ["TOOLS_UNSUPPORTED", "lm15_error", "to_completion_request", "to_response"]

TOOLS_UNSUPPORTED = (
    "tool calls need the provider layer's tool support, which otpy's CompletionRequest does "
    "not have yet; use DSPy's text-based tool use (ReAct with ChatAdapter/JSONAdapter, "
    "native function calling off)"
)
_REFUSED = {
    "tool_choice": TOOLS_UNSUPPORTED,
    "logprobs": "otpy's provider layer returns no log probabilities",
    "probabilities": "otpy's provider layer returns no probabilities",
}
_IGNORED = (
    "top_p", "top_k", "seed", "frequency_penalty", "presence_penalty", "reasoning", "cache",
    "service_tier", "user_id", "store", "extensions",
)  # fmt: skip


def to_completion_request(
    request: lm15.Request, *, model: str | None, ignored: Callable[[str], None]
) -> tuple[CompletionRequest, tuple[str, ...]]:
    """``request`` for otpy's provider layer, and the capabilities it needs beyond text
    (``structured_output`` for a response format). ``model`` is the provider-side model
    (None: the provider's default); ``ignored`` is called with each sampling setting set
    on the request that the provider layer does not honour. ConfigurationError names what
    cannot be carried."""
    if request.tools:
        raise ConfigurationError(f"the request offers tools: {TOOLS_UNSUPPORTED}")
    config = request.config
    for name, why in _REFUSED.items():
        if getattr(config, name) is not None:
            raise ConfigurationError(f"Config.{name} is set, but {why}")
    for name in _IGNORED:
        if getattr(config, name) is not None:
            ignored(name)
    schema, needs = _response_schema(config.response_format)
    completion_request = CompletionRequest(
        messages=tuple(_message(m, index) for index, m in enumerate(request.messages)),
        system=_system(request.system),
        model=model,
        temperature=config.temperature,
        **({} if config.max_tokens is None else {"max_tokens": config.max_tokens}),
        stop=tuple(config.stop),
        response_schema=schema,
    )
    return completion_request, needs


def _response_schema(fmt: dict[str, Any] | None) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    if fmt is None:
        return None, ()
    if fmt.get("type") == "json_schema":
        return dict(fmt["schema"]), ("structured_output",)
    return {"type": "object"}, ("structured_output",)


def _system(system: str | tuple[Any, ...] | None) -> str | None:
    if system is None or isinstance(system, str):
        return system
    texts = []
    for part in system:
        if not isinstance(part, lm15.TextPart):
            raise ConfigurationError(
                f"the system prompt holds a {type(part).__name__}: otpy's provider layer "
                "carries text only"
            )
        texts.append(part.text)
    return "\n".join(texts)


def _message(message: lm15.Message, index: int) -> Message:
    if message.role == "tool" or any(
        isinstance(part, lm15.ToolCallPart | lm15.ToolResultPart) for part in message.parts
    ):
        raise ConfigurationError(
            f"message {index} holds a tool call or result: {TOOLS_UNSUPPORTED}"
        )
    text = message.text
    if text is None:
        parts = message.parts
        kinds = sorted({type(p).__name__ for p in parts if not isinstance(p, lm15.TextPart)})
        raise ConfigurationError(
            f"message {index} ({message.role}) holds {', '.join(kinds)}: otpy's provider layer "
            "carries text only"
        )
    if message.role == "developer":  # as lm15 does for providers without the role
        return Message(role="user", content=f"[developer] {text}")
    if message.role == "assistant":
        return Message(role="assistant", content=text)
    return Message(role="user", content=text)


def _finish(stop_reason: str | None) -> str:
    reason = (stop_reason or "").lower()
    if "max" in reason or "length" in reason:
        return "length"
    if "tool" in reason:
        return "tool_call"
    if "safety" in reason or "filter" in reason or "refus" in reason:
        return "content_filter"
    return "stop"


def to_response(completion: Completion, *, replayed: bool) -> lm15.Response:
    """``completion`` as DSPy's response; ``provider_data`` says which provider answered
    and whether the answer came from the call journal."""
    usage = completion.usage
    return lm15.Response(
        id=None,
        model=completion.model,
        message=lm15.Message.assistant([lm15.TextPart(completion.text)]),
        finish_reason=_finish(completion.stop_reason),
        usage=lm15.Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens),
        provider_data={"provider": completion.provider, "replayed": replayed},
    )


_ERRORS: tuple[tuple[type[BaseException], type[lm15.LM15Error]], ...] = (
    (errors.RateLimitedError, lm15.RateLimitError),
    (errors.RateLimitTimeout, lm15.RateLimitError),
    (errors.OverloadedError, lm15.ServerError),
    (errors.ServerError, lm15.ServerError),
    (errors.CircuitOpenError, lm15.ServerError),
    (errors.ProviderTimeoutError, lm15.TimeoutError),
    (errors.OperationTimeout, lm15.TimeoutError),
    (errors.ProviderConnectionError, lm15.TransportError),
    (errors.AuthenticationError, lm15.AuthError),
    (errors.SpendLimitError, lm15.BillingError),
    (errors.InvalidRequestError, lm15.InvalidRequestError),
    (errors.ConfigurationError, lm15.ConfigurationError),
    (errors.RegistryError, lm15.ProviderError),
    (errors.ProviderError, lm15.ProviderError),
)


def lm15_error(error: Exception, *, provider: str | None) -> Exception:
    """The ``dspy.lm15`` error for an otpy ``error`` (raise it ``from error``): rate
    limits, overloads, timeouts, auth, spend limits, bad requests and configuration keep
    their meaning (and ``retry_after``); any other exception is returned as it is."""
    target = next((lm for ours, lm in _ERRORS if isinstance(error, ours)), None)
    if target is None:
        return error
    provider = getattr(error, "provider", None) or provider
    retry_after = getattr(error, "retry_after", None)
    if retry_after is None and isinstance(error, CircuitOpenError):
        retry_after = error.retry_in
    status = getattr(error, "status", None)
    mapped: Exception = target(
        f"{type(error).__name__}: {error}",
        provider=provider,
        status=status if isinstance(status, int) else None,
        retry_after=retry_after if isinstance(retry_after, int | float) else None,
    )
    return mapped
