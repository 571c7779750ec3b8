"""Look-up-only templates: ``{{ path }}`` placeholders in pipeline text.

A path is a root (``inputs``, ``steps`` or ``vars``) and dot-separated segments, each a
name (letters, digits, ``_``, ``-``; not starting with a digit or ``__``) or an integer
index::

    {{ inputs.question }}   {{ steps.search.output.items.0.title }}   {{ vars.topic }}

A segment reads a mapping key or a list index and nothing else: no attribute of any
Python object is ever read, nothing is evaluated, no ``str.format`` touches user text.
Expressions, filters, calls, subscripts and ``{% ... %}`` blocks are refused with an error
naming what is not allowed. A rendered value is never scanned again, so text that comes
in through an input (even one holding ``{{ ... }}``) stays as it is: that is also the way
to put literal braces into a prompt.

Under ``steps``, a name is a step of the run (dots in step names are matched, longest
first) and the next segment one of the fields of its result record (:data:`RESULT_FIELDS`,
see :func:`step_record`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from otpy.errors import StepValidationError
from otpy.steps import StepResult

__all__ = [
    "RESULT_FIELDS",
    "ROOTS",
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

ROOTS: Final = ("inputs", "steps", "vars")
"""Where a path may start."""

RESULT_FIELDS: Final = ("output", "text", "usage", "provider", "model", "retries", "metadata")
"""The fields of a step's result record, as ``steps.<name>.<field>`` reads them."""

_SEGMENT: Final = r"(?:[A-Za-z_][A-Za-z0-9_\-]*|[0-9]+)"
_PATH: Final = re.compile(rf"(?:{'|'.join(ROOTS)})(?:\.{_SEGMENT})*")
_EXAMPLES: Final = "{{ inputs.question }} or {{ steps.answer.output.title }}"
_LISTED: Final = 20


@dataclass(frozen=True, slots=True)
class Ref:
    """One placeholder: the ``path`` as written (without the braces and spaces), its
    ``segments`` and the ``placeholder`` text itself."""

    path: str
    segments: tuple[str, ...]
    placeholder: str


Part = str | Ref


def _refusal(inner: str) -> str:
    """Why ``inner`` (a placeholder's content) is not a path."""
    text = inner.strip()
    if not text:
        return "an empty placeholder"
    if "|" in text:
        return "filters ('|') are not allowed"
    if "(" in text or ")" in text:
        return "calls are not allowed"
    if "[" in text or "]" in text:
        return "subscripts are not allowed (write items.0, not items[0])"
    if "'" in text or '"' in text:
        return "literals are not allowed"
    if re.search(r"\s|[+*/%<>=!~^&,:@]", text):
        return "expressions are not allowed"
    segments = text.split(".")
    for segment in segments:
        if segment.startswith("__"):
            return f"names starting with '__' are not allowed ({segment!r})"
    if segments[0] not in ROOTS:
        return f"unknown root {segments[0]!r}: a path starts with {', '.join(ROOTS)}"
    for segment in segments[1:]:
        if not segment:
            return "an empty name in the path"
        if re.fullmatch(_SEGMENT, segment) is None:
            return f"{segment!r} is neither a name nor an index"
    return "not a path"


