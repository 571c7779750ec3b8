"""Templates: ``{{ ... }}`` placeholders in pipeline text, filled by one resolver.

A placeholder holds a path (``{{ inputs.question }}``, ``{{ steps.search.output.items.0 }}``,
``{{ loop.item }}``, ``{{ pipeline_request }}``; see :mod:`otpy.pipelines._lookup` for the
roots), pipeline_ex's ``{{previous_response:step.field}}``, or an expression of the small
language in :mod:`otpy.expr` (``{{ state.count + 1 }}``, ``{{ length(steps.scan.files) }}``,
``{{ state.n == 0 ? state.first : state.last }}``). Nothing is ``eval``-ed: a path reads
keys and list indexes of plain data and never an attribute; operators and functions come
from a fixed table. Filters (``|``), ``{% %}`` blocks and names starting with ``__`` are
refused with an error naming the step and the field.

A rendered value is never scanned again, so text that comes in through an input (even one
holding ``{{ ... }}``) stays as it is. A template that is one placeholder and nothing else
gives the value itself (a list stays a list, a number a number); otherwise each value is
put into the text (mappings and lists as JSON, None as nothing).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from otpy.errors import ExpressionError, StepValidationError
from otpy.expr import Node, compile_expression, evaluate, paths, text_of
from otpy.pipelines._lookup import (
    RESULT_FIELDS,
    ROOTS,
    Missing,
    known_names,
    lookup,
    step_span,
)
from otpy.steps import StepResult

__all__ = [
    "RESULT_FIELDS",
    "ROOTS",
    "Expr",
    "Part",
    "Ref",
    "is_path",
    "known_names",
    "only_ref",
    "parse",
    "references",
    "render",
    "render_value",
    "step_record",
    "step_span",
    "walk_strings",
]

_NAME: Final = r"[A-Za-z_][A-Za-z0-9_\-]*"
_PATH: Final = re.compile(rf"{_NAME}(?:\.(?:{_NAME}|[0-9]+))*")
_PREVIOUS: Final = re.compile(rf"previous_response:\s*({_NAME}(?:\.(?:{_NAME}|[0-9]+))*)")
_KEYWORDS: Final = frozenset({"true", "false", "null", "nil", "none", "not", "and", "or"})
_EXAMPLES: Final = "{{ inputs.question }} or {{ steps.answer.output.title }}"
OUTPUT_ROOT: Final = "@output"
"""The root of ``previous_response:<step>``: that step's output, then keys into it."""


@dataclass(frozen=True, slots=True)
class Ref:
    """A path placeholder: the ``path`` as written, its ``segments`` and the
    ``placeholder`` text itself."""

    path: str
    segments: tuple[str, ...]
    placeholder: str


@dataclass(frozen=True, slots=True)
class Expr:
    """An expression placeholder: its ``text``, parsed ``node``, the ``refs`` it reads
    and the ``placeholder`` text itself."""

    text: str
    node: Node
    refs: tuple[Ref, ...]
    placeholder: str


Part = str | Ref | Expr


def is_path(text: str) -> bool:
    """Whether ``text`` is a bare path (what a placeholder may hold), such as ``inputs.x``."""
    return (
        _PATH.fullmatch(text) is not None
        and text.split(".")[0].lower() not in _KEYWORDS
        and not any(segment.startswith("__") for segment in text.split("."))
    )


def _expression(inner: str, placeholder: str) -> Expr | str:
    """The expression placeholder, or why it is refused."""
    text = inner.strip()
    if not text:
        return "an empty placeholder"
    if "|" in text.replace("||", ""):
        return "filters ('|') are not allowed"
    try:
        node = compile_expression(text)
    except ExpressionError as exc:
        return f"{exc.reason}" + (f" at column {exc.position}" if exc.position else "")
    refs = []
    for path in paths(node):
        segments = tuple(str(s) for s in path.segments)
        if any(s.startswith("__") for s in segments):
            return f"names starting with '__' are not allowed ({path.text!r})"
        if segments[0] == "@":
            return "'@' is only the current item inside any/all/count/filter conditions"
        refs.append(Ref(path.text, segments, placeholder))
    return Expr(text, node, tuple(refs), placeholder)


def _placeholder(inner: str, placeholder: str) -> Part | str:
    text = inner.strip()
    if is_path(text):
        return Ref(text, tuple(text.split(".")), placeholder)
    previous = _PREVIOUS.fullmatch(text)
    if previous is not None:
        return Ref(text, (OUTPUT_ROOT, *previous.group(1).split(".")), placeholder)
    return _expression(inner, placeholder)


@lru_cache(maxsize=4096)
def _parse(template: str) -> tuple[Part, ...] | str:
    """The parts of ``template`` (literal text and placeholders), or why it is invalid."""
    parts: list[Part] = []
    position = 0
    while True:
        start = template.find("{{", position)
        block = template.find("{%", position)
        if block != -1 and (start == -1 or block < start):
            return (
                "'{%' blocks are not allowed: templates look values up, with placeholders "
                f"such as {_EXAMPLES}"
            )
        if start == -1:
            break
        end = template.find("}}", start + 2)
        if end == -1:
            return f"'{{{{' at offset {start} is never closed with '}}}}'"
        inner = template[start + 2 : end]
        placeholder = template[start : end + 2]
        if "{{" in inner:
            return f"'{{{{' at offset {start} is never closed with '}}}}' before the next '{{{{'"
        part = _placeholder(inner, placeholder)
        if isinstance(part, str):
            return (
                f"{placeholder!r}: {part}; a placeholder is a path such as {_EXAMPLES}, or "
                "an expression such as {{ state.count + 1 }}"
            )
        if start > position:
            parts.append(template[position:start])
        parts.append(part)
        position = end + 2
    if position < len(template):
        parts.append(template[position:])
    return tuple(parts)


