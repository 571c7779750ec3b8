"""The one resolver behind templates, conditions, prompt parts and loop data sources.

A path is a root and segments (keys and list indexes). The run's scope is a mapping of
roots (see :class:`Scope`)::

    inputs.question               the run's inputs
    steps.search.output.items.0   a step's result record (see below)
    vars.topic / state.topic      the run's variables (variables.topic, too)
    loop.file.path / loop.index   the innermost loop's frame (loop.parent.* the enclosing one)
    global_vars.api               the workflow's global_vars
    workflow.name                 the workflow's own fields
    previous_response.summary     the output of the step that ran just before
    timestamp / date / execution_id   the run's start time and id

A bare name (``{{pipeline_request}}``, ``analyze.score`` in a condition) is, in this
order, a step, a run variable, an input, a global var, or one of the built-ins.

Under ``steps.<name>`` (dotted step names match longest first) the next segment is a
field of the step's record (``output``, ``text``, ``usage``, ``provider``, ``model``,
``retries``, ``metadata``); ``result`` is the output (pipeline_ex's
``steps.x.result.field``; an answer in text is also its ``result.text``, ``content`` and
``result.content``, as pipeline_ex's claude and gemini results hold it); ``success``
says whether it ran; anything else reads into the output — a key of a mapping, an index
of a list, or a key of the JSON an answer holds (``steps.review.score`` when the model
answered ``{"score": 8}``).

Only keys and indexes of plain data are ever read: no attribute of any object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from otpy.expr import MISSING, dig, json_in

__all__ = [
    "BUILTINS",
    "RESULT_FIELDS",
    "ROOTS",
    "Missing",
    "known_names",
    "lookup",
    "lookup_or_none",
    "step_span",
]

RESULT_FIELDS: Final = ("output", "text", "usage", "provider", "model", "retries", "metadata")
"""The fields of a step's result record, as ``steps.<name>.<field>`` reads them."""
ROOTS: Final = (
    "inputs",
    "steps",
    "vars",
    "state",
    "variables",
    "loop",
    "global_vars",
    "workflow",
    "previous_response",
)
"""The named roots of a path (any other first name is a bare name)."""
BUILTINS: Final = ("timestamp", "date", "execution_id")
_VARIABLE_ROOTS: Final = frozenset({"vars", "state", "variables"})
_LISTED: Final = 20


class Missing(Exception):
    """A look-up that found nothing; the message names the path and what exists there."""


def known_names(keys: Any) -> str:
    """``keys`` listed for an error (``a, b, c``; ``none`` if empty; the first 20 only)."""
    names = [str(key) for key in keys]
    if not names:
        return "none"
    shown = ", ".join(names[:_LISTED])
    return shown + (f", ... ({len(names) - _LISTED} more)" if len(names) > _LISTED else "")


def step_span(segments: Sequence[str | int], is_step: Mapping[str, Any]) -> int:
    """How many segments name a step in ``is_step`` (longest match first, since step
    names may hold dots); 0 if none does."""
    for end in range(len(segments), 0, -1):
        head = segments[:end]
        if all(isinstance(s, str) for s in head) and ".".join(map(str, head)) in is_step:
            return end
    return 0


def _joined(segments: Sequence[str | int]) -> str:
    return ".".join(str(s) for s in segments)


def _walk(value: Any, segments: Sequence[str | int], where: str) -> Any:
    """``value`` along ``segments``; Missing naming the first segment that is not there."""
    for done, segment in enumerate(segments):
        found = dig(value, (segment,))  # "length" that is no key: the size
        if found is MISSING:
            where = ".".join([where, *map(str, segments[:done])])  # named on failure only
            raise Missing(f"{where}.{segment}: {_absent(value, segment)}")
        value = found
    return value


def _absent(value: Any, segment: str | int) -> str:
    if isinstance(value, Mapping):
        return f"no key {str(segment)!r} (keys: {known_names(value)})"
    if isinstance(value, list | tuple):
        span = f"indexes 0..{len(value) - 1}" if value else "it is empty"
        return f"not in a list of {len(value)} ({span})"
    if isinstance(value, str):
        return "the text holds no JSON with that key"
    kind = "None" if value is None else f"a {type(value).__name__}"
    return f"the value there is {kind}, not a mapping or a list"


_ANSWER: Final = (["content"], ["result", "text"], ["result", "content"])


