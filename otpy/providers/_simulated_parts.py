"""The plain parts of the simulated provider: its setting checks, the request fingerprint
and seeds, and how an answer ends (stop sequences, ``max_tokens``). No state."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from otpy._checks import is_finite_number
from otpy.errors import ConfigurationError
from otpy.providers._base import CompletionRequest, Message

__all__ = [
    "Responses",
    "SimulatedStats",
    "bad",
    "capabilities_of",
    "cut",
    "derive",
    "fingerprint_of",
    "input_chars",
    "last_user_turn",
    "latency_of",
    "parse_json",
    "rate",
    "responses_of",
    "text",
]

Responses = Mapping[str, str] | Callable[[CompletionRequest], str]


def fingerprint_of(request: CompletionRequest, conversation: tuple[Message, ...]) -> str:
    """A stable hash of what decides the answer (``metadata`` is left out)."""
    turns = [
        [
            m.role,
            m.content,
            [[c.id, c.name, c.arguments] for c in m.tool_calls],
            [[r.call_id, r.content, r.is_error] for r in m.tool_results],
        ]
        for m in conversation
    ]
    content = [
        turns,
        request.system,
        request.model,
        request.temperature,
        request.max_tokens,
        list(request.stop),
        request.response_schema,
        [[t.name, t.description, t.parameters] for t in request.tools],
        request.tool_choice,
    ]
    blob = json.dumps(content, separators=(",", ":"), default=repr)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def derive(seed: int, fingerprint: str, salt: str) -> int:
    """A 64-bit seed from the provider's seed, a fingerprint and a salt."""
    digest = hashlib.blake2b(f"{seed}|{fingerprint}|{salt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def last_user_turn(conversation: tuple[Message, ...]) -> str:
    """The text of the last user turn that is not tool results ("" if none)."""
    for message in reversed(conversation):
        if message.role == "user" and not message.tool_results:
            return message.content
    return ""


def input_chars(system: str | None, conversation: tuple[Message, ...]) -> int:
    return len(system or "") + sum(m.size() for m in conversation)


def cut(text: str, request: CompletionRequest) -> tuple[str, str]:
    """The text as a token stream would end: at the first complete stop sequence, or at
    ``max_tokens`` (4 characters a token), whichever comes first."""
    limit = request.max_tokens * 4
    hits = [(text.find(s), s) for s in request.stop if s]
    found = [(i, s) for i, s in hits if i >= 0]
    if found:
        index, stop = min(found, key=lambda hit: hit[0])
        if index + len(stop) <= limit:
            return text[:index], "stop_sequence"
    if len(text) > limit:
        return text[:limit], "max_tokens"
    return text, "end_turn"


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def bad(argument: str, expected: str, value: Any) -> ConfigurationError:
    return ConfigurationError(f"SimulatedProvider: {argument} must be {expected}, got {value!r}")


def text(argument: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise bad(argument, "a non-empty string", value)
    return value


def rate(argument: str, value: Any) -> float:
    if not is_finite_number(value) or not 0.0 <= value <= 1.0:
        raise bad(argument, "a number in [0, 1]", value)
    return float(value)


def latency_of(value: Any) -> float | tuple[float, float]:
    if isinstance(value, tuple) and len(value) == 2 and all(is_finite_number(v) for v in value):
        if 0.0 <= value[0] <= value[1]:
            return (float(value[0]), float(value[1]))
    elif is_finite_number(value) and value >= 0:
        return float(value)
    raise bad("latency", "seconds >= 0 or a (low, high) pair with 0 <= low <= high", value)


def responses_of(
    value: Any,
) -> tuple[tuple[tuple[str, str], ...], Callable[[CompletionRequest], str] | None]:
    if value is None:
        return (), None
    if callable(value):
        return (), value
    if not isinstance(value, Mapping):
        raise bad("responses", "a mapping or a callable of the request", value)
    for key, answer in value.items():
        if not isinstance(key, str) or not isinstance(answer, str):
            raise bad("responses", "a mapping of str to str", {key: answer})
    return tuple((key.lower(), answer) for key, answer in value.items()), None


def capabilities_of(value: Any) -> frozenset[str]:
    items = None if isinstance(value, str) or not isinstance(value, Iterable) else tuple(value)
    if items is None or not all(isinstance(c, str) for c in items):
        raise bad("capabilities", "an iterable of strings", value)
    return frozenset(items)


@dataclass(frozen=True)
class SimulatedStats:
    """A snapshot of a :class:`SimulatedProvider`'s counters.

    ``calls`` counts every request received, ``completed`` those answered, ``failures``
    the rest by error class name (injected ones included). Tokens and ``latency`` (seconds
    slept) add up the completed calls; ``invalid_structured`` counts the answers made
    deliberately invalid for their schema; ``by_prompt`` counts calls by the text of the
    last user turn (the first ``keep_requests`` distinct texts); ``pending_injections``
    is what ``inject`` queued and no call consumed.
    """

    calls: int
    completed: int
    failures: dict[str, int]
    input_tokens: int
    output_tokens: int
    invalid_structured: int
    latency: float
    by_prompt: dict[str, int]
    pending_injections: int
