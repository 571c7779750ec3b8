"""Tool use in the provider layer: what a model may call, what it called, what came back.

Three plain, frozen models, the same for every provider (each maps them to its API):

- :class:`ToolSpec` — a tool the request offers: ``name``, ``description`` and
  ``parameters``, the JSON Schema (an object schema) of its arguments.
- :class:`ToolCall` — a call the model made in an assistant turn: ``id`` (to pair the
  result with), ``name`` and ``arguments`` (a dict, as the model gave it: validate it
  before use).
- :class:`ToolResult` — the answer to one call, sent back in the next user turn:
  ``call_id``, ``name``, ``content`` (text) and ``is_error``.

A conversation with tools is a sequence of :class:`~otpy.providers.Message`: the
assistant turn carries ``tool_calls``; the user turn after it carries one
``tool_results`` item per call (in any order). ``Completion.tool_calls`` holds the calls of
an answer and ``Completion.message()`` the assistant turn to append.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["GENERATED_ID_PREFIX", "TOOL_NAME_PATTERN", "ToolCall", "ToolResult", "ToolSpec"]

TOOL_NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$"
"""A tool name every provider accepts (Anthropic's and Gemini's rules intersected)."""

GENERATED_ID_PREFIX: Final = "otpy-call-"
"""Prefix of a call id otpy made up because the provider gave none (Gemini may not): such
an id pairs a result with its call inside otpy and is not sent back to the provider."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ToolSpec(_Frozen):
    """A tool a request offers the model: ``name`` (letters, digits, ``_``, ``-``; at most
    64), what it does (``description``: the model reads it to decide), and ``parameters``,
    the JSON Schema of its arguments (``{"type": "object", ...}``)."""

    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @field_validator("parameters")
    @classmethod
    def _an_object_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        if schema.get("type") != "object":
            raise ValueError(f"must be an object schema ({{'type': 'object', ...}}), got {schema}")
        return schema


class ToolCall(_Frozen):
    """One call the model made: ``id`` (unique in the conversation), the tool ``name`` and
    its ``arguments``. ``signature`` is an opaque token some providers attach to a call and
    want back with it (Gemini's thought signature, base64); leave it as it came."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)
    signature: str | None = None


class ToolResult(_Frozen):
    """The answer to the call ``call_id`` of tool ``name``: ``content`` (text the model
    reads) and ``is_error`` (the call failed; ``content`` says why)."""

    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    content: str = ""
    is_error: bool = False
