"""How a :class:`CompletionRequest` becomes a Gemini ``generateContent`` call and how the
answer or the error comes back: pure functions, tested through the provider.

``google.genai`` is imported inside the functions (it takes ~0.4 s to import), so
``import otpy`` stays fast for users who never call Gemini.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from otpy.errors import (
    InvalidRequestError,
    ProviderError,
    ServerError,
)
from otpy.providers._base import Completion, CompletionRequest, Usage
from otpy.providers._errors import status_error
from otpy.providers._gemini_tools import parts_of, tool_calls_of, tool_config_of
from otpy.resilience import parse_retry_after

if TYPE_CHECKING:
    from google.genai import errors, types

__all__ = [
    "api_error",
    "completion_of",
    "config_of",
    "contents_of",
    "retry_delay",
    "transport_errors",
]

_FINISHED = frozenset({"STOP", "MAX_TOKENS", "FINISH_REASON_UNSPECIFIED"})
"""Finish reasons of a complete answer; any other (SAFETY, RECITATION, ...) is an error."""
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)s\s*$")
_PER_MINUTE = re.compile(r"per\s*minute", re.IGNORECASE)
_PER_DAY = re.compile(r"per\s*day", re.IGNORECASE)
_SPENT = re.compile(
    r"credits?\s+(?:are|is|have\s+been|has\s+been)\s+(?:depleted|exhausted|used\s+up)"
    r"|prepay|spend(?:ing)?\s+(?:cap|limit)|billing\s+account",
    re.IGNORECASE,
)
_QUOTA = re.compile(r"exceeded\s+your\s+current\s+quota", re.IGNORECASE)
_BAD_KEY = re.compile(r"API[ _]key\s+(?:not\s+valid|invalid|expired)", re.IGNORECASE)
_MESSAGE_LIMIT = 300


# -- the request ------------------------------------------------------------------------


def contents_of(request: CompletionRequest) -> list[types.Content]:
    """The conversation as Gemini contents: ``assistant`` turns have the role ``model``;
    tool calls and results are function call and response parts (see
    :mod:`otpy.providers._gemini_tools`)."""
    from google.genai import types

    return [
        types.Content(role="user" if message.role == "user" else "model", parts=parts_of(message))
        for message in request.conversation()
    ]


def config_of(request: CompletionRequest) -> types.GenerateContentConfig:
    """The generation config: system instruction, sampling, stop sequences and, with a
    ``response_schema``, JSON output constrained by it (``responseJsonSchema`` takes a plain
    JSON Schema; ``responseSchema`` only an OpenAPI subset). The SDK's automatic function
    calling and automatic continuation are off: one ``complete`` is one HTTP request.
    The request's ``tools`` become function declarations with the calling mode."""
    from google.genai import types

    schema = request.response_schema
    system = None
    if request.system is not None:
        system = types.Content(parts=[types.Part(text=request.system)])
    return types.GenerateContentConfig(
        system_instruction=system,
        temperature=request.temperature,
        max_output_tokens=request.max_tokens,
        stop_sequences=list(request.stop) or None,
        response_mime_type=None if schema is None else "application/json",
        response_json_schema=schema,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        automatic_continuation=False,
        **tool_config_of(request),
    )


# -- the answer -------------------------------------------------------------------------


def completion_of(
    response: types.GenerateContentResponse,
    request: CompletionRequest,
    *,
    model: str,
    provider: str,
    latency: float,
) -> Completion:
    """The Completion of a 200 answer (its first candidate).

    Raises InvalidRequestError when the prompt or the answer was blocked (a finish reason
    other than STOP / MAX_TOKENS, or a ``promptFeedback.blockReason``), and ServerError
    (status 200, retryable) for an answer with neither candidates nor a block reason.
    """
    candidates = response.candidates or []
    if not candidates:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            why = _name(feedback.block_reason)
            more = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
            raise InvalidRequestError(
                f"the prompt was blocked (block reason {why}{more})", provider=provider, status=200
            )
        raise ServerError(
            "malformed response: no candidates and no block reason", provider=provider, status=200
        )
    candidate = candidates[0]
    reason = None if candidate.finish_reason is None else _name(candidate.finish_reason)
    if reason is not None and reason not in _FINISHED:
        more = f": {candidate.finish_message}" if candidate.finish_message else ""
        raise InvalidRequestError(
            f"no usable answer (finish reason {reason}{more})", provider=provider, status=200
        )
    if candidate.content is None and reason is None:
        raise ServerError(
            "malformed response: a candidate with no content and no finish reason",
            provider=provider,
            status=200,
        )
    parts = (candidate.content.parts if candidate.content else None) or []
    text = "".join(p.text for p in parts if isinstance(p.text, str) and not p.thought)
    turn = sum(1 for message in request.conversation() if message.role == "assistant")
    calls = tool_calls_of(parts, turn) if request.tools else ()
    if calls:
        reason = "TOOL_USE"
    return Completion(
        text=text,
        tool_calls=calls,
        structured=_structured(response, text) if request.response_schema is not None else None,
        usage=_usage(response.usage_metadata, request, text),
        latency=latency,
        model=response.model_version or model,
        provider=provider,
        stop_reason=None if reason is None else reason.lower(),
    )


def _name(value: Any) -> str:
    """An SDK enum's name (``FinishReason.SAFETY`` -> ``"SAFETY"``), or the string."""
    return str(getattr(value, "value", value))


