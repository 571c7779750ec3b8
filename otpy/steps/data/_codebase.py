"""``codebase_query``: find files, functions, imports and related files in the workspace.

::

    - name: scan
      type: codebase_query
      codebase_context: true                 # add project: {type, files, languages}
      queries:
        sources: {find_files: [{type: source}, {pattern: "lib/**/*.py"}, {exclude_tests: true}]}
        tests_of_user: {find_files: [{related_to: lib/user.py}, {type: test}]}
        api: {find_functions: [{in_file: lib/api.py}, {public_only: true}]}
        deps: {find_dependencies: [{for_file: lib/user.py}]}
        near: {find_related: [{file: lib/user.py}]}
        impact: {analyze_impact: [{file: lib/user.py}]}
        info: {get_project_type: true, get_dependencies: true}

Criteria are a list of one-key mappings (pipeline_ex's form) or one mapping. Only the
workspace is scanned (``workspace_dir``); symlinks are not followed out of it, hidden and
build directories are skipped, at most 20,000 files. Output: query name -> result
(``files`` and ``count``, ``functions``, ``dependencies``, ``related_files``,
``impact_analysis``); a query that cannot run gives ``{error: ...}`` and is listed in
metadata ``failed``.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Final

from otpy.errors import ConfigurationError, StepValidationError
from otpy.steps._base import Step, StepContext, StepMetadata, StepResult
from otpy.workspace import Workspace

__all__ = ["QUERY_TYPES", "CodebaseQueryStep", "scan"]

QUERY_TYPES: Final = ("find_files", "find_functions", "find_dependencies", "find_related",
                      "analyze_impact")  # fmt: skip
INFO_KEYS: Final = ("get_project_type", "get_dependencies", "get_git_status")
MAX_FILES: Final = 20_000
_SKIP: Final = frozenset({".git", "node_modules", "_build", "deps", "__pycache__", ".venv",
                          "venv", "target", "dist", "build", ".mypy_cache"})  # fmt: skip
_LANGUAGES: Final = {".py": "python", ".ex": "elixir", ".exs": "elixir", ".js": "javascript",
                     ".jsx": "javascript", ".ts": "typescript", ".tsx": "typescript",
                     ".go": "go", ".rs": "rust", ".rb": "ruby", ".java": "java"}  # fmt: skip
_MANIFESTS: Final = {"mix.exs": "elixir", "package.json": "javascript", "pyproject.toml": "python",
                     "setup.py": "python", "requirements.txt": "python", "Cargo.toml": "rust",
                     "go.mod": "go"}  # fmt: skip
_CONFIG: Final = re.compile(
    r"(^|/)(config/.*|.*\.(toml|ya?ml|json|ini|cfg)|mix\.exs|package\.json)$"
)
_TEST: Final = re.compile(
    r"(^|/)(tests?/|spec/)|(^|/)test_[^/]*$|_test\.[a-z]+$|\.(test|spec)\.[a-z]+$"
)
_FUNCTIONS: Final = {
    "python": re.compile(r"^[ \t]*(?:async[ \t]+)?(def|class)[ \t]+([A-Za-z_]\w*)", re.M),
    "elixir": re.compile(r"^[ \t]*(defp?|defmacrop?|defmodule)[ \t]+([A-Za-z_][\w.?!]*)", re.M),
    "javascript": re.compile(
        r"^[ \t]*(?:export[ \t]+)?(function|class)[ \t]+([A-Za-z_$][\w$]*)", re.M
    ),
    "typescript": re.compile(
        r"^[ \t]*(?:export[ \t]+)?(function|class)[ \t]+([A-Za-z_$][\w$]*)", re.M
    ),
    "go": re.compile(r"^func[ \t]+(?:\([^)]*\)[ \t]*)?()([A-Za-z_]\w*)", re.M),
    "rust": re.compile(r"^[ \t]*(pub[ \t]+)?fn[ \t]+([A-Za-z_]\w*)", re.M),
}
_IMPORTS: Final = re.compile(
    r"^[ \t]*(?:import[ \t]+([\w.]+)|from[ \t]+([\w.]+)[ \t]+import|(?:alias|import|use|require)"
    r"[ \t]+([A-Z][\w.]*)|.*require\(['\"]([^'\"]+)['\"]\)|import .* from ['\"]([^'\"]+)['\"])",
    re.M,
)


def scan(ws: Workspace) -> dict[str, dict[str, Any]]:
    """Every file of the workspace (relative POSIX path -> size, mtime, language)."""
    files: dict[str, dict[str, Any]] = {}
    for directory, dirs, names in os.walk(ws.root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP and not d.startswith("."))
        for name in sorted(names):
            path = Path(directory, name)
            if path.is_symlink() or len(files) >= MAX_FILES:
                continue
            stat = path.stat()
            relative = path.relative_to(ws.root).as_posix()
            files[relative] = {"size": stat.st_size, "modified": stat.st_mtime,
                               "language": _LANGUAGES.get(path.suffix)}  # fmt: skip
    return files


def _criteria(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    merged: dict[str, Any] = {}
    for item in value or []:
        merged.update(item)
    return merged


def _project_type(files: Mapping[str, Any]) -> str:
    for manifest, kind in _MANIFESTS.items():
        if manifest in files:
            return kind
    return "unknown"


def _kind(path: str) -> str:
    if _TEST.search(path):
        return "test"
    if _CONFIG.search(path):
        return "config"
    return "source" if _LANGUAGES.get(Path(path).suffix) else "other"


def _related(files: Mapping[str, Any], target: str) -> list[str]:
    stem = Path(target).stem.removeprefix("test_").removesuffix("_test")
    folder = str(Path(target).parent)
    return sorted(
        path for path in files
        if path != target
        and (str(Path(path).parent) == folder or (stem and stem in Path(path).stem))
    )  # fmt: skip


def _find_files(files: Mapping[str, Any], c: Mapping[str, Any]) -> dict[str, Any]:
    chosen = list(files) if c.get("related_to") is None else _related(files, str(c["related_to"]))
    kind, pattern = c.get("type"), c.get("pattern")
    if kind == "main":
        chosen = [
            p for p in chosen if _kind(p) == "source" and not p.startswith(("tests/", "test/"))
        ]
    elif kind is not None:
        chosen = [p for p in chosen if _kind(p) == kind]
    if pattern:
        chosen = [
            p
            for p in chosen
            if fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.replace("**/", ""))
        ]
    if c.get("language"):
        chosen = [p for p in chosen if files[p]["language"] == str(c["language"]).lower()]
    if c.get("extension"):
        ext = str(c["extension"])
        chosen = [p for p in chosen if p.endswith(ext if ext.startswith(".") else "." + ext)]
    if c.get("contains"):
        chosen = [p for p in chosen if str(c["contains"]) in p]
    low = c.get("min_size", c.get("size_min"))
    high = c.get("max_size", c.get("size_max"))
    chosen = [
        p
        for p in chosen
        if (low is None or files[p]["size"] >= low) and (high is None or files[p]["size"] <= high)
    ]
    if c.get("exclude_tests"):
        chosen = [p for p in chosen if _kind(p) != "test"]
    excluded = c.get("exclude_patterns") or []
    chosen = [p for p in chosen if not any(fnmatch.fnmatch(p, x) for x in excluded)]
    return {"files": sorted(chosen), "count": len(chosen), "criteria": dict(c)}


def _functions(ws: Workspace, files: Mapping[str, Any], c: Mapping[str, Any]) -> dict[str, Any]:
    targets = (
        [c["in_file"]]
        if c.get("in_file")
        else [
            p for p in files if c.get("in_files") is None or fnmatch.fnmatch(p, str(c["in_files"]))
        ]
    )
    found = []
    for target in targets:
        language = _LANGUAGES.get(Path(target).suffix)
        pattern = _FUNCTIONS.get(language or "")
        if pattern is None:
            continue
        text = ws.read_text(target, what="in_file")
        for match in pattern.finditer(text):
            kind, name = match.group(1) or "function", match.group(2)
            if c.get("public_only") and (name.startswith("_") or kind in ("defp", "defmacrop")):
                continue
            if c.get("name") and name != c["name"]:
                continue
            line = text.count("\n", 0, match.start()) + 1
            found.append({"name": name, "type": kind.strip(), "file": target, "line": line})
    return {"functions": sorted(found, key=lambda f: (f["file"], f["line"]))}


def _imports(ws: Workspace, path: str) -> list[str]:
    text = ws.read_text(path, what="file")
    return sorted({next(g for g in m.groups() if g) for m in _IMPORTS.finditer(text)})


def _dependencies(ws: Workspace, files: Mapping[str, Any], c: Mapping[str, Any]) -> dict[str, Any]:
    if c.get("for_file"):
        direct = _imports(ws, str(c["for_file"]))
        return {"dependencies": {"direct": direct, "file_specific": {c["for_file"]: direct}}}
    manifests = {
        name: ws.read_text(name, what="manifest")[:20_000] for name in _MANIFESTS if name in files
    }
    return {"dependencies": {"manifests": sorted(manifests)}}


def _dependents(ws: Workspace, files: Mapping[str, Any], target: str) -> list[str]:
    stem = Path(target).stem
    return sorted(
        path for path in files
        if path != target and _kind(path) in ("source", "test") and files[path]["size"] < 1_000_000
        and any(stem in name.split(".")[-1].lower() or name.endswith(stem)
                for name in _imports(ws, path))
    )  # fmt: skip


class CodebaseQueryStep(Step):
    """``codebase_query`` (see the module docstring): no provider call."""

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Find files, functions, imports and related files in the pipeline's "
        "workspace (confined to it).",
        required_fields=("queries",),
        optional_fields=("codebase_context",),
    )

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        label = str(checked.get("name") or "codebase_query")
        queries = checked["queries"]
        if not isinstance(queries, Mapping) or not queries:
            raise StepValidationError(
                "must be a mapping of query name to query", step=label, field="queries"
            )
        for name, query in queries.items():
            known = (*QUERY_TYPES, *INFO_KEYS)
            kinds = [k for k in query if k in known] if isinstance(query, Mapping) else []
            if not kinds:
                raise StepValidationError(
                    f"a query needs one of {', '.join(known)}", step=label, field=f"queries.{name}"
                )
            for kind in kinds:
                value = query[kind]
                if kind in QUERY_TYPES and not (
                    isinstance(value, Mapping)
                    or (isinstance(value, list) and all(isinstance(v, Mapping) for v in value))
                ):
                    raise StepValidationError(
                        "must be a list of one-key mappings or a mapping of criteria",
                        step=label, field=f"queries.{name}.{kind}",
                    )  # fmt: skip
        return checked

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        ws = context.need_workspace("codebase_query")
        files = scan(ws)
        output: dict[str, Any] = {}
        failed = []
        for name, query in step["queries"].items():
            try:
                output[name] = self._query(ws, files, query)
            except ConfigurationError as exc:
                output[name] = {"error": str(exc)}
                failed.append(name)
        if step.get("codebase_context"):
            languages: dict[str, int] = {}
            for info in files.values():
                if info["language"]:
                    languages[info["language"]] = languages.get(info["language"], 0) + 1
            output["project"] = {
                "type": _project_type(files),
                "files": len(files),
                "languages": languages,
            }
        return StepResult(output=output, metadata={"files_scanned": len(files), "failed": failed})

    @staticmethod
    def _query(ws: Workspace, files: Mapping[str, Any], query: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if "find_files" in query:
            result.update(_find_files(files, _criteria(query["find_files"])))
        if "find_functions" in query:
            result.update(_functions(ws, files, _criteria(query["find_functions"])))
        if "find_dependencies" in query:
            result.update(_dependencies(ws, files, _criteria(query["find_dependencies"])))
        if "find_related" in query:
            c = _criteria(query["find_related"])
            target = str(c.get("file") or c.get("related_to") or "")
            result["related_files"] = [
                {"file": p, "relation_type": _kind(p)} for p in _related(files, target)
            ]
        if "analyze_impact" in query:
            target = str(_criteria(query["analyze_impact"]).get("file") or "")
            direct = _dependents(ws, files, target)
            tests = [p for p in _related(files, target) if _kind(p) == "test"]
            result["impact_analysis"] = {"directly_affected": direct, "test_files": tests,
                                         "impact_score": len(direct) * 2 + len(tests)}  # fmt: skip
        if query.get("get_project_type"):
            result["project_type"] = _project_type(files)
        if query.get("get_dependencies"):
            result["manifests"] = sorted(name for name in _MANIFESTS if name in files)
        if query.get("get_git_status"):
            result["git_status"] = {"error": "otpy runs no git commands"}
        return result
