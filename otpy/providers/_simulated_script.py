"""Scripted tool calls for the simulated provider: what its "model" does in a tool loop.

A script is a list of assistant turns. Turn ``k`` answers a request whose conversation
already holds ``k`` assistant turns, so the answer is a pure function of the request (the
same under any thread interleaving, and a retried turn gets the same answer). A turn is
a text, or a mapping with ``text`` and/or ``calls`` (each ``{name, arguments}``)::

    tool_script:                               # in a simulated provider's options
      "create the greeting":                   # a substring of the first user turn
        - calls: [{name: Write, arguments: {file_path: hello.txt, content: "hi\\n"}}]
        - "I wrote hello.txt."

``tool_script`` is such a mapping (first key found in the first user turn, compared
case-insensitively, in insertion order), one list for every prompt, or a callable of the
request returning a turn or None. A script answers only requests that offer tools; past
its end (or with no matching key) the provider answers as it would without one. Call ids
are ``toolu_sim_<turn>_<call>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from otpy.providers._base import CompletionRequest, Message
from otpy.providers._simulated_parts import bad
from otpy.providers._tooling import ToolCall

__all__ = ["ScriptTurn", "ToolScript", "script_of"]


@dataclass(frozen=True, slots=True)
class ScriptTurn:
    """One scripted assistant turn: its ``text`` and its ``calls`` (name, arguments)."""

    text: str = ""
    calls: tuple[tuple[str, Mapping[str, Any]], ...] = ()

    def tool_calls(self, position: int) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(id=f"toolu_sim_{position}_{index}", name=name, arguments=dict(arguments))
            for index, (name, arguments) in enumerate(self.calls)
        )


ScriptSource = (
    Sequence[Any] | Mapping[str, Sequence[Any]] | Callable[[CompletionRequest], Any] | None
)


class ToolScript:
    """A parsed ``tool_script`` (see the module docstring); immutable, thread-safe."""

    __slots__ = ("_by_key", "_call", "_every")

    def __init__(self, source: ScriptSource) -> None:
        self._call: Callable[[CompletionRequest], Any] | None = None
        self._every: tuple[ScriptTurn, ...] = ()
        self._by_key: tuple[tuple[str, tuple[ScriptTurn, ...]], ...] = ()
        if source is None:
            return
        if callable(source):
            self._call = source
        elif isinstance(source, Mapping):
            self._by_key = tuple(
                (_key(key), _turns(turns, f"tool_script[{key!r}]")) for key, turns in source.items()
            )
        elif isinstance(source, Sequence) and not isinstance(source, str):
            self._every = _turns(source, "tool_script")
        else:
            raise bad("tool_script", "a list of turns, a mapping of them, or a callable", source)

    def __bool__(self) -> bool:
        return bool(self._call or self._every or self._by_key)

    def turn(
        self, request: CompletionRequest, conversation: tuple[Message, ...]
    ) -> tuple[int, ScriptTurn] | None:
        """(position, turn) answering ``request``, or None when the script has none."""
        if not request.tools:
            return None
        position = sum(1 for m in conversation if m.role == "assistant")
        if self._call is not None:
            answer = self._call(request)
            return None if answer is None else (position, _turn(answer, "tool_script()"))
        turns = self._every
        if self._by_key:
            first = next((m.content for m in conversation if m.role == "user"), "").lower()
            turns = next((t for key, t in self._by_key if key in first), ())
        return (position, turns[position]) if position < len(turns) else None


def script_of(source: ScriptSource | ToolScript) -> ToolScript:
    """``source`` parsed (a ToolScript is returned as it is)."""
    return source if isinstance(source, ToolScript) else ToolScript(source)


def _key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise bad("tool_script", "a mapping with non-empty string keys", key)
    return key.lower()


def _turns(value: Any, where: str) -> tuple[ScriptTurn, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise bad(where, "a list of turns", value)
    return tuple(_turn(item, f"{where}[{index}]") for index, item in enumerate(value))


def _turn(value: Any, where: str) -> ScriptTurn:
    if isinstance(value, ScriptTurn):
        return value
    if isinstance(value, str):
        return ScriptTurn(text=value)
    if not isinstance(value, Mapping) or not set(value) <= {"text", "calls"}:
        raise bad(where, "a text or a mapping of text and calls", value)
    text = value.get("text", "")
    calls = value.get("calls", ())
    if not isinstance(text, str):
        raise bad(f"{where}.text", "a string", text)
    if isinstance(calls, str | Mapping) or not isinstance(calls, Sequence):
        raise bad(f"{where}.calls", "a list of {name, arguments}", calls)
    parsed = []
    for index, call in enumerate(calls):
        if (
            not isinstance(call, Mapping)
            or not set(call) <= {"name", "arguments"}
            or not isinstance(call.get("name"), str)
            or not isinstance(call.get("arguments", {}), Mapping)
        ):
            raise bad(f"{where}.calls[{index}]", "{name: str, arguments: mapping}", call)
        parsed.append((call["name"], dict(call.get("arguments", {}))))
    return ScriptTurn(text=text, calls=tuple(parsed))
