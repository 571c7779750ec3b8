"""``load_pipeline``: a pipeline from a YAML file, YAML text or a mapping.

YAML is loaded with a ``yaml.SafeLoader`` subclass that also refuses duplicate keys (plain
YAML keeps the last one silently): only plain data is ever built, and a tag such as
``!!python/object`` is refused with its file, line and column. Every error says where:

- malformed YAML, a refused tag, a duplicate key: ConfigurationError
  ``qa.yaml:3:7: malformed YAML: ...`` (``<text>`` for YAML text);
- a config that is not a mapping: ConfigurationError naming the file;
- a schema or template error: StepValidationError naming the step (its name, else
  ``steps[<index>]``) and the field, ending with the position in the file
  (``step 'answer', field 'on_error': must be ... (qa.yaml:12:5)``).

A legacy (pipeline_ex-style) config goes through ``otpy.compat.migrate_pipeline`` first;
the pipeline carries the report as ``pipeline.migration``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TypeAlias

import pydantic

from otpy.compat import migrate_pipeline
from otpy.documents import parse_yaml, read_text, yaml_position
from otpy.errors import ConfigurationError, StepValidationError
from otpy.pipelines._check import check_references
from otpy.pipelines._problems import copy_error, from_pydantic, shown
from otpy.pipelines._schema import Pipeline

__all__ = ["PipelineSource", "load_pipeline", "locate", "position"]

PipelineSource: TypeAlias = "str | os.PathLike[str] | Mapping[str, Any] | Pipeline"
"""A pipeline file's path, YAML text, a mapping, or a Pipeline (checked and returned)."""

_SUFFIXES: Final = (".yaml", ".yml", ".json")
_FIELD_PART: Final = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _is_path(text: str) -> bool:
    """A one-line str naming a YAML/JSON file (existing or not) or any existing file."""
    if "\n" in text:
        return False
    if text.strip().endswith(_SUFFIXES):
        return True
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte: not a path
        return False


def _path_of(step: str | None, field: str | None, config: Mapping[str, Any]) -> list[Any] | None:
    path: list[Any] = []
    if step is not None:
        indexed = re.fullmatch(r"steps\[(\d+)\]", step)
        workflow = config.get("workflow")
        steps = workflow.get("steps") if isinstance(workflow, Mapping) else config.get("steps")
        names = [s.get("name") if isinstance(s, Mapping) else None for s in steps or ()]
        if indexed is not None:
            path = ["steps", int(indexed.group(1))]
        elif isinstance(steps, list) and step in names:
            path = ["steps", names.index(step)]
        else:
            return None
    for name, index in _FIELD_PART.findall(field or ""):
        path.append(int(index) if index else name)
    return path


def _where(
    step: str | None, field: str | None, label: str, text: str | None, config: Mapping[str, Any]
) -> str | None:
    """``file:line:column`` of ``step``'s ``field`` (``label`` alone when it cannot be
    found) for a config read from YAML; None for a dict."""
    if text is None:
        return None
    return yaml_position(text, label, _path_of(step, field, config))


def _located(
    exc: StepValidationError, label: str, text: str | None, config: Mapping[str, Any]
) -> StepValidationError:
    """``exc`` with `` (file:line:column)`` appended when the config came from YAML."""
    where = _where(exc.step, exc.field, label, text, config)
    return exc if where is None else copy_error(exc, f"{exc} ({where})")


def position(pipeline: Pipeline, step: str | None, field: str | None) -> str | None:
    """Where ``step``'s ``field`` is in the YAML ``pipeline`` was loaded from
    (``file:line:column``), or None (built from a dict or a Pipeline)."""
    source = pipeline.source
    if source is None:
        return None
    label, text, config = source
    return _where(step, field, label, text, config)


def locate(pipeline: Pipeline, exc: StepValidationError) -> StepValidationError:
    """``exc`` (about ``pipeline``) with its position in the YAML appended, if known."""
    where = position(pipeline, exc.step, exc.field)
    return exc if where is None else copy_error(exc, f"{exc} ({where})")


def _migratable(config: Mapping[str, Any]) -> bool:
    steps = config.get("steps")
    return "workflow" in config or (
        isinstance(steps, list) and all(isinstance(step, dict) for step in steps)
    )


def _build(data: Any, label: str, text: str | None) -> Pipeline:
    if data is None:
        raise ConfigurationError(f"{label}: the pipeline is empty (expected name and steps)")
    if not isinstance(data, Mapping):
        hint = ""
        if label == "<text>" and isinstance(data, str) and "\n" not in data:
            hint = " (and it names no existing file)"
        raise ConfigurationError(
            f"{label}: a pipeline must be a mapping with name and steps, got "
            f"{type(data).__name__} {shown(data)}{hint}"
        )
    config: Mapping[str, Any] = data
    migration = None
    pipeline_ex = False
    try:
        if _migratable(config):
            result = migrate_pipeline(config)
            config = result.config
            pipeline_ex = result.pipeline_ex
            if result.changes or result.notes or pipeline_ex:
                migration = result
        pipeline = Pipeline.model_validate(config)
        pipeline._open_inputs = pipeline_ex
        check_references(pipeline)
    except StepValidationError as exc:
        located = _located(exc, label, text, config)
        if located is exc:
            raise
        raise located from exc
    except pydantic.ValidationError as exc:
        raise _located(from_pydantic(exc, config), label, text, config) from exc
    pipeline._migration = migration
    pipeline._source = (label, text, config)
    return pipeline


def load_pipeline(source: PipelineSource) -> Pipeline:
    """The pipeline in ``source``: a path (``str`` or ``os.PathLike``; a one-line str
    ending in .yaml/.yml/.json or naming an existing file), YAML text, a mapping, or a
    Pipeline (its templates are checked and it is returned as it is).

    Migrates a legacy config first, validates the schema, then checks every template
    (:func:`check_references`). Runs in the caller's thread; reads the file, nothing
    else. Raises ConfigurationError (unreadable file, malformed YAML, a refused tag, a
    duplicate key, not a mapping) or StepValidationError (step, field and file position).
    """
    if isinstance(source, Pipeline):
        check_references(source)
        return source
    if isinstance(source, Mapping):
        return _build(source, "<dict>", None)
    if isinstance(source, os.PathLike) or (isinstance(source, str) and _is_path(source)):
        path = Path(source)
        text = read_text(path)
        return _build(parse_yaml(text, str(path)), str(path), text)
    if isinstance(source, str):
        return _build(parse_yaml(source, "<text>"), "<text>", source)
    raise ConfigurationError(
        f"a pipeline source must be a path, YAML text or a mapping, got {type(source).__name__}"
    )
