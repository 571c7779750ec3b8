"""Documents people write (YAML pipelines, job files, configs): reading them safely and
saying exactly what is wrong and where.

- :func:`parse_yaml` safe-loads YAML, refusing duplicate keys (plain YAML keeps the last
  one silently) and object tags, naming ``file:line:column``; :func:`read_text` reads a
  file with errors that name it.
- :func:`yaml_position` finds ``file:line:column`` of a field in the YAML text.
- :func:`describe`, :func:`more_problems`, :func:`validation_problems` and :func:`dotted`
  turn pydantic's errors into messages for a person; :func:`shown` prints a value short.

The runtime config, pipelines and job files all report through these, so every document
error reads the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import pydantic
import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from otpy.errors import ConfigurationError

__all__ = [
    "describe",
    "dotted",
    "more_problems",
    "parse_yaml",
    "read_text",
    "shown",
    "validation_problems",
    "yaml_position",
]

_CORE_TAG: Final = "tag:yaml.org,2002:"


class _UniqueKeys(SafeConstructor):
    """A safe constructor that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Any, Mark] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _CORE_TAG + "merge":
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {seen[key].line + 1}); YAML would "
                    "silently keep only the last one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


class _Loader(_UniqueKeys, yaml.SafeLoader):
    """``yaml.SafeLoader`` refusing duplicate keys: the reference, whose errors are the
    ones reported."""


_FAST: Final[type[Any] | None] = (
    type("_FastLoader", (_UniqueKeys, yaml.CSafeLoader), {}) if yaml.__with_libyaml__ else None
)
"""The same on libyaml's parser (about ten times faster), where PyYAML was built with it."""


def _yaml_error(exc: yaml.YAMLError, label: str) -> ConfigurationError:
    if not isinstance(exc, yaml.MarkedYAMLError):
        return ConfigurationError(f"{label}: malformed YAML: {exc}")
    mark = exc.problem_mark or exc.context_mark
    where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark is not None else label
    problem = exc.problem or str(exc)
    tag = re.search(r"constructor for the tag '([^']*)'", problem)
    if isinstance(exc, ConstructorError) and tag is not None:
        shown = tag.group(1).replace(_CORE_TAG, "!!")
        return ConfigurationError(
            f"{where}: refused YAML tag {shown!r}: a pipeline is plain YAML data (mappings, "
            "lists, strings, numbers, booleans, null); tags that build objects are never loaded"
        )
    if problem.startswith("duplicate key"):
        return ConfigurationError(f"{where}: {problem}")
    context = ""
    start = exc.context_mark
    if exc.context and start is not None and start is not mark:
        context = f" ({exc.context} at line {start.line + 1}, column {start.column + 1})"
    return ConfigurationError(f"{where}: malformed YAML: {problem}{context}")


def parse_yaml(text: str, label: str) -> Any:
    """``text`` safe-loaded (duplicate keys refused); ConfigurationError naming
    ``label:line:column`` for malformed YAML or a refused tag."""
    if _FAST is not None:
        try:
            return yaml.load(text, Loader=_FAST)
        except (yaml.YAMLError, ValueError):  # ValueError: a str libyaml cannot encode
            pass  # said by the pure-Python loader, in the words every error uses
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, label) from exc


def read_text(path: Path, what: str = "pipeline file") -> str:
    """The UTF-8 text of ``path`` (a BOM dropped); ConfigurationError naming ``what`` and
    the file when it is missing, a directory, not UTF-8 or unreadable."""
    label = str(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigurationError(f"{what} {label!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigurationError(f"{label!r} is a directory, not a {what}") from None
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"{what} {label!r} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} {label!r}: {exc}") from None


def shown(value: Any) -> str:
    """``repr(value)``, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def dotted(parts: Sequence[Any]) -> str | None:
    """A pydantic location as one field name: ``steps[2].prompt``; None when empty."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def describe(
    error: Mapping[str, Any], unknown_field: Callable[[tuple[Any, ...]], str] | None = None
) -> str:
    """What one pydantic error (an item of ``ValidationError.errors()``) says, for a person:
    ``is required``, ``must be a string, got int 3; quote it in YAML``, ... An unknown field
    is described by ``unknown_field(loc)`` when given (say, with a "did you mean")."""
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    got = f", got {type(value).__name__} {shown(value)}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        if unknown_field is not None:
            return unknown_field(tuple(error["loc"]))
        return "is not a known field"
    if kind == "string_type":
        quote = isinstance(value, int | float) and not isinstance(value, bool)
        return f"must be a string{got}" + ("; quote it in YAML" if quote else "")
    if kind == "string_pattern_mismatch":
        return f"must start with a letter or '_' and hold only letters, digits, '_', '.', '-'{got}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, got {shown(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping{got}"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list{got}"
    if kind == "invalid_key":
        return f"field names must be strings, got {type(value).__name__} {shown(value)}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false{got}"
    if kind in ("value_error", "assertion_error") and ctx.get("error") is not None:
        return str(ctx["error"])
    return f"{error['msg']}{got}"


def more_problems(exc: pydantic.ValidationError) -> str:
    """`` (and N more problems)`` after the first of ``exc``'s errors, or ``""``."""
    more = len(exc.errors()) - 1
    return f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""


def validation_problems(
    exc: pydantic.ValidationError, *, prefix: str = "", empty: str = "(top level)"
) -> str:
    """Every error of ``exc`` as ``<prefix><dotted.field>: <message>``, joined by ``; ``
    (``empty`` stands for the field of an error about the whole model)."""
    return "; ".join(
        f"{prefix}{'.'.join(str(part) for part in err['loc']) or empty}: {err['msg']}"
        for err in exc.errors()
    )


def _mark(root: Node, path: list[Any]) -> Mark | None:
    """The start of the deepest node of ``path`` in ``root`` (a mapping key's own start)."""
    node = root
    if isinstance(node, MappingNode) and path:
        keys = {k.value: v for k, v in node.value if isinstance(k, ScalarNode)}
        if str(path[0]) not in keys and isinstance(keys.get("workflow"), MappingNode):
            node = keys["workflow"]  # a pipeline_ex file: its fields live under workflow
    mark: Mark | None = None
    for part in path:
        if isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            mark = node.start_mark
        elif isinstance(node, MappingNode):
            found = [(k, v) for k, v in node.value if isinstance(k, ScalarNode)]
            match = next(((k, v) for k, v in found if k.value == str(part)), None)
            if match is None:
                break
            mark, node = match[0].start_mark, match[1]
        else:
            break
    return mark


def yaml_position(text: str, label: str, path: Sequence[Any] | None) -> str:
    """``label:line:column`` of the node at ``path`` (keys and list indexes) in the YAML
    ``text``, or ``label`` alone when it is not there."""
    mark: Mark | None = None
    if path:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:  # pragma: no cover - the text was loaded already
            root = None
        mark = _mark(root, list(path)) if root is not None else None
    return f"{label}:{mark.line + 1}:{mark.column + 1}" if mark is not None else label