def parse(template: str, *, step: str | None = None, field: str | None = None) -> tuple[Part, ...]:
    """The literal texts and placeholders of ``template``, in order (cached).

    Raises StepValidationError naming ``step``, ``field`` and what is not allowed.
    """
    if not isinstance(template, str):
        raise StepValidationError(
            f"a template must be a string, got {type(template).__name__}", step=step, field=field
        )
    parsed = _parse(template)
    if isinstance(parsed, str):
        raise StepValidationError(f"bad template: {parsed}", step=step, field=field)
    return parsed


def only_ref(parts: tuple[Part, ...]) -> Ref | Expr | None:
    """The placeholder if ``parts`` (of :func:`parse`) is exactly one placeholder and
    nothing else (a template whose value is the value itself), else None."""
    if len(parts) == 1 and not isinstance(parts[0], str):
        return parts[0]
    return None


def refs_of(parts: tuple[Part, ...]) -> Iterator[Ref]:
    """Every path the parts read (those inside expressions too), in order."""
    for part in parts:
        if isinstance(part, Ref):
            yield part
        elif isinstance(part, Expr):
            yield from part.refs


def references(template: str, *, step: str | None = None, field: str | None = None) -> list[str]:
    """The paths ``template`` looks up, each once, in order of first use (such as
    ``["inputs.question", "steps.search.output.items.0"]``); StepValidationError for a bad
    template."""
    seen: dict[str, None] = {}
    for ref in refs_of(parse(template, step=step, field=field)):
        seen.setdefault(ref.path)
    return list(seen)


def _value(part: Ref | Expr, scope: Mapping[str, Any]) -> Any:
    if isinstance(part, Ref):
        if part.segments[0] == OUTPUT_ROOT:
            return lookup(("steps", *_output_path(part)), scope)
        return lookup(part.segments, scope)

    def resolve(segments: tuple[str | int, ...]) -> Any:
        return lookup(segments, scope)

    return evaluate(part.node, resolve, text=part.text)


def _output_path(part: Ref) -> tuple[str, ...]:
    """``previous_response:step.a.b`` as ``step.result.a.b`` (the step's output first)."""
    names = part.segments[1:]
    return (*names[:1], "result", *names[1:])


def render(
    template: str, scope: Mapping[str, Any], *, step: str | None = None, field: str | None = None
) -> Any:
    """Fill ``template``'s placeholders from ``scope`` (see :mod:`otpy.pipelines._lookup`).

    A template that is exactly one placeholder returns the value itself; otherwise the text
    with each placeholder replaced (JSON for mappings and lists, nothing for None); text
    without placeholders comes back as it is. Runs in the caller's thread. Raises
    StepValidationError naming ``step``, ``field``, the missing name and what exists at
    that level (``steps.answr: no result of a step 'answr' (steps so far: answer)``),
    what is not allowed in a bad template, or an expression its values do not allow.
    """
    parts = parse(template, step=step, field=field)
    try:
        whole = only_ref(parts)
        if whole is not None:
            return _value(whole, scope)
        if all(isinstance(part, str) for part in parts):
            return template
        return "".join(
            part if isinstance(part, str) else text_of(_value(part, scope)) for part in parts
        )
    except Missing as missing:
        raise StepValidationError(str(missing), step=step, field=field) from None
    except ExpressionError as exc:
        raise StepValidationError(f"cannot evaluate {exc}", step=step, field=field) from None


def _join(field: str | None, key: object) -> str:
    if isinstance(key, int):
        return f"{field or ''}[{key}]"
    return f"{field}.{key}" if field else str(key)


def render_value(
    value: Any, scope: Mapping[str, Any], *, step: str | None = None, field: str | None = None
) -> Any:
    """:func:`render` every string inside ``value``, recursing into mappings (a new dict;
    keys are not templates) and lists/tuples (a new one of the same type); other values
    come back as they are. Errors name the nested field (``options.stop[1]``)."""
    if isinstance(value, str):
        return render(value, scope, step=step, field=field) if "{{" in value else value
    if isinstance(value, Mapping):
        return {
            key: render_value(item, scope, step=step, field=_join(field, key))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        items = [
            render_value(item, scope, step=step, field=_join(field, index))
            for index, item in enumerate(value)
        ]
        return items if isinstance(value, list) else tuple(items)
    return value


def walk_strings(value: Any, field: str | None = None) -> Iterator[tuple[str | None, str]]:
    """Every string inside ``value`` with its field path, in the order of
    :func:`render_value` (for checking a config's templates before running it)."""
    if isinstance(value, str):
        yield field, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from walk_strings(item, _join(field, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from walk_strings(item, _join(field, index))


def step_record(result: StepResult) -> dict[str, Any]:
    """The record templates read as ``steps.<name>``: a plain mapping of the result's
    :data:`RESULT_FIELDS` (``usage`` with input, output and total tokens), so a look-up
    never touches the result object."""
    usage = result.usage
    return {
        "output": result.output,
        "text": result.text,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        },
        "provider": result.provider,
        "model": result.model,
        "retries": result.retries,
        "metadata": dict(result.metadata),
    }
