"""``file_ops``: copy, move, delete, list, validate and convert files in the workspace.

Every path is confined to the pipeline's workspace (``workspace_dir``, default
``./workspace``): a path outside it — through ``..``, an absolute path or a symlink — is
refused with an OutsideWorkspaceError naming it (see :mod:`otpy.workspace`)::

    - {name: backup, type: file_ops, operation: copy, source: src/a.py, destination: bak/}
    - {name: clean, type: file_ops, operation: delete, path: tmp}          # or files: [..]
    - {name: scan, type: file_ops, operation: list, path: src, pattern: "**/*.py"}
    - {name: check, type: file_ops, operation: validate,
       files: [{path: out/report.md, min_size: 10}, {path: out, must_be_dir: true}]}
    - {name: tojson, type: file_ops, operation: convert, source: a.csv, destination: a.json,
       format: csv_to_json}        # json_to_csv, yaml_to_json, json_to_yaml
    - {name: upper, type: file_ops, operation: stream_process, source: a.txt, processor: uppercase}

A ``pattern`` with ``*``, ``?`` or ``[`` is a glob (``**`` crosses directories), else a
regular expression on names (pipeline_ex's). Listed paths are relative to the workspace.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Final

import yaml

from otpy.errors import ConfigurationError, StepValidationError
from otpy.steps._base import Step, StepContext, StepMetadata, StepResult, check_choice
from otpy.workspace import Workspace

__all__ = ["CONVERSIONS", "FILE_OPERATIONS", "FileOpsStep"]

FILE_OPERATIONS: Final = ("copy", "move", "delete", "validate", "list", "convert",
                          "stream_copy", "stream_process")  # fmt: skip
CONVERSIONS: Final = ("csv_to_json", "json_to_csv", "yaml_to_json", "json_to_yaml")
PROCESSORS: Final = ("identity", "uppercase", "lowercase", "trim", "replace")
_NEEDS: Final = {
    "copy": ("source", "destination"), "move": ("source", "destination"),
    "stream_copy": ("source", "destination"), "convert": ("source", "destination", "format"),
    "stream_process": ("source",), "validate": ("files",),
}  # fmt: skip
_GLOB: Final = re.compile(r"[*?\[]")


def _list(ws: Workspace, base: str, pattern: str | None, recursive: bool) -> list[str]:
    root = ws.path(base, what="path")
    if not root.is_dir():
        raise ConfigurationError(f"list: {base!r} is not a directory of the workspace")
    glob = pattern is not None and _GLOB.search(pattern) is not None
    deep = recursive or (glob and "**" in (pattern or ""))
    found: list[str] = []
    for directory, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if Path(directory, d).is_symlink()]):
            path = Path(directory, name)
            relative = path.relative_to(root).as_posix()
            if pattern is None:
                keep = True
            elif glob:
                keep = fnmatch.fnmatch(relative, pattern) or (
                    fnmatch.fnmatch(name, pattern.split("/")[-1]) and "/" not in pattern
                )
            else:
                keep = re.search(pattern, name) is not None
            if keep and _inside(ws, path):  # a link out of the workspace is not listed
                found.append(ws.relative(path.absolute()))
        if not deep:
            break
    return found


def _inside(ws: Workspace, path: Path) -> bool:
    resolved = path.resolve()
    return resolved == ws.root or resolved.is_relative_to(ws.root)


def _sources(ws: Workspace, source: Any) -> list[Path]:
    names = source if isinstance(source, list) else [source]
    paths: list[Path] = []
    for name in names:
        if not isinstance(name, str):
            raise ConfigurationError(f"a source must be a path, got {name!r}")
        if _GLOB.search(name):
            matches = sorted(ws.root.glob(name))
            paths += [ws.path(str(m), what="source") for m in matches]
            continue
        path = ws.path(name, what="source")
        if not path.exists():
            raise ConfigurationError(f"source {name!r} does not exist in {ws.root}")
        paths.append(path)
    return paths


def _copy(ws: Workspace, step: Mapping[str, Any], move: bool) -> dict[str, Any]:
    sources = _sources(ws, step["source"])
    target = ws.path(step["destination"], what="destination")
    into_dir = len(sources) > 1 or str(step["destination"]).endswith("/") or target.is_dir()
    done = []
    for source in sources:
        destination = target / source.name if into_dir else target
        destination.parent.mkdir(parents=True, exist_ok=True)
        ws.path(destination, what="destination")
        if move:
            shutil.move(source, destination)
        elif source.is_dir():
            shutil.copytree(source, destination, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, destination, follow_symlinks=False)
        done.append(ws.relative(destination))
    return {"source": step["source"], "destination": step["destination"], "files": done}


def _delete(ws: Workspace, step: Mapping[str, Any]) -> dict[str, Any]:
    given = step.get("path") if step.get("path") is not None else step.get("files")
    names = given if isinstance(given, list) else [given]
    deleted = []
    for name in names:
        for path in _sources(ws, name):
            if path == ws.root:
                raise ConfigurationError("delete: refusing to delete the workspace itself")
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            deleted.append(ws.relative(path))
    return {"deleted": deleted}


def _validate(ws: Workspace, files: Any) -> dict[str, Any]:
    results, invalid = [], []
    for spec in files:
        path = ws.path(spec["path"], what="path")
        problems = []
        exists = path.exists()
        if spec.get("must_exist", True) and not exists:
            problems.append("does not exist")
        if spec.get("must_exist") is False and exists:
            problems.append("exists but must not")
        if spec.get("must_be_file") and not path.is_file():
            problems.append("is not a file")
        if spec.get("must_be_dir") and not path.is_dir():
            problems.append("is not a directory")
        size = path.stat().st_size if path.is_file() else None
        if size is not None and spec.get("min_size") is not None and size < spec["min_size"]:
            problems.append(f"is {size} bytes, less than {spec['min_size']}")
        if size is not None and spec.get("max_size") is not None and size > spec["max_size"]:
            problems.append(f"is {size} bytes, more than {spec['max_size']}")
        if spec.get("must_be_readable") and not os.access(path, os.R_OK):
            problems.append("is not readable")
        if spec.get("must_be_writable") and not os.access(path if exists else path.parent, os.W_OK):
            problems.append("is not writable")
        results.append(
            {
                "path": spec["path"],
                "status": "invalid" if problems else "valid",
                "problems": problems,
            }
        )
        if problems:
            invalid.append(f"{spec['path']} {', '.join(problems)}")
    if invalid:
        raise ConfigurationError(
            f"validation failed for {len(invalid)} file(s): {'; '.join(invalid)}"
        )
    return {"results": results, "status": "all_valid"}


def _convert(text: str, fmt: str) -> str:
    if fmt == "csv_to_json":
        return json.dumps(list(csv.DictReader(io.StringIO(text))), ensure_ascii=False)
    if fmt in ("json_to_csv", "json_to_yaml"):
        data = json.loads(text)
        if fmt == "json_to_yaml":
            return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        if not isinstance(data, list) or not data or not all(isinstance(r, dict) for r in data):
            raise ConfigurationError("json_to_csv needs a JSON array of objects")
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(data[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(data)
        return out.getvalue()
    return json.dumps(yaml.safe_load(text), ensure_ascii=False, default=str)


def _process(line: str, step: Mapping[str, Any]) -> str:
    kind = step.get("processor", "identity")
    if kind == "uppercase":
        return line.upper()
    if kind == "lowercase":
        return line.lower()
    if kind == "trim":
        return line.strip() + "\n"
    if kind == "replace":
        return line.replace(str(step.get("pattern", "")), str(step.get("replacement", "")))
    return line


class FileOpsStep(Step):
    """``file_ops`` (see the module docstring): no provider call; every path confined."""

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Copy, move, delete, list, validate and convert files inside the "
        "pipeline's workspace (paths outside it are refused).",
        required_fields=("operation",),
        optional_fields=("source", "destination", "path", "files", "pattern", "recursive",
                         "format", "processor", "replacement"),
    )  # fmt: skip

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        label = str(checked.get("name") or "file_ops")
        operation = checked["operation"]
        if operation not in FILE_OPERATIONS:
            raise StepValidationError(
                f"unknown operation {operation!r} (operations: {', '.join(FILE_OPERATIONS)})",
                step=label, field="operation",
            )  # fmt: skip
        for key in _NEEDS.get(operation, ()):
            if checked.get(key) is None:
                raise StepValidationError(
                    f"is required for operation {operation}", step=label, field=key
                )
        if operation == "delete" and checked.get("path") is None and checked.get("files") is None:
            raise StepValidationError("delete needs path (or files)", step=label, field="path")
        if operation == "convert" and checked["format"] not in CONVERSIONS:
            raise StepValidationError(
                f"unsupported conversion {checked['format']!r} "
                f"(conversions: {', '.join(CONVERSIONS)})",
                step=label, field="format",
            )  # fmt: skip
        if operation == "validate":
            files = checked["files"]
            if not isinstance(files, list) or not all(
                isinstance(f, Mapping) and isinstance(f.get("path"), str) for f in files
            ):
                raise StepValidationError(
                    "must be a list of {path: ..., must_exist: ...}", step=label, field="files"
                )
        processor = checked.get("processor", "identity")
        check_choice(processor, PROCESSORS, step=label, field="processor")
        return checked

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        ws = context.need_workspace("file_ops")
        operation = step["operation"]
        if operation in ("copy", "move", "stream_copy"):
            output = _copy(ws, step, move=operation == "move")
        elif operation == "delete":
            output = _delete(ws, step)
        elif operation == "validate":
            output = _validate(ws, step["files"])
        elif operation == "list":
            files = _list(
                ws, step.get("path") or ".", step.get("pattern"), bool(step.get("recursive"))
            )
            output = {
                "path": step.get("path") or ".",
                "pattern": step.get("pattern"),
                "files": files,
                "count": len(files),
            }
        elif operation == "convert":
            converted = _convert(ws.read_text(step["source"], what="source"), step["format"])
            ws.write_text(step["destination"], converted, what="destination")
            output = {
                "source": step["source"],
                "destination": step["destination"],
                "format": step["format"],
            }
        else:
            text = ws.read_text(step["source"], what="source")
            processed = "".join(_process(line, step) for line in text.splitlines(keepends=True))
            ws.write_text(step["source"], processed, what="source")
            output = {"source": step["source"], "processor": step.get("processor", "identity")}
        return StepResult(output={"operation": operation, "status": "completed", **output})
