"""Function calling on the Gemini API: otpy's tool types as ``functionDeclarations``,
``functionCall`` and ``functionResponse`` parts, and back (through ``google.genai.types``).

A call id otpy generated (Gemini may send calls without one; see
:data:`~otpy.providers._tooling.GENERATED_ID_PREFIX`) is not sent back: the API pairs
such a response with its call by name and order. A call's thought signature travels as
base64 in ``ToolCall.signature`` and goes back as the part's ``thoughtSignature``.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from otpy.providers._base import CompletionRequest, Message
from otpy.providers._tooling import GENERATED_ID_PREFIX, ToolCall

if TYPE_CHECKING:
    from google.genai import types

__all__ = ["parts_of", "tool_calls_of", "tool_config_of"]

_MODES = {"auto": "AUTO", "any": "ANY", "none": "NONE"}


def parts_of(message: Message) -> list[types.Part]:
    """A message's parts: function responses first (``{"output": text}``, or
    ``{"error": text}`` for an error result), then the text, then the function calls."""
    from google.genai import types

    if not message.tool_calls and not message.tool_results:
        return [types.Part(text=message.content)]
    parts = []
    for result in message.tool_results:
        response = {"error" if result.is_error else "output": result.content}
        parts.append(
            types.Part(
                function_response=types.FunctionResponse(
                    id=_sent_id(result.call_id), name=result.name, response=response
                )
            )
        )
    if message.content:
        parts.append(types.Part(text=message.content))
    for call in message.tool_calls:
        parts.append(
            types.Part(
                function_call=types.FunctionCall(
                    id=_sent_id(call.id), name=call.name, args=call.arguments
                ),
                thought_signature=_signature_bytes(call.signature),
            )
        )
    return parts


def tool_config_of(request: CompletionRequest) -> dict[str, Any]:
    """The ``tools`` (one Tool with every function declaration, its parameters as
    ``parametersJsonSchema``) and ``tool_config`` (the calling mode) of the generation
    config; nothing for a request without tools."""
    from google.genai import types

    if not request.tools:
        return {}
    declarations = [
        types.FunctionDeclaration(
            name=spec.name,
            description=spec.description or None,
            parameters_json_schema=spec.parameters,
        )
        for spec in request.tools
    ]
    mode = types.FunctionCallingConfigMode(_MODES[request.tool_choice])
    return {
        "tools": [types.Tool(function_declarations=declarations)],
        "tool_config": types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(mode=mode)
        ),
    }


def tool_calls_of(parts: list[types.Part], turn: int = 0) -> tuple[ToolCall, ...]:
    """The function calls among an answer's parts, in order. A call without an id gets
    one made up, unique in the conversation: :data:`GENERATED_ID_PREFIX`, the answer's
    ``turn`` (assistant turns before it) and the part's position (``otpy-call-2-0``)."""
    calls = []
    for index, part in enumerate(parts):
        call = part.function_call
        if call is None:
            continue
        signature = part.thought_signature
        calls.append(
            ToolCall(
                id=call.id or f"{GENERATED_ID_PREFIX}{turn}-{index}",
                name=call.name or "",
                arguments=dict(call.args or {}),
                signature=base64.b64encode(signature).decode("ascii") if signature else None,
            )
        )
    return tuple(calls)


def _sent_id(call_id: str) -> str | None:
    return None if call_id.startswith(GENERATED_ID_PREFIX) else call_id


def _signature_bytes(signature: str | None) -> bytes | None:
    if not signature:
        return None
    try:
        return base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return None  # not one Gemini made: nothing to give back
