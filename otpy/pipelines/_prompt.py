"""pipeline_ex's prompt parts: a ``prompt`` given as a list, built into one text at run time.

::

    prompt:
      - {type: static, content: "Review {{ inputs.module }}:"}       # templates filled
      - {type: file, path: "src/{{ inputs.module }}.py"}              # workspace, else workdir
      - {type: file, path: prompts/review.md, variables: {LANG: Python}}   # {LANG} filled
      - {type: previous_response, step: analyze, extract: findings.critical}
      - {type: session_context, session_id: tutor, include_last_n: 4}
      - {type: claude_continue, new_prompt: "Now add tests"}

Parts are joined with a newline, as pipeline_ex's prompt builder joins them. A ``file``
part is read when the step runs, from the pipeline's workspace; a file the workspace does
not hold is read from the run's working directory (``otpy run``'s current directory, where
pipeline_ex reads it from). A path outside both (``..``/absolute/symlink) is refused; at
most 1 MB; a file in neither is an error naming both.
A ``previous_response`` part is the step's output (text as it is, anything else as
indented JSON), or the value at ``extract`` (a dotted path; ``$.`` and ``[0]`` are
accepted); a missing one is an error unless ``strict: false``; ``max_length`` cuts it. A
part with a ``condition`` is left out when it does not hold.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias, TypeVar

from otpy.errors import ConfigurationError, OutsideWorkspaceError, StepValidationError
from otpy.expr import compile_condition, text_of
from otpy.pipelines._lookup import Missing, lookup
from otpy.pipelines._templates import render, render_value, walk_strings
from otpy.workspace import MAX_READ_BYTES, Workspace

__all__ = [
    "PART_TYPES",
    "PromptTools",
    "build_prompt",
    "check_parts",
    "is_parts",
    "part_templates",
    "render_config",
]

PART_TYPES: Final = ("static", "file", "previous_response", "session_context", "claude_continue")
_NEEDS: Final = {
    "static": "content",
    "file": "path",
    "previous_response": "step",
    "session_context": "session_id",
    "claude_continue": "new_prompt",
}
_INDEX: Final = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class PromptTools:
    """What building a prompt may use: the ``workspace`` (file parts), ``sessions`` (a
    session id -> its exchanges, for session_context parts), ``holds`` (whether a
    part's condition holds) and the ``workdir`` (file parts the workspace lacks)."""

    workspace: Workspace | None
    sessions: Callable[[str], list[dict[str, str]]] | None
    holds: Callable[[Any, str], bool]
    max_file_bytes: int = MAX_READ_BYTES
    workdir: Workspace | None = None


def is_parts(value: Any) -> bool:
    """Whether ``value`` is a list of prompt parts (mappings with a ``type``)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(part, Mapping) and "type" in part for part in value)
    )


def extract_path(extract: str) -> list[str]:
    """``findings.critical``, ``$.items[0].name`` -> the path's segments."""
    text = _INDEX.sub(r".\1", extract.strip().removeprefix("$").lstrip("."))
    return [segment for segment in text.split(".") if segment]


def check_parts(parts: Any, *, step: str | None, field: str) -> None:
    """Check a prompt given as a list: each part a mapping of a known type with what it
    needs. StepValidationError naming the step and the part's field."""
    if not isinstance(parts, list) or not parts:
        raise StepValidationError(
            "must be text or a non-empty list of prompt parts", step=step, field=field
        )
    for index, part in enumerate(parts):
        where = f"{field}[{index}]"
        if not isinstance(part, Mapping):
            raise StepValidationError(
                f"a prompt part must be a mapping, got {part!r:.60}", step=step, field=where
            )
        kind = part.get("type")
        if kind not in PART_TYPES:
            raise StepValidationError(
                f"unknown prompt part type {kind!r} (types: {', '.join(PART_TYPES)})",
                step=step,
                field=f"{where}.type",
            )
        key = _NEEDS[kind]
        if not isinstance(part.get(key), str):
            raise StepValidationError(
                f"a {kind} part needs {key} (text)", step=step, field=f"{where}.{key}"
            )
        extract = part.get("extract") if kind == "previous_response" else None
        if extract is not None and (not isinstance(extract, str) or not extract_path(extract)):
            raise StepValidationError(
                "must be a dotted path such as 'analysis.score'",
                step=step,
                field=f"{where}.extract",
            )
        for number in ("max_length", "include_last_n"):
            value = part.get(number)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise StepValidationError(
                    "must be an integer >= 1", step=step, field=f"{where}.{number}"
                )
        if part.get("variables") is not None and not isinstance(part["variables"], Mapping):
            raise StepValidationError(
                "must be a mapping of NAME -> value", step=step, field=f"{where}.variables"
            )
        encoding = str(part.get("encoding", "utf-8")).lower().replace("_", "-")
        if encoding not in ("utf-8", "utf8"):
            raise StepValidationError(
                "only utf-8 files are read", step=step, field=f"{where}.encoding"
            )
        if part.get("condition") is not None:
            compile_condition(part["condition"], step=step, field=f"{where}.condition")


def part_templates(parts: list[Any], field: str) -> Iterator[tuple[str, str]]:
    """Every template of the parts, with its field (for the checks before a run)."""
    for index, part in enumerate(parts):
        where = f"{field}[{index}]"
        for key in ("content", "path", "new_prompt", "session_id"):
            if isinstance(part.get(key), str):
                yield f"{where}.{key}", part[key]
        for key_field, text in walk_strings(part.get("variables") or {}, f"{where}.variables"):
            yield key_field or where, text


def _formatted(value: Any) -> str:
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text_of(value)


def _previous(
    part: Mapping[str, Any], scope: Mapping[str, Any], step: str | None, field: str
) -> str:
    source = str(part["step"])
    extract = part.get("extract")
    path = ["steps", *source.split("."), "result", *(extract_path(extract) if extract else [])]
    try:
        value = lookup(path, scope)
    except Missing as exc:
        if part.get("strict", True) is False:
            return ""
        raise StepValidationError(f"previous_response: {exc}", step=step, field=field) from None
    text = _formatted(value)
    limit = part.get("max_length")
    return text[:limit] if isinstance(limit, int) else text


_Values: TypeAlias = Mapping[str, Any]
_T = TypeVar("_T")


def _needed(tool: _T | None, step: str | None, field: str, missing: str) -> _T:
    if tool is None:
        raise ConfigurationError(f"step {step!r}, field {field}: {missing}")
    return tool


def _session(part: _Values, scope: _Values, tools: PromptTools, step: str | None, at: str) -> str:
    sessions = _needed(tools.sessions, step, at, "no claude_session step type is registered")
    session_id = text_of(render(part["session_id"], scope, step=step, field=f"{at}.session_id"))
    turns = sessions(session_id)
    last = part.get("include_last_n")
    if isinstance(last, int):
        turns = turns[-last:]
    return "\n".join(f"User: {t['user']}\nAssistant: {t['assistant']}" for t in turns)


def _file(part: _Values, scope: _Values, tools: PromptTools, step: str | None, field: str) -> str:
    workspace = _needed(tools.workspace, step, field, "file parts need the pipeline's workspace")
    path = text_of(render(part["path"], scope, step=step, field=f"{field}.path"))
    what = f"step {step!r}, {field}: file"
    text = _read(workspace, tools.workdir, path, what, tools.max_file_bytes)
    variables = render_value(
        part.get("variables") or {}, scope, step=step, field=f"{field}.variables"
    )
    for name, value in variables.items():
        text = text.replace("{" + str(name) + "}", text_of(value))
    return text


def _read(workspace: Workspace, workdir: Workspace | None, path: str, what: str, cap: int) -> str:
    if workdir is None or workdir == workspace:
        return workspace.read_text(path, what=what, max_bytes=cap)
    refusal: OutsideWorkspaceError | None = None
    try:
        if workspace.path(path, what=what).exists():
            return workspace.read_text(path, what=what, max_bytes=cap)
    except OutsideWorkspaceError as exc:
        refusal = exc
    try:
        if workdir.path(path, what=what).exists():
            return workdir.read_text(path, what=what, max_bytes=cap)
    except OutsideWorkspaceError:
        pass
    if refusal is not None:
        raise refusal  # outside the workspace, and not in the working directory either
    raise ConfigurationError(
        f"{what} {path!r} does not exist in the workspace {workspace.root} nor in the "
        f"working directory {workdir.root}"
    )


def build_prompt(
    parts: list[Mapping[str, Any]],
    scope: Mapping[str, Any],
    tools: PromptTools,
    *,
    step: str | None,
    field: str = "prompt",
) -> str:
    """The prompt text of ``parts`` in ``scope`` (see the module docstring). Errors name
    the step and the part: StepValidationError (a template or previous_response that finds
    nothing), ConfigurationError or OutsideWorkspaceError (a file part)."""
    pieces: list[str] = []
    for index, part in enumerate(parts):
        where = f"{field}[{index}]"
        if part.get("condition") is not None and not tools.holds(
            part["condition"], f"{where}.condition"
        ):
            continue
        kind = part["type"]
        if kind == "static":
            pieces.append(
                text_of(render(part["content"], scope, step=step, field=f"{where}.content"))
            )
        elif kind == "file":
            pieces.append(_file(part, scope, tools, step, where))
        elif kind == "previous_response":
            pieces.append(_previous(part, scope, step, where))
        elif kind == "session_context":
            pieces.append(_session(part, scope, tools, step, where))
        else:
            pieces.append(
                text_of(render(part["new_prompt"], scope, step=step, field=f"{where}.new_prompt"))
            )
    return "\n".join(pieces)


def render_config(
    value: Any,
    scope: Mapping[str, Any],
    tools: PromptTools,
    *,
    step: str | None,
    field: str | None = None,
) -> Any:
    """``render_value`` of a step's config, except that a ``prompt`` given as parts is
    built into its text (also inside task lists such as ``tasks[2].prompt``)."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            where = f"{field}.{key}" if field else str(key)
            if key == "prompt" and isinstance(item, list):
                out[key] = build_prompt(item, scope, tools, step=step, field=where)
            else:
                out[key] = render_config(item, scope, tools, step=step, field=where)
        return out
    if isinstance(value, list):
        return [
            render_config(item, scope, tools, step=step, field=f"{field or ''}[{index}]")
            for index, item in enumerate(value)
        ]
    return render_value(value, scope, step=step, field=field)
