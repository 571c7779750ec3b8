"""The finding tools, with Claude Code's names and arguments: Glob, Grep, LS.

They walk the workspace without following symbolic links to directories, never read a
file through a link that leads out of the workspace, list paths relative to the
workspace root, sorted, and stop at ``max_results`` (saying so).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from otpy.agent._files import _Args, _target, read_text
from otpy.agent._tool import Tool, ToolContext
from otpy.errors import ToolError
from otpy.workspace import Workspace

__all__ = ["GLOB", "GREP", "LS", "glob_regex", "walk_files"]

_BINARY_PROBE = 8192


class GlobArgs(_Args):
    pattern: str = Field(description="A glob such as '**/*.py' or 'src/*.{ts,tsx}'.")
    path: str | None = Field(
        default=None, description="The folder to search in (default: the workspace root)."
    )


class GrepArgs(_Args):
    pattern: str = Field(description="A regular expression (Python syntax).")
    path: str | None = Field(
        default=None, description="A file or folder to search (default: the workspace root)."
    )
    glob: str | None = Field(default=None, description="Only files matching this glob.")
    output_mode: Literal["files_with_matches", "content", "count"] = Field(
        default="files_with_matches",
        description="files_with_matches (paths), content (path:line:text) or count.",
    )
    case_insensitive: bool = Field(default=False, alias="-i", description="Ignore case.")


class LSArgs(_Args):
    path: str = Field(default=".", description="The folder to list (relative to the workspace).")
    ignore: list[str] = Field(default_factory=list, description="Glob patterns of names to skip.")


@functools.lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a glob over ``/``-separated relative paths: ``**`` spans folders
    (``**/`` also none), ``*`` and ``?`` stay within one name, ``[...]`` is a class and
    ``{a,b}`` an alternative (not nested)."""
    out, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := pattern.find("]", index + 1)) > index:
            body = pattern[index + 1 : end].replace("\\", "\\\\")
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
            index = end
        elif char == "{" and (end := pattern.find("}", index + 1)) > index:
            choices = pattern[index + 1 : end].split(",")
            out.append("(?:" + "|".join(glob_regex(c).pattern[:-2] for c in choices) + ")")
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error as exc:
        raise ToolError(f"bad glob {pattern!r}: {exc}") from None


def walk_files(workspace: Workspace, base: Path) -> Iterator[Path]:
    """Every file under ``base`` (real paths, sorted per folder), not following links to
    folders; a linked file is given only when it resolves inside the workspace."""
    for folder, dirs, files in os.walk(base, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder, name)
            if path.is_symlink():
                if not workspace.contains(path) or not path.is_file():
                    continue
                path = Path(os.path.realpath(path))
            yield path


def _folder(tool: str, path: str | None, context: ToolContext) -> tuple[Workspace, Path]:
    workspace = context.require_workspace(tool)
    real, shown = _target(tool, path or ".", context)
    if not real.exists():
        raise ToolError(f"{shown}: no such file or folder", tool=tool)
    return workspace, real


def _capped(lines: list[str], limit: int, what: str) -> str:
    if not lines:
        return f"no {what}"
    if len(lines) > limit:
        return "\n".join([*lines[:limit], f"[{len(lines) - limit} more {what} not shown]"])
    return "\n".join(lines)


def _glob(args: BaseModel, context: ToolContext) -> str:
    assert isinstance(args, GlobArgs)
    workspace, base = _folder("Glob", args.path, context)
    if not base.is_dir():
        raise ToolError(f"{workspace.relative(base)} is not a folder", tool="Glob")
    regex = glob_regex(args.pattern)
    found = []
    for path in walk_files(workspace, base):
        within = os.path.relpath(path, base).replace(os.sep, "/")
        if regex.match(within):
            found.append(workspace.relative(path))
    return _capped(found, context.limits.max_results, "files")


def _grep(args: BaseModel, context: ToolContext) -> str:
    assert isinstance(args, GrepArgs)
    workspace, base = _folder("Grep", args.path, context)
    try:
        regex = re.compile(args.pattern, re.IGNORECASE if args.case_insensitive else 0)
    except re.error as exc:
        raise ToolError(f"bad pattern {args.pattern!r}: {exc}", tool="Grep") from None
    only = glob_regex(args.glob) if args.glob else None
    files = [base] if base.is_file() else walk_files(workspace, base)
    out: list[str] = []
    for path in files:
        shown = workspace.relative(path)
        if only is not None:
            within = (
                os.path.relpath(path, base).replace(os.sep, "/") if base.is_dir() else path.name
            )
            if not (only.match(within) or only.match(path.name)):
                continue
        text, _ = read_text("Grep", path, shown, context.limits.max_read_bytes)
        if "\x00" in text[:_BINARY_PROBE]:
            continue
        hits = [(n, line) for n, line in enumerate(text.splitlines(), 1) if regex.search(line)]
        if not hits:
            continue
        if args.output_mode == "files_with_matches":
            out.append(shown)
        elif args.output_mode == "count":
            out.append(f"{shown}:{len(hits)}")
        else:
            out.extend(f"{shown}:{n}:{line[:500]}" for n, line in hits)
        if len(out) > context.limits.max_results:
            break
    return _capped(out, context.limits.max_results, "matches")


def _ls(args: BaseModel, context: ToolContext) -> str:
    assert isinstance(args, LSArgs)
    workspace, base = _folder("LS", args.path, context)
    if not base.is_dir():
        raise ToolError(f"{workspace.relative(base)} is not a folder", tool="LS")
    entries = []
    for entry in sorted(os.scandir(base), key=lambda e: e.name):
        if any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in args.ignore):
            continue
        if entry.is_symlink():
            entries.append(f"{entry.name}@")
        elif entry.is_dir(follow_symlinks=False):
            entries.append(f"{entry.name}/")
        else:
            entries.append(entry.name)
    listed = _capped(entries, context.limits.max_results, "entries")
    return f"{workspace.relative(base)}/\n{listed}"


GLOB = Tool(
    "Glob",
    "Find files of the workspace by a glob pattern ('**/*.py'); paths come relative to "
    "the workspace root, sorted.",
    GlobArgs,
    _glob,
    kind="workspace",
)
GREP = Tool(
    "Grep",
    "Search file contents of the workspace with a regular expression; list the matching "
    "files, the matching lines (output_mode content) or counts.",
    GrepArgs,
    _grep,
    kind="workspace",
)
LS = Tool(
    "LS",
    "List a folder of the workspace (folders end with '/', links with '@').",
    LSArgs,
    _ls,
    kind="workspace",
)