def _structured(response: types.GenerateContentResponse, text: str) -> Any:
    """The SDK's ``parsed`` JSON, else the text parsed here; None when it is not JSON."""
    if response.parsed is not None:
        return response.parsed
    try:
        return json.loads(text)
    except ValueError:
        return None


def _usage(
    metadata: types.GenerateContentResponseUsageMetadata | None,
    request: CompletionRequest,
    text: str,
) -> Usage:
    """Tokens from ``usageMetadata`` (thinking tokens count as output); a count the answer
    leaves out is estimated (4 characters a token) so the TPM limiter still sees it."""
    prompt = metadata.prompt_token_count if metadata else None
    output = metadata.candidates_token_count if metadata else None
    thoughts = (metadata.thoughts_token_count if metadata else None) or 0
    if prompt is None:
        chars = len(request.system or "") + sum(m.size() for m in request.conversation())
        prompt = max(1, math.ceil(chars / 4))
    if output is None:
        output = math.ceil(len(text) / 4)
    return Usage(input_tokens=prompt, output_tokens=output + thoughts)


# -- errors -----------------------------------------------------------------------------


def api_error(exc: errors.APIError, provider: str, now: float) -> ProviderError:
    """The ProviderError for an HTTP error answer (``now``: epoch seconds, for a
    Retry-After given as an HTTP-date).

    429 / RESOURCE_EXHAUSTED is a RateLimitedError, with ``retry_after`` from the
    Retry-After header, else from the ``google.rpc.RetryInfo`` detail; it is a
    SpendLimitError instead when the quota cannot come back within minutes: a per-day
    quota (QuotaFailure ``quotaId`` or message), exhausted credits / billing, or "exceeded
    your current quota" with no per-minute quota named and no advice when to retry.
    503 / 529 / UNAVAILABLE: OverloadedError; other 5xx: ServerError; 401 / 403 and a 400
    saying the API key is not valid: AuthenticationError; other 4xx: InvalidRequestError.
    """
    code = exc.code if isinstance(exc.code, int) else 0
    status = str(exc.status or "")
    error = _error_body(exc.details)
    details = [d for d in error.get("details") or () if isinstance(d, Mapping)]
    message = _message(status, exc.message or error.get("message"))
    limited = code == 429 or status == "RESOURCE_EXHAUSTED"
    advised = _retry_after(exc, details, now) if limited else None
    return status_error(
        code,
        message,
        provider=provider,
        retry_after=advised,
        spent=limited and _spent(str(exc.message or ""), _quota_ids(details), advised),
        rate_limited=limited,
        overloaded=status == "UNAVAILABLE",
        unauthenticated=status in ("UNAUTHENTICATED", "PERMISSION_DENIED")
        or _bad_key(str(exc.message or ""), details),
    )


def _error_body(body: Any) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        inner = body.get("error")
        return inner if isinstance(inner, Mapping) else body
    return {}


def _message(status: str, message: Any) -> str:
    text = " ".join(str(message or "no message").split())
    if len(text) > _MESSAGE_LIMIT:
        text = text[: _MESSAGE_LIMIT - 3] + "..."
    return f"{status}: {text}" if status else text


def _retry_after(
    exc: errors.APIError, details: list[Mapping[str, Any]], now: float
) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is not None:
        try:
            advised = parse_retry_after(dict(headers.items()), now)
        except (AttributeError, TypeError):
            advised = None
        if advised is not None:
            return advised
    return retry_delay(details)


def retry_delay(details: list[Mapping[str, Any]]) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail's ``retryDelay`` (a protobuf
    Duration: ``"7s"``, ``"1.5s"``, or ``{"seconds": 7, "nanos": 0}``), or None."""
    for detail in details:
        if not str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            continue
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and (match := _DURATION.match(delay)):
            return float(match[1])
        if isinstance(delay, Mapping):
            try:
                seconds = float(delay.get("seconds", 0)) + float(delay.get("nanos", 0)) / 1e9
            except (TypeError, ValueError):
                continue
            if math.isfinite(seconds) and seconds >= 0:
                return seconds
    return None


def _quota_ids(details: list[Mapping[str, Any]]) -> list[str]:
    ids = []
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure"):
            for violation in detail.get("violations") or ():
                if isinstance(violation, Mapping):
                    ids.append(f"{violation.get('quotaId', '')} {violation.get('quotaMetric', '')}")
    return ids


def _spent(message: str, quota_ids: list[str], advised: float | None) -> bool:
    """Whether a 429 says the quota is gone for the day or the money is gone (not
    retryable), rather than a per-minute window is full (retryable)."""
    if any(_PER_MINUTE.search(q) for q in quota_ids) or _PER_MINUTE.search(message):
        return False
    if any(_PER_DAY.search(q) for q in quota_ids) or _PER_DAY.search(message):
        return True
    if _SPENT.search(message):
        return True
    return bool(_QUOTA.search(message)) and not quota_ids and advised is None


def _bad_key(message: str, details: list[Mapping[str, Any]]) -> bool:
    reasons = (
        str(d.get("reason", "")) for d in details if str(d.get("@type", "")).endswith("ErrorInfo")
    )
    return any(r.startswith("API_KEY_") for r in reasons) or bool(_BAD_KEY.search(message))


@functools.cache
def transport_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """``(timeouts, other transport errors)`` of the HTTP libraries the SDK may use
    (``httpx2`` by default, ``httpx`` as its fallback): whichever are installed."""
    timeouts: list[type[BaseException]] = []
    requests: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        timeouts.append(module.TimeoutException)
        requests.append(module.RequestError)
    return tuple(timeouts), tuple(requests)
