"""The file tools, with Claude Code's names and arguments: Read, Write, Edit, MultiEdit.

Every path is resolved inside the agent's workspace (:class:`~otpy.workspace.Workspace`:
an absolute path outside it, ``..`` climbing out and symbolic links leading out are
refused, and the model is told why). Reads stop at ``max_read_bytes``, writes refuse more than
``max_write_bytes``. Text is UTF-8; bytes that are not survive an edit unchanged.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from otpy.agent._tool import Tool, ToolContext
from otpy.errors import ConfigurationError, ToolError

__all__ = ["EDIT", "MULTI_EDIT", "READ", "WRITE", "read_text", "write_text"]

DEFAULT_LINES = 2000
"""Lines Read shows when no ``limit`` is given (as Claude Code)."""
LINE_CHARS = 2000
"""A longer line is cut in what Read shows."""
_CODEC = ("utf-8", "surrogateescape")


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ReadArgs(_Args):
    file_path: str = Field(description="The file to read (relative to the workspace).")
    offset: int | None = Field(
        default=None, ge=1, description="The line number to start reading from (1 = first)."
    )
    limit: int | None = Field(default=None, ge=1, description="How many lines to read.")


class WriteArgs(_Args):
    file_path: str = Field(description="The file to write (relative to the workspace).")
    content: str = Field(description="The whole new content of the file.")


class EditArgs(_Args):
    file_path: str = Field(description="The file to edit (relative to the workspace).")
    old_string: str = Field(description="The exact text to replace.")
    new_string: str = Field(description="The text to put in its place.")
    replace_all: bool = Field(
        default=False, description="Replace every occurrence (else it must occur once)."
    )


class OneEdit(_Args):
    old_string: str = Field(description="The exact text to replace.")
    new_string: str = Field(description="The text to put in its place.")
    replace_all: bool = False


class MultiEditArgs(_Args):
    file_path: str = Field(description="The file to edit (relative to the workspace).")
    edits: list[OneEdit] = Field(
        min_length=1, description="Edits applied in order; all of them or none."
    )


def _target(tool: str, path: str, context: ToolContext) -> tuple[Path, str]:
    """The real path inside the workspace and its name relative to the root."""
    workspace = context.require_workspace(tool)
    try:
        real = workspace.path(path)
    except ConfigurationError as exc:  # outside the workspace, empty, a NUL byte
        raise ToolError(str(exc), tool=tool) from None
    return real, workspace.relative(real)


def read_text(tool: str, real: Path, shown: str, limit: int) -> tuple[str, bool]:
    """The text of a file (at most ``limit`` bytes) and whether it was cut."""
    if real.is_dir():
        raise ToolError(f"{shown} is a directory (use LS to list it)", tool=tool)
    try:
        with real.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise ToolError(f"{shown}: no such file", tool=tool) from None
    except OSError as exc:
        raise ToolError(f"{shown}: cannot read it ({exc.strerror})", tool=tool) from None
    return data[:limit].decode(*_CODEC), len(data) > limit


def write_text(tool: str, real: Path, shown: str, text: str, context: ToolContext) -> int:
    """Write ``text`` (creating parent directories); the bytes written."""
    data = text.encode(*_CODEC)
    cap = context.limits.max_write_bytes
    if len(data) > cap:
        raise ToolError(f"{shown}: {len(data)} bytes is over the {cap}-byte write limit", tool=tool)
    if real.is_dir():
        raise ToolError(f"{shown} is a directory", tool=tool)
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        real.write_bytes(data)
    except OSError as exc:
        raise ToolError(f"{shown}: cannot write it ({exc.strerror})", tool=tool) from None
    context.changes.record(shown)
    return len(data)


def _read(args: BaseModel, context: ToolContext) -> str:
    assert isinstance(args, ReadArgs)
    real, shown = _target("Read", args.file_path, context)
    text, cut = read_text("Read", real, shown, context.limits.max_read_bytes)
    if not text:
        return f"({shown} is empty)"
    lines = text.splitlines()
    first = (args.offset or 1) - 1
    count = args.limit or DEFAULT_LINES
    chosen = lines[first : first + count]
    if not chosen:
        raise ToolError(
            f"{shown} has {len(lines)} lines; offset {args.offset} is past the end", tool="Read"
        )
    body = "\n".join(
        f"{number:>6}\t{line[:LINE_CHARS]}" for number, line in enumerate(chosen, start=first + 1)
    )
    more = len(lines) - first - len(chosen)
    if more > 0:
        body += f"\n[{more} more lines: read on with offset={first + len(chosen) + 1}]"
    if cut:
        body += f"\n[the file is longer than {context.limits.max_read_bytes} bytes: cut there]"
    return body


def _write(args: BaseModel, context: ToolContext) -> str:
    assert isinstance(args, WriteArgs)
    real, shown = _target("Write", args.file_path, context)
    existed = real.exists()
    size = write_text("Write", real, shown, args.content, context)
    return f"{'Overwrote' if existed else 'Created'} {shown} ({size} bytes)"


def _apply(tool: str, text: str, edit: OneEdit | EditArgs, where: str) -> tuple[str, int]:
    if edit.old_string == edit.new_string:
        raise ToolError(f"{where}: old_string and new_string are the same", tool=tool)
    if not edit.old_string:
        raise ToolError(f"{where}: old_string is empty", tool=tool)
    found = text.count(edit.old_string)
    if found == 0:
        raise ToolError(f"{where}: old_string not found", tool=tool)
    if found > 1 and not edit.replace_all:
        raise ToolError(
            f"{where}: old_string occurs {found} times; give more context to make it unique "
            "or set replace_all",
            tool=tool,
        )
    return text.replace(edit.old_string, edit.new_string), found


def _load_for_edit(tool: str, path: str, context: ToolContext) -> tuple[Path, str, str]:
    real, shown = _target(tool, path, context)
    text, cut = read_text(tool, real, shown, context.limits.max_read_bytes)
    if cut:
        raise ToolError(
            f"{shown} is over the {context.limits.max_read_bytes}-byte read limit: not edited",
            tool=tool,
        )
    return real, shown, text


def _edit(args: BaseModel, context: ToolContext) -> str:
    assert isinstance(args, EditArgs)
    real, shown, text = _load_for_edit("Edit", args.file_path, context)
    text, found = _apply("Edit", text, args, shown)
    write_text("Edit", real, shown, text, context)
    return f"Edited {shown}: {found} replacement{'s' if found != 1 else ''}"


def _multi_edit(args: BaseModel, context: ToolContext) -> str:
    assert isinstance(args, MultiEditArgs)
    real, shown, text = _load_for_edit("MultiEdit", args.file_path, context)
    total = 0
    for index, edit in enumerate(args.edits):
        text, found = _apply("MultiEdit", text, edit, f"{shown} edit {index + 1}")
        total += found
    write_text("MultiEdit", real, shown, text, context)
    return f"Edited {shown}: {len(args.edits)} edits, {total} replacements"


READ = Tool(
    "Read",
    "Read a text file of the workspace. Lines come numbered (cat -n); use offset and "
    "limit for a part of a long file.",
    ReadArgs,
    _read,
    kind="workspace",
)
WRITE = Tool(
    "Write",
    "Write a file of the workspace (created with its folders, or overwritten) with the "
    "given content.",
    WriteArgs,
    _write,
    kind="workspace",
)
EDIT = Tool(
    "Edit",
    "Replace exact text in a file of the workspace: old_string must occur exactly once "
    "unless replace_all is true.",
    EditArgs,
    _edit,
    kind="workspace",
)
MULTI_EDIT = Tool(
    "MultiEdit",
    "Several Edit replacements on one file, applied in order; if one fails none is saved.",
    MultiEditArgs,
    _multi_edit,
    kind="workspace",
)
