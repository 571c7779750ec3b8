"""The ``Bash`` tool: a shell command in the workspace. Off unless the runtime config
enables it (``tools.bash: true``) *and* the step allows it (``allowed_tools: [Bash]``).

The command runs with ``bash -c`` (``sh -c`` where there is no bash) in the workspace
root, in a process group of its own, stdin closed, with an environment of only
:data:`KEPT_VARIABLES` (``HOME`` is the workspace): no API key reaches it. It is killed
(the whole group) after its timeout. Output (stdout, then stderr) is cut to
``max_output_chars``. Files it created, changed or deleted in the workspace are found by
comparing the workspace before and after. A shell is not confined by path checks: a
command can read anything the process can — hence off by default.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

from pydantic import BaseModel, Field

from otpy.agent._files import _Args
from otpy.agent._tool import Tool, ToolContext, shorten
from otpy.errors import ToolError

__all__ = ["BASH", "KEPT_VARIABLES", "command_environment"]

KEPT_VARIABLES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "TMPDIR", "USER",
                  "LOGNAME", "SHELL")  # fmt: skip
"""The environment variables a command sees (when set); nothing else is passed."""
_SNAPSHOT_LIMIT = 20_000  # files compared before and after a command


class BashArgs(_Args):
    command: str = Field(min_length=1, description="The shell command to run.")
    timeout: int | None = Field(
        default=None, ge=1, description="Milliseconds before it is killed (capped by the runtime)."
    )
    description: str | None = Field(default=None, description="What it does, in a few words.")


def command_environment(workspace: Path) -> dict[str, str]:
    """The environment of a command: :data:`KEPT_VARIABLES` from this process's, and
    ``HOME`` set to the workspace."""
    env = {name: os.environ[name] for name in KEPT_VARIABLES if name in os.environ}
    env["HOME"] = str(workspace)
    return env


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    seen: dict[str, tuple[int, int]] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in files:
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            seen[os.path.relpath(path, root).replace(os.sep, "/")] = (
                info.st_mtime_ns,
                info.st_size,
            )
            if len(seen) >= _SNAPSHOT_LIMIT:
                return seen
    return seen


def _bash(args: BaseModel, context: ToolContext) -> str:
    assert isinstance(args, BashArgs)
    workspace = context.require_workspace("Bash")
    root = workspace.root
    root.mkdir(parents=True, exist_ok=True)
    limit = context.limits.bash_timeout
    timeout = min(limit, args.timeout / 1000) if args.timeout else limit
    shell = shutil.which("bash") or "/bin/sh"
    before = _snapshot(root)
    process = subprocess.Popen(
        [shell, "-c", args.command],
        cwd=root,
        env=command_environment(root),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        _record(context, before, _snapshot(root))
        shown = _output(out, err, context)
        raise ToolError(
            f"timed out after {timeout:g} s and was killed\n{shown}", tool="Bash"
        ) from None
    _record(context, before, _snapshot(root))
    shown = _output(out, err, context)
    if process.returncode != 0:
        raise ToolError(f"exit code {process.returncode}\n{shown}", tool="Bash")
    return shown


def _output(out: bytes, err: bytes, context: ToolContext) -> str:
    text = out.decode("utf-8", "replace")
    if err:
        text += ("\n" if text and not text.endswith("\n") else "") + err.decode("utf-8", "replace")
    return shorten(text, context.limits.max_output_chars - 100)


def _record(
    context: ToolContext, before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> None:
    for path in sorted(set(before) | set(after)):
        if before.get(path) != after.get(path):
            context.changes.record(path)


BASH = Tool(
    "Bash",
    "Run a shell command in the workspace folder (with a timeout; output is cut when long).",
    BashArgs,
    _bash,
    kind="bash",
)
