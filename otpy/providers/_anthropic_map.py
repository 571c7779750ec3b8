"""How an :class:`~otpy.providers.AnthropicProvider` call maps to and from the Messages API.

Pure functions, no client and no I/O: the request parameters, the answer (text, structured
output, usage), the ``anthropic-ratelimit-*`` headers, and the SDK's exceptions as
:mod:`otpy.errors` classes. ``anthropic`` is imported inside :func:`map_error` (it takes
about a second to import), so ``import otpy`` does not pay for it.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from otpy.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    ServerError,
)
from otpy.providers._anthropic_tools import message_param, tool_calls_of, tool_params
from otpy.providers._base import CompletionRequest, RateLimitReading, Usage
from otpy.providers._errors import status_error
from otpy.providers._tooling import ToolCall
from otpy.resilience import parse_retry_after

if TYPE_CHECKING:
    import anthropic

__all__ = [
    "RESPOND_TOOL",
    "Answer",
    "MalformedAnswer",
    "dropped_sampling",
    "map_error",
    "message_params",
    "parse_answer",
    "rate_limits",
]

RESPOND_TOOL = "respond"
"""The tool a structured-output request forces the model to call; its input is the answer."""
_WRAPPED = "value"  # a schema that is not an object travels as {"value": <schema>}
_SAMPLING = ("temperature",)  # what CompletionRequest has that the API no longer accepts
_DIMENSIONS = {
    "requests": "requests",
    "tokens": "tokens",
    "input-tokens": "input_tokens",
    "output-tokens": "output_tokens",
}
_SPEND_CODES = frozenset(
    {
        "contract_spend_limit_reached",
        "enforced_spend_limit_reached",
        "linked_organization_spend_limit_reached",
        "linked_organization_billing_unavailable",
    }
)
_SPEND_PHRASES = ("credit balance", "spend limit", "usage limit")
_MAX_MESSAGE = 300  # characters of a server's error message kept in ours


# -- the request ----------------------------------------------------------------------------


def message_params(request: CompletionRequest, *, model: str, max_tokens: int) -> dict[str, Any]:
    """The keyword arguments of ``client.messages.create`` for ``request``.

    ``temperature`` is not sent: the API version this SDK speaks (``anthropic-version``
    2026-10-21) refuses every sampling parameter with a 400, and the SDK dropped them from
    ``create``. A ``response_schema`` becomes a forced call of the :data:`RESPOND_TOOL`
    tool whose ``input_schema`` is the schema (wrapped in an object if it is not one).
    The request's ``tools``, and the messages' tool calls and results, are mapped by
    :mod:`otpy.providers._anthropic_tools`.
    """
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [message_param(m) for m in request.conversation()],
    }
    if request.system is not None:
        params["system"] = request.system
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    schema = request.response_schema
    if schema is not None:
        params["tools"] = [
            {
                "name": RESPOND_TOOL,
                "description": "Give the answer, in exactly this shape.",
                "input_schema": schema if _is_object(schema) else _wrap(schema),
            }
        ]
        params["tool_choice"] = {"type": "tool", "name": RESPOND_TOOL}
    params.update(tool_params(request))
    return params


def dropped_sampling(request: CompletionRequest) -> tuple[str, ...]:
    """The sampling settings of ``request`` that :func:`message_params` does not send."""
    return tuple(name for name in _SAMPLING if getattr(request, name) is not None)


def _is_object(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "object"


def _wrap(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {_WRAPPED: dict(schema)}, "required": [_WRAPPED]}


# -- the answer -----------------------------------------------------------------------------


class _Block(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None


class _Usage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cache_creation_input_tokens: int | None = Field(default=None, ge=0)
    cache_read_input_tokens: int | None = Field(default=None, ge=0)


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str = "message"
    content: list[_Block]
    model: str | None = None
    stop_reason: str | None = None
    usage: _Usage


class MalformedAnswer(ValueError):
    """A decoded body that is not a Messages response (the message says which field)."""


class Answer(BaseModel):
    """What a Messages response said, in otpy's terms."""

    model_config = ConfigDict(frozen=True)

    text: str
    structured: Any = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage
    model: str | None
    stop_reason: str | None


