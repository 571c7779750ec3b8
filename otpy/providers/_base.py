"""The provider behaviour: one ``complete(request) -> Completion`` call to an LLM.

Requests and completions are pydantic models (validated, immutable); a provider maps them
to its API. Providers raise the ``ProviderError`` classes of :mod:`otpy.errors` (429 →
``RateLimitedError`` with ``retry_after``, 5xx → ``ServerError``, ...) so the resilience
layer can tell faults that a retry may cure from those it cannot.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from otpy.providers._tooling import ToolCall, ToolResult, ToolSpec

__all__ = [
    "CAPABILITIES",
    "Completion",
    "CompletionRequest",
    "Message",
    "Provider",
    "ProviderGateway",
    "RateLimitReading",
    "Usage",
    "estimate_tokens",
]

CAPABILITIES = frozenset(
    {"text", "chat", "system_prompt", "structured_output", "stop_sequences", "tools"}
)
"""The capabilities otpy's own steps ask for; a provider may declare others (any string).
``tools``: the provider maps ``CompletionRequest.tools`` and the messages' tool calls and
results to its API, and answers with ``Completion.tool_calls``."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Message(_Frozen):
    """One turn of a conversation: its ``content`` (text, may be empty), the
    ``tool_calls`` an assistant turn made, or the ``tool_results`` a user turn sends back
    (see :mod:`otpy.providers._tooling`)."""

    role: Literal["user", "assistant"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()

    @model_validator(mode="after")
    def _tools_on_the_right_side(self) -> Message:
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only an assistant message carries tool_calls")
        if self.tool_results and self.role != "user":
            raise ValueError("only a user message carries tool_results")
        return self

    def size(self) -> int:
        """Characters of everything it carries (for token estimates)."""
        size = len(self.content)
        for call in self.tool_calls:
            size += len(call.name) + len(str(call.arguments))
        for result in self.tool_results:
            size += len(result.content) + len(result.name)
        return size


class Usage(_Frozen):
    """Tokens a call used, as the provider reported them."""

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class CompletionRequest(_Frozen):
    """What to ask: a ``prompt`` (sent as the last user turn) and/or ``messages``, an
    optional ``system`` prompt, sampling settings, and ``response_schema`` (a JSON Schema)
    for structured output. ``model`` ``None`` means the provider's default model.

    ``tools`` are the tools the model may call (a provider needs the ``tools``
    capability); ``tool_choice`` says whether it may (``auto``), must (``any``) or may
    not (``none``) call one. A request has tools or a ``response_schema``, not both."""

    prompt: str | None = None
    messages: tuple[Message, ...] = ()
    system: str | None = None
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int = Field(default=1024, gt=0)
    stop: tuple[str, ...] = ()
    response_schema: dict[str, Any] | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: Literal["auto", "any", "none"] = "auto"
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_content(self) -> CompletionRequest:
        if self.prompt is None and not self.messages:
            raise ValueError("a completion request needs a prompt or messages")
        if self.tools and self.response_schema is not None:
            raise ValueError("a completion request has tools or a response_schema, not both")
        names = [tool.name for tool in self.tools]
        if len(set(names)) != len(names):
            raise ValueError(f"two tools of the same name in {names}")
        return self

    def conversation(self) -> tuple[Message, ...]:
        """``messages`` followed by ``prompt`` as a user turn (if given)."""
        if self.prompt is None:
            return self.messages
        return (*self.messages, Message(role="user", content=self.prompt))


class RateLimitReading(_Frozen):
    """What a provider said about one of its rate limits with an answer (Anthropic's
    ``anthropic-ratelimit-*`` headers): the ``dimension`` (``requests``, ``tokens``,
    ``input_tokens``, ``output_tokens``), its ``limit``, what is ``remaining`` and when the
    window resets (``reset_at``, epoch seconds). Any of the numbers may be unknown."""

    dimension: str
    limit: int | None = Field(default=None, ge=0)
    remaining: int | None = Field(default=None, ge=0)
    reset_at: float | None = None


class Completion(_Frozen):
    """What a provider answered: ``text``, ``structured`` (the parsed object when a
    ``response_schema`` was asked for), ``usage``, ``latency`` in seconds, the ``model``
    and ``provider`` that served it, why it stopped, and the provider's own view of its
    rate limits (``rate_limits``; empty when it sends none) for the limiter to align with.
    ``tool_calls`` are the calls the model made (its ``stop_reason`` is then ``tool_use``);
    :meth:`message` is the assistant turn to append to the conversation."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    structured: Any = None
    usage: Usage = Field(default_factory=Usage)
    latency: float = Field(default=0.0, ge=0.0)
    model: str
    provider: str
    stop_reason: str | None = None
    rate_limits: tuple[RateLimitReading, ...] = ()

    def message(self) -> Message:
        """This answer as the assistant turn of a conversation (text and tool calls)."""
        return Message(role="assistant", content=self.text, tool_calls=self.tool_calls)


def estimate_tokens(request: CompletionRequest) -> int:
    """A cheap upper-bound guess of a request's tokens (input ~ 4 characters a token, plus
    ``max_tokens`` of output), for reserving tokens/minute before the call."""
    chars = len(request.system or "") + sum(m.size() for m in request.conversation())
    if request.response_schema is not None:
        chars += len(str(request.response_schema))
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description) + len(str(tool.parameters))
    return chars // 4 + 1 + request.max_tokens


class Provider(ABC):
    """An LLM behind one call. Subclasses set ``capabilities`` (and may override
    ``estimate_tokens`` and ``close``).

    ``complete`` runs in the caller's thread and may block (network, a simulated latency on
    the injected clock); the registry calls it through a ``guard`` (rate limits, breaker,
    retries, timeout), so a provider makes ONE attempt and raises the ``ProviderError``
    class that says what went wrong. It must be safe to call from many threads at once.
    """

    name: str = "provider"
    capabilities: ClassVar[frozenset[str]] = frozenset({"text"})

    @abstractmethod
    def complete(self, request: CompletionRequest) -> Completion:
        """One attempt at ``request``."""

    def estimate_tokens(self, request: CompletionRequest) -> int:
        """Tokens to reserve before the call; the permit is settled with the real usage."""
        return estimate_tokens(request)

    def close(self) -> None:
        """Release connections; the provider is not used again (nothing to do here)."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class ProviderGateway(Protocol):
    """How steps reach providers: pick one by name or by capabilities and complete through
    its guard (the ProviderRegistry handle implements it)."""

    def complete(
        self,
        request: CompletionRequest,
        *,
        provider: str | None = None,
        capabilities: Sequence[str] = (),
    ) -> Completion: ...