def _step(scope: Mapping[str, Any], segments: Sequence[str | int], where: str) -> Any:
    records = scope.get("steps") or {}
    span = step_span(segments, records)
    if span == 0:
        name = str(segments[0]) if segments else ""
        raise Missing(
            f"{where}.{name}: no result of a step {name!r} (steps so far: {known_names(records)})"
        )
    name = _joined(segments[:span])
    record = records[name]
    rest = list(segments[span:])
    where = f"{where}.{name}"
    if not rest:
        return record
    if not isinstance(record, Mapping):  # a plain value stood in for a record
        return _walk(record, rest, where)
    head = rest[0]
    output = record.get("output")
    if head in record and (record[head] is not None or not _has(output, head)):
        return _walk(record[head], rest[1:], f"{where}.{head}")
    found = dig(output, rest)
    if found is not MISSING:
        return found
    if isinstance(output, str) and rest in _ANSWER and dig(output, rest[-1:]) is MISSING:
        return output  # pipeline_ex's claude result holds its answer as text, gemini's content
    if head == "result":
        return _walk(output, rest[1:], f"{where}.result")
    if head in ("success", "skipped") and len(rest) == 1:
        status = (scope.get("status") or {}).get(name, "ok")
        return status == ("ok" if head == "success" else "skipped")
    raise Missing(
        f"{where}.{head}: no field {str(head)!r} in step {name!r}'s result (record fields: "
        f"{', '.join(RESULT_FIELDS)}, result; output: {_describe(output)})"
    )


def _has(output: Any, key: str | int) -> bool:
    return isinstance(output, Mapping) and key in output


def _describe(output: Any) -> str:
    if isinstance(output, Mapping):
        return f"a mapping with keys {known_names(output)}"
    if isinstance(output, str):
        return "text" + (" holding JSON" if json_in(output) is not MISSING else "")
    return "None" if output is None else f"a {type(output).__name__}"


def _variables(scope: Mapping[str, Any]) -> Mapping[str, Any]:
    found = scope.get("vars")
    return found if isinstance(found, Mapping) else {}


def _previous(scope: Mapping[str, Any], rest: Sequence[str | int]) -> Any:
    name = scope.get("previous")
    if not isinstance(name, str) or name not in (scope.get("steps") or {}):
        raise Missing("previous_response: no step has run before this one")
    return _step(scope, [*name.split("."), "result", *rest], "steps")


def _bare(scope: Mapping[str, Any], segments: Sequence[str | int]) -> Any:
    root = segments[0]
    records = scope.get("steps") or {}
    if isinstance(root, str) and step_span(segments, records):
        return _step(scope, segments, "steps")
    for key in ("vars", "inputs", "global_vars", "builtins"):
        layer: Any = _variables(scope) if key == "vars" else scope.get(key)
        if isinstance(layer, Mapping) and root in layer:
            return _walk(layer[root], segments[1:], str(root))
    raise Missing(
        f"{_joined(segments)}: no step, variable, input or global var named {str(root)!r} "
        f"(variables: {known_names(_variables(scope))}; inputs: "
        f"{known_names(scope.get('inputs') or {})}; steps: {known_names(records)})"
    )


def lookup(segments: Sequence[str | int], scope: Mapping[str, Any]) -> Any:
    """The value at ``segments`` in ``scope``; Missing naming the path, the first part
    that is not there and what exists at that level."""
    root, rest = segments[0], list(segments[1:])
    if root == "steps":
        return _step(scope, rest, "steps") if rest else (scope.get("steps") or {})
    if root in _VARIABLE_ROOTS:
        variables = _variables(scope)
        if not rest:
            return variables
        if root == "variables" and rest[0] not in variables:
            workflow = scope.get("workflow") or {}
            declared = workflow.get("variables") if isinstance(workflow, Mapping) else None
            if isinstance(declared, Mapping) and rest[0] in declared:
                return _walk(declared[rest[0]], rest[1:], f"variables.{rest[0]}")
        if rest[0] not in variables:
            raise Missing(
                f"{root}.{rest[0]}: no variable {str(rest[0])!r} (variables: "
                f"{known_names(variables)})"
            )
        name = str(rest[0])
        return _walk(variables[name], rest[1:], f"{root}.{name}")
    if root == "previous_response":
        return _previous(scope, rest)
    if root in ("inputs", "loop", "global_vars", "workflow"):
        value = scope.get(root)
        if value is None:
            if root == "loop":
                raise Missing("loop: there is no loop here (loop.* is set inside a loop's steps)")
            value = {}
        if rest and isinstance(value, Mapping) and rest[0] not in value:
            kind = {"inputs": "input", "global_vars": "global var", "loop": "loop variable"}.get(
                str(root), "field"
            )
            raise Missing(
                f"{root}.{rest[0]}: no {kind} {str(rest[0])!r} ({kind}s: {known_names(value)})"
            )
        return _walk(value, rest, str(root))
    return _bare(scope, segments)


def lookup_or_none(segments: Sequence[str | int], scope: Mapping[str, Any]) -> Any:
    """:func:`lookup`, with None where it finds nothing (conditions: ``x exists``)."""
    try:
        return lookup(segments, scope)
    except Missing:
        return None