@lru_cache(maxsize=2048)
def _parse(template: str) -> tuple[Part, ...] | str:
    """The parts of ``template`` (literal text and refs), or why it is invalid."""
    parts: list[Part] = []
    position = 0
    while True:
        start = template.find("{{", position)
        block = template.find("{%", position)
        if block != -1 and (start == -1 or block < start):
            return (
                "'{%' blocks are not allowed: templates only look values up, "
                f"with placeholders such as {_EXAMPLES}"
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
        path = inner.strip()
        if not is_path(path):
            return (
                f"{placeholder!r}: {_refusal(inner)}; a placeholder is only a path such as "
                f"{_EXAMPLES} (nothing is evaluated)"
            )
        if start > position:
            parts.append(template[position:start])
        parts.append(Ref(path, tuple(path.split(".")), placeholder))
        position = end + 2
    if position < len(template):
        parts.append(template[position:])
    return tuple(parts)


def parse(template: str, *, step: str | None = None, field: str | None = None) -> tuple[Part, ...]:
    """The literal texts and :class:`Ref` placeholders of ``template``, in order (cached).

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


def only_ref(parts: tuple[Part, ...]) -> Ref | None:
    """The placeholder if ``parts`` (of :func:`parse`) is exactly one placeholder and
    nothing else (a template whose value is the looked-up value itself), else None."""
    if len(parts) == 1 and isinstance(parts[0], Ref):
        return parts[0]
    return None


def references(template: str, *, step: str | None = None, field: str | None = None) -> list[str]:
    """The paths ``template`` looks up, each once, in order of first use (such as
    ``["inputs.question", "steps.search.output.items.0"]``); StepValidationError for a bad
    template."""
    seen: dict[str, None] = {}
    for part in parse(template, step=step, field=field):
        if isinstance(part, Ref):
            seen.setdefault(part.path)
    return list(seen)


def step_span(segments: tuple[str, ...], is_step: Mapping[str, Any]) -> int:
    """How many segments after ``steps`` name a step in ``is_step`` (longest match first,
    since step names may hold dots); 0 if none does."""
    for end in range(len(segments), 0, -1):
        if ".".join(segments[:end]) in is_step:
            return end
    return 0


def is_path(text: str) -> bool:
    """Whether ``text`` is a bare path (what a placeholder holds), such as ``inputs.x``."""
    return _PATH.fullmatch(text) is not None and not any(
        segment.startswith("__") for segment in text.split(".")
    )


def known_names(keys: Any) -> str:
    """``keys`` listed for an error (``a, b, c``; ``none`` if empty; the first 20 only)."""
    names = [str(key) for key in keys]
    if not names:
        return "none"
    shown = ", ".join(names[:_LISTED])
    return shown + (f", ... ({len(names) - _LISTED} more)" if len(names) > _LISTED else "")


class _Missing(Exception):
    """A look-up that found nothing (internal: becomes a StepValidationError)."""


def _child(value: Any, segment: str, where: str) -> Any:
    """``value[segment]``: a mapping key (a digit segment also tries the int key) or a
    list/tuple index. ``where`` is the path walked so far, for the error."""
    here = f"{where}.{segment}"
    if isinstance(value, Mapping):
        if segment in value:
            return value[segment]
        if segment.isdigit() and int(segment) in value:
            return value[int(segment)]
        raise _Missing(f"{here}: no key {segment!r} (known: {known_names(value)})")
    if isinstance(value, list | tuple):
        if not segment.isdigit():
            span = f"use an index 0..{len(value) - 1}" if value else "it is empty"
            raise _Missing(f"{here}: {where} is a list of {len(value)}; {span}")
        index = int(segment)
        if index >= len(value):
            raise _Missing(f"{here}: index {index} is out of range (a list of {len(value)})")
        return value[index]
    kind = "None" if value is None else f"a {type(value).__name__}"
    raise _Missing(f"{here}: {where} is {kind}, not a mapping or a list")


def _lookup(ref: Ref, scope: Mapping[str, Any]) -> Any:
    root, *rest = ref.segments
    value = scope.get(root)
    if value is None:
        value = {}
    if not rest:
        return value
    first = rest[0]
    if root == "steps":
        if not isinstance(value, Mapping):
            raise _Missing(f"steps: the step records are a {type(value).__name__}, not a mapping")
        span = step_span(tuple(rest), value)
        if span == 0:
            raise _Missing(f"steps.{first}: no step {first!r} (known: {known_names(value)})")
        name = ".".join(rest[:span])
        where = f"steps.{name}"
        value = value[name]
        rest = rest[span:]
        if rest and isinstance(value, Mapping) and rest[0] not in value:
            raise _Missing(
                f"{where}.{rest[0]}: no field {rest[0]!r} of a step result "
                f"(known: {known_names(value)})"
            )
    else:
        kind = "input" if root == "inputs" else "variable"
        if not isinstance(value, Mapping) or first not in value:
            known = known_names(value) if isinstance(value, Mapping) else "none"
            raise _Missing(f"{root}.{first}: no {kind} {first!r} (known: {known})")
        where = f"{root}.{first}"
        value = value[first]
        rest = rest[1:]
    for segment in rest:
        value = _child(value, segment, where)
        where = f"{where}.{segment}"
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        plain = dict(value) if isinstance(value, Mapping) else value
        return json.dumps(plain, ensure_ascii=False, default=str)
    return str(value)


def render(
    template: str, scope: Mapping[str, Any], *, step: str | None = None, field: str | None = None
) -> Any:
    """Fill ``template``'s placeholders from ``scope`` (``{"inputs": ..., "steps": ...,
    "vars": ...}``; an absent root is empty).

    A template that is exactly one placeholder returns the looked-up value itself (a list
    stays a list); otherwise the text with each placeholder replaced by ``str(value)``
    (JSON for mappings and lists); text without placeholders comes back as it is. Runs in
    the caller's thread. Raises StepValidationError naming ``step``, ``field``, the
    missing name and what exists at that level (``steps.answr: no step 'answr' (known:
    answer, search)``), or what is not allowed in a bad template.
    """
    parts = parse(template, step=step, field=field)
    try:
        whole = only_ref(parts)
        if whole is not None:
            return _lookup(whole, scope)
        if not any(isinstance(part, Ref) for part in parts):
            return template
        return "".join(
            _text(_lookup(part, scope)) if isinstance(part, Ref) else part for part in parts
        )
    except _Missing as missing:
        raise StepValidationError(str(missing), step=step, field=field) from None


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
        return render(value, scope, step=step, field=field)
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