def parse_answer(data: object, request: CompletionRequest) -> Answer:
    """The answer in a decoded Messages response body.

    ``structured`` is the :data:`RESPOND_TOOL` call's input (unwrapped again for a schema
    that is not an object) and ``text`` its JSON; without a schema, or if the model did not
    call the tool, ``text`` joins the text blocks. For a request with ``tools`` the
    ``tool_use`` blocks are ``tool_calls``. Cache reads and writes count as input tokens.
    Raises MalformedAnswer (saying which field is wrong) for a body that is not one.
    """
    try:
        message = _Message.model_validate(data)
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()[:3]
        )
        raise MalformedAnswer(f"not a Messages response ({fields})") from None
    if message.type != "message":
        raise MalformedAnswer(f"not a Messages response (type {message.type[:40]!r})")
    u = message.usage
    cached = (u.cache_creation_input_tokens or 0) + (u.cache_read_input_tokens or 0)
    usage = Usage(input_tokens=u.input_tokens + cached, output_tokens=u.output_tokens)
    text = "".join(b.text or "" for b in message.content if b.type == "text")
    structured = None
    schema = request.response_schema
    if schema is not None:
        call = next(
            (b for b in message.content if b.type == "tool_use" and b.name == RESPOND_TOOL), None
        )
        if call is not None:
            structured = call.input
            if not _is_object(schema) and isinstance(structured, dict):
                structured = structured.get(_WRAPPED)
            text = json.dumps(structured, ensure_ascii=False)
    return Answer(
        text=text,
        structured=structured,
        tool_calls=tool_calls_of(message.content) if request.tools else (),
        usage=usage,
        model=message.model,
        stop_reason=message.stop_reason,
    )


# -- rate-limit headers ---------------------------------------------------------------------


def rate_limits(headers: Mapping[str, str]) -> tuple[RateLimitReading, ...]:
    """The ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,
    remaining,reset}`` headers as readings (``reset_at`` in epoch seconds from the RFC 3339
    reset). A dimension with no header is absent; a malformed value is ignored (None), and a
    dimension whose every value is malformed is absent: a bad header never fails an answer."""
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    readings = []
    for part, dimension in _DIMENSIONS.items():
        prefix = f"anthropic-ratelimit-{part}-"
        raw = [lower.get(prefix + field) for field in ("limit", "remaining", "reset")]
        if all(value is None for value in raw):
            continue
        limit, remaining = _count(raw[0]), _count(raw[1])
        reset_at = _instant(raw[2])
        if limit is None and remaining is None and reset_at is None:
            continue
        readings.append(
            RateLimitReading(
                dimension=dimension, limit=limit, remaining=remaining, reset_at=reset_at
            )
        )
    return tuple(readings)


def _count(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def _instant(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        when = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    stamp = when.timestamp()
    return stamp if math.isfinite(stamp) else None


# -- errors ---------------------------------------------------------------------------------


def map_error(
    exc: anthropic.AnthropicError,
    *,
    provider: str,
    redact: Callable[[str], str],
    now: float,
    timeout: float,
) -> ProviderError:
    """The :mod:`otpy.errors` class for an SDK exception, carrying the server's message
    passed through ``redact``. ``now`` (epoch seconds) dates an HTTP-date Retry-After;
    ``timeout`` is the client's, for the message of a timeout."""
    import anthropic

    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderTimeoutError(f"no answer within {timeout:g} s", provider=provider)
    if isinstance(exc, anthropic.APIConnectionError):
        cause = exc.__cause__
        why = f"{type(cause).__name__}: {cause}" if cause is not None else exc.message
        return ProviderConnectionError(
            f"could not reach the API ({_short(redact(why))})", provider=provider
        )
    if isinstance(exc, anthropic.APIResponseValidationError):
        return ServerError(f"malformed response: {_short(redact(exc.message))}",
                           provider=provider, status=exc.status_code)  # fmt: skip
    if not isinstance(exc, anthropic.APIStatusError):
        return ProviderError(f"{type(exc).__name__}: {_short(redact(str(exc)))}", provider=provider)
    status = exc.status_code
    kind = exc.type or "error"
    said = exc.api_message or _body_text(exc)
    message = f"{kind}: {_short(redact(said))}"
    if exc.request_id:
        message += f" (request-id {exc.request_id})"
    return status_error(
        status,
        message,
        provider=provider,
        retry_after=parse_retry_after(exc.response.headers, now),
        spent=_spend_limit(status, exc.type, exc.error_code, said),
        overloaded=exc.type == "overloaded_error",
    )


def _spend_limit(status: int, kind: str | None, code: str | None, said: str) -> bool:
    """Credits, budget or spend limit exhausted: 402, a ``billing_error``, a spend-limit
    error code, or Anthropic's wording of it on a 400 / 403 / 429."""
    if status == 402 or kind == "billing_error":
        return True
    if code is not None and (code in _SPEND_CODES or "spend_limit" in code):
        return True
    lowered = said.lower()
    return status in (400, 403, 429) and any(phrase in lowered for phrase in _SPEND_PHRASES)


def _body_text(exc: anthropic.APIStatusError) -> str:
    """The body of an error without an ``error.message`` (a proxy's HTML page, say)."""
    body = exc.body
    if isinstance(body, str) and body.strip():
        return body.strip()
    return exc.message or f"HTTP {exc.status_code} with no error message"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
