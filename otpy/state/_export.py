"""The export format every backend writes and reads: ``"otpy.state/1"``.

::

    {"format": "otpy.state/1",
     "session_id": "s",
     "variables": {id: Variable.to_dict(), ...},      # in registration order
     "variable_index": {name: id, ...},
     "metadata": {"backend": "LocalState", "exported_at": ..., "created_at": ..., ...}}

It is plain JSON data: ``json.loads(json.dumps(export))`` imports the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from otpy.errors import StateError
from otpy.state._types import json_copy
from otpy.state._variable import Variable

__all__ = ["EXPORT_FORMAT", "ParsedExport", "build_export", "parse_export"]

EXPORT_FORMAT: Final = "otpy.state/1"
_KEYS: Final = ("format", "session_id", "variables", "variable_index", "metadata")


def build_export(
    *,
    session_id: str,
    records: Iterable[Variable],
    backend: str,
    created_at: float,
    exported_at: float,
    session_metadata: Mapping[str, Any],
) -> dict[str, Any]:
    """An export of ``records``; ``metadata`` is the session's own plus where it came from."""
    variables = {record.id: record.to_dict() for record in records}
    return {
        "format": EXPORT_FORMAT,
        "session_id": session_id,
        "variables": variables,
        "variable_index": {data["name"]: var_id for var_id, data in variables.items()},
        "metadata": {
            **json_copy(dict(session_metadata)),
            "backend": backend,
            "exported_at": exported_at,
            "created_at": created_at,
        },
    }


@dataclass(frozen=True, slots=True)
class ParsedExport:
    """A checked export: the exporting session, its variables in order, its metadata."""

    session_id: str
    records: tuple[Variable, ...]
    metadata: dict[str, Any]


def _malformed(why: str) -> StateError:
    return StateError(f"malformed state export: {why}; nothing was imported")


def parse_export(exported: object) -> ParsedExport:
    """Check an export completely before anything is imported.

    Raises StateError naming the field (and variable) for a wrong format, a missing key,
    an index that disagrees with the variables, or a variable that breaks its own type.
    """
    if not isinstance(exported, Mapping):
        raise _malformed(f"expected a dict, got {type(exported).__name__}")
    missing = [key for key in _KEYS if key not in exported]
    if missing:
        raise _malformed(f"missing key(s) {missing}")
    if exported["format"] != EXPORT_FORMAT:
        raise _malformed(f"field 'format' is {exported['format']!r}, expected {EXPORT_FORMAT!r}")
    session_id, variables = exported["session_id"], exported["variables"]
    index, metadata = exported["variable_index"], exported["metadata"]
    if not isinstance(session_id, str) or not session_id:
        raise _malformed(f"field 'session_id' must be a non-empty str, got {session_id!r}")
    for field, value in (("variables", variables), ("variable_index", index)):
        if not isinstance(value, Mapping):
            raise _malformed(f"field {field!r} must be a dict, got {type(value).__name__}")
    if not isinstance(metadata, Mapping):
        raise _malformed(f"field 'metadata' must be a dict, got {type(metadata).__name__}")
    records = []
    for var_id, data in variables.items():
        try:
            record = Variable.from_dict(data)
        except StateError as exc:
            raise _malformed(f"variables[{var_id!r}]: {exc}") from exc
        if record.id != var_id:
            raise _malformed(f"variables[{var_id!r}] has field 'id' {record.id!r}")
        records.append(record)
    names = {record.name: record.id for record in records}
    if len(names) != len(records):
        raise _malformed("field 'variables' holds two variables of the same name")
    if dict(index) != names:
        wrong = sorted(
            {repr(name) for name in index if names.get(name) != index[name]}
            | {repr(name) for name in names if name not in index}
        )
        raise _malformed(
            f"field 'variable_index' disagrees with 'variables' for {', '.join(wrong)}"
        )
    try:
        plain = json_copy(dict(metadata))
    except Exception as exc:
        raise _malformed(f"field 'metadata' is not JSON ({exc})") from None
    return ParsedExport(session_id, tuple(records), plain)
