"""Legacy prompt parts (a list of ``{type: ...}`` mappings) to one template string.

``static`` parts are their ``content``; ``previous_response`` parts become
``{{ steps.<step>.output }}`` (``.<extract path>`` appended); a ``claude_continue`` part is
its ``new_prompt``. ``file`` and ``session_context`` parts cannot be carried over: a
``file`` part is never read (no file access from user configs) and becomes an
error-level change asking the user to inline it. Parts are joined with a newline, as
pipeline_ex's prompt builder joined them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from otpy.compat._report import Recorder

__all__ = ["prompt_template"]

_NAME: Final = re.compile(r"[A-Za-z0-9_\-]+")
_PART_TYPES: Final = ("static", "previous_response", "file", "claude_continue", "session_context")
_IGNORED_OPTIONS: Final = ("extract_with", "summary", "max_length")


def _lookup(part: Mapping[str, Any], step: str, where: str, record: Recorder) -> str:
    source = part.get("step")
    if not isinstance(source, str) or _NAME.fullmatch(source) is None:
        raise record.invalid(
            step,
            f"{where}.step",
            f"a previous_response part needs the name of an earlier step (letters, digits, "
            f"'_' or '-'), got {source!r}",
        )
    path = ["steps", source, "output"]
    extract = part.get("extract")
    if extract is not None:
        text = extract.removeprefix("$.") if isinstance(extract, str) else None
        segments = text.split(".") if text else []
        if not segments or not all(_NAME.fullmatch(s) for s in segments):
            raise record.invalid(
                step,
                f"{where}.extract",
                f"must be a dotted field path such as 'analysis.score', got {extract!r}",
            )
        path += segments
    for option in _IGNORED_OPTIONS:
        if option in part:
            record.change(
                step,
                f"{where}.{option}",
                part[option],
                None,
                "removed: templates insert the previous output as it is (no summarising, "
                "cutting or content extractor); add a claude_extract step if you need one",
                "warning",
            )
    return "{{ " + ".".join(path) + " }}"


def prompt_template(parts: Any, *, step: str, field: str, record: Recorder) -> str:
    """The template string for a legacy prompt list; records what it did on ``record``.

    Raises StepValidationError (naming ``step`` and the part's field) for a list that is
    empty, a part that is not a mapping, or a part of unknown type or missing its key.
    """
    if not isinstance(parts, list) or not parts:
        raise record.invalid(step, field, f"must be a string or a non-empty list, got {parts!r}")
    pieces: list[str] = []
    for index, part in enumerate(parts):
        where = f"{field}[{index}]"
        if not isinstance(part, Mapping):
            raise record.invalid(step, where, f"a prompt part must be a mapping, got {part!r}")
        kind = part.get("type")
        if kind == "static":
            content = part.get("content")
            if not isinstance(content, str):
                raise record.invalid(
                    step, f"{where}.content", f"a static part needs content text, got {content!r}"
                )
            pieces.append(content)
        elif kind == "previous_response":
            pieces.append(_lookup(part, step, where, record))
        elif kind == "claude_continue":
            text = part.get("new_prompt")
            if not isinstance(text, str):
                raise record.invalid(
                    step, f"{where}.new_prompt", f"must be the prompt text, got {text!r}"
                )
            pieces.append(text)
            record.change(
                step, where, dict(part), text,
                "the continuation prompt is sent as plain text; use a claude_session step "
                "to continue a conversation",
                "warning",
            )  # fmt: skip
        elif kind == "file":
            record.change(
                step, where, dict(part), None,
                f"file part not read (otpy never reads files named in a config): inline the "
                f"content of {part.get('path')!r} into the prompt, or pass it as a pipeline "
                "input and write {{ inputs.<name> }} where it belongs",
                "error",
            )  # fmt: skip
        elif kind == "session_context":
            record.change(
                step, where, dict(part), None,
                "session context parts are not carried over: a claude_session step sends "
                "its session's earlier turns by itself",
                "error",
            )  # fmt: skip
        else:
            raise record.invalid(
                step,
                f"{where}.type",
                f"unknown prompt part type {kind!r} (known: {', '.join(_PART_TYPES)})",
            )
    text = "\n".join(pieces)
    record.change(step, field, parts, text, "prompt parts joined into one template string")
    return text
