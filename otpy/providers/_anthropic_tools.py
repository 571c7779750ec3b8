"""Tool use on the Messages API: otpy's tool types as ``tool_use`` / ``tool_result``
content blocks and the ``tools`` / ``tool_choice`` parameters, and back.

Pure functions of plain data (the SDK's ``*Param`` TypedDicts are dicts on the wire).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from otpy.providers._base import CompletionRequest, Message
from otpy.providers._tooling import ToolCall

__all__ = ["message_param", "tool_calls_of", "tool_params"]


def message_param(message: Message) -> dict[str, Any]:
    """One ``MessageParam``: a plain string content for a text-only turn; otherwise a list
    of blocks — ``tool_result`` blocks first (the API wants them before any text in a user
    turn), then the text (if any), then the ``tool_use`` blocks of an assistant turn."""
    if not message.tool_calls and not message.tool_results:
        return {"role": message.role, "content": message.content}
    blocks: list[dict[str, Any]] = []
    for result in message.tool_results:
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": result.call_id,
            "content": result.content,
        }
        if result.is_error:
            block["is_error"] = True
        blocks.append(block)
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        )
    return {"role": message.role, "content": blocks}


def tool_params(request: CompletionRequest) -> dict[str, Any]:
    """``tools`` (``ToolParam``: name, description, input_schema) and, unless it is
    ``auto`` (the API's default), ``tool_choice``; nothing for a request without tools."""
    if not request.tools:
        return {}
    tools = []
    for spec in request.tools:
        tool: dict[str, Any] = {"name": spec.name, "input_schema": spec.parameters}
        if spec.description:
            tool["description"] = spec.description
        tools.append(tool)
    params: dict[str, Any] = {"tools": tools}
    if request.tool_choice != "auto":
        params["tool_choice"] = {"type": request.tool_choice}
    return params


def tool_calls_of(blocks: Iterable[Any]) -> tuple[ToolCall, ...]:
    """The ``tool_use`` blocks of an answer (objects with ``type``, ``id``, ``name`` and
    ``input``) as ToolCalls, in order; an input that is not an object becomes
    ``{"value": input}`` so that the call still reaches the tool (which will refuse it)."""
    calls = []
    for index, block in enumerate(blocks):
        if block.type != "tool_use":
            continue
        arguments = block.input if isinstance(block.input, dict) else {"value": block.input}
        calls.append(
            ToolCall(id=block.id or f"toolu_{index}", name=block.name or "", arguments=arguments)
        )
    return tuple(calls)
