"""The built-in tools with Claude Code's names and arguments, confined to a workspace:
what each does, escape attempts refused (and reported as tool errors), size caps, and
Bash: absent unless enabled, then in the workspace, with a clean environment, a timeout
and capped output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from otpy.agent import (
    BUILTIN_TOOLS,
    KEPT_VARIABLES,
    ToolContext,
    ToolLimits,
    ToolRegistry,
    command_environment,
    glob_regex,
)
from otpy.errors import ConfigurationError, ToolError
from otpy.workspace import Workspace


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "app.py").write_text("import os\nprint('hello')\n")
    (root / "src" / "pkg" / "util.py").write_text("def helper():\n    return 'Hello'\n")
    (root / "README.md").write_text("# Demo\nhello world\n")
    return root


def run(root: Path, tool: str, limits: ToolLimits | None = None, **arguments: Any) -> str:
    context = ToolContext(workspace=Workspace(root), limits=limits or ToolLimits())
    return BUILTIN_TOOLS[tool].run(arguments, context)


def test_read_numbers_lines_and_pages_through_offset_and_limit(root: Path) -> None:
    assert run(root, "Read", file_path="src/app.py") == "     1\timport os\n     2\tprint('hello')"
    (root / "long.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    shown = run(root, "Read", file_path="long.txt", offset=3, limit=2)
    assert shown == "     3\tline 3\n     4\tline 4\n[6 more lines: read on with offset=5]"
    assert run(root, "Read", file_path=str(root / "README.md")).startswith("     1\t# Demo")
    (root / "empty").write_text("")
    assert run(root, "Read", file_path="empty") == "(empty is empty)"
    with pytest.raises(ToolError, match="no such file"):
        run(root, "Read", file_path="nope.txt")
    with pytest.raises(ToolError, match="is a directory"):
        run(root, "Read", file_path="src")


def test_write_creates_folders_and_edit_replaces_exactly(root: Path) -> None:
    assert run(root, "Write", file_path="out/new.txt", content="a b a\n") == (
        "Created out/new.txt (6 bytes)"
    )
    assert run(root, "Write", file_path="out/new.txt", content="a b a\n").startswith("Overwrote")
    with pytest.raises(ToolError, match="occurs 2 times"):
        run(root, "Edit", file_path="out/new.txt", old_string="a", new_string="x")
    assert run(root, "Edit", file_path="out/new.txt", old_string="a", new_string="x",
               replace_all=True) == "Edited out/new.txt: 2 replacements"  # fmt: skip
    with pytest.raises(ToolError, match="old_string not found"):
        run(root, "Edit", file_path="out/new.txt", old_string="zzz", new_string="y")
    with pytest.raises(ToolError, match="are the same"):
        run(root, "Edit", file_path="out/new.txt", old_string="b", new_string="b")
    assert (root / "out" / "new.txt").read_text() == "x b x\n"


def test_multi_edit_is_all_or_nothing(root: Path) -> None:
    edits = [{"old_string": "import os", "new_string": "import sys"},
             {"old_string": "missing", "new_string": "x"}]  # fmt: skip
    with pytest.raises(ToolError, match="edit 2: old_string not found"):
        run(root, "MultiEdit", file_path="src/app.py", edits=edits)
    assert (root / "src" / "app.py").read_text().startswith("import os")
    edits[1] = {"old_string": "'hello'", "new_string": "'bye'"}
    assert run(root, "MultiEdit", file_path="src/app.py", edits=edits) == (
        "Edited src/app.py: 2 edits, 2 replacements"
    )
    assert (root / "src" / "app.py").read_text() == "import sys\nprint('bye')\n"


def test_glob_grep_and_ls(root: Path) -> None:
    assert run(root, "Glob", pattern="**/*.py") == "src/app.py\nsrc/pkg/util.py"
    assert run(root, "Glob", pattern="*.py", path="src") == "src/app.py"
    assert run(root, "Glob", pattern="**/*.{md,txt}") == "README.md"
    assert run(root, "Glob", pattern="*.rs") == "no files"
    assert run(root, "Grep", pattern="hello") == "README.md\nsrc/app.py"
    assert run(root, "Grep", pattern="hello", **{"-i": True}, glob="*.py") == (
        "src/app.py\nsrc/pkg/util.py"
    )
    assert run(root, "Grep", pattern="hel+o", output_mode="content", path="src/app.py") == (
        "src/app.py:2:print('hello')"
    )
    assert run(root, "Grep", pattern="o", output_mode="count", path="src") == (
        "src/app.py:2\nsrc/pkg/util.py:1"
    )
    with pytest.raises(ToolError, match="bad pattern"):
        run(root, "Grep", pattern="(")
    assert run(root, "LS") == "./\nREADME.md\nsrc/"
    assert run(root, "LS", path="src", ignore=["*.py"]) == "src/\npkg/"


def test_glob_patterns() -> None:
    regex = glob_regex("src/**/test_*.py")
    assert regex.match("src/test_a.py") and regex.match("src/x/y/test_b.py")
    assert not regex.match("src/x/a_test.py") and not regex.match("lib/test_a.py")
    assert glob_regex("*.txt").match("a.txt") and not glob_regex("*.txt").match("d/a.txt")
    assert glob_regex("file?.[ch]").match("file1.c") and not glob_regex("[!a]*").match("abc")


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("Read", {"file_path": "../../etc/passwd"}),
        ("Read", {"file_path": "/etc/passwd"}),
        ("Write", {"file_path": "/tmp/otpy-escape.txt", "content": "x"}),
        ("Edit", {"file_path": "../x", "old_string": "a", "new_string": "b"}),
        ("LS", {"path": "/"}),
        ("Glob", {"pattern": "*", "path": ".."}),
        ("Grep", {"pattern": "root", "path": "/etc"}),
    ],
)
def test_escape_attempts_are_tool_errors(root: Path, tool: str, arguments: Any) -> None:
    with pytest.raises(ToolError, match=r"is outside .* paths are confined"):
        run(root, tool, **arguments)
    assert not Path("/tmp/otpy-escape.txt").exists()


def test_a_planted_symlink_is_never_followed_out(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.txt").write_text("s3cr3t value")
    os.symlink(secret, root / "planted")
    os.symlink(secret / "key.txt", root / "key-link.txt")
    for tool, arguments in [
        ("Read", {"file_path": "planted/key.txt"}),
        ("Read", {"file_path": "key-link.txt"}),
        ("Write", {"file_path": "planted/new.txt", "content": "x"}),
        ("Edit", {"file_path": "key-link.txt", "old_string": "s3cr3t", "new_string": "x"}),
        ("LS", {"path": "planted"}),
        ("Grep", {"pattern": "s3cr3t", "path": "planted"}),
    ]:
        with pytest.raises(ToolError, match="a symlink leads out of it"):
            run(root, tool, **arguments)
    assert "s3cr3t" not in run(root, "Grep", pattern="s3cr3t")  # the walk skips links out
    assert "key" not in run(root, "Glob", pattern="**/*")
    assert "planted@" in run(root, "LS")
    assert not (secret / "new.txt").exists() and (secret / "key.txt").read_text() == "s3cr3t value"


def test_size_caps(root: Path) -> None:
    limits = ToolLimits(max_read_bytes=64, max_write_bytes=32, max_output_chars=1000)
    with pytest.raises(ToolError, match="over the 32-byte write limit"):
        run(root, "Write", limits, file_path="big.txt", content="x" * 33)
    (root / "big.txt").write_text("y\n" * 100)
    shown = run(root, "Read", limits, file_path="big.txt")
    assert shown.count("\ty") == 32 and "longer than 64 bytes" in shown
    with pytest.raises(ToolError, match="over the 64-byte read limit: not edited"):
        run(root, "Edit", limits, file_path="big.txt", old_string="y", new_string="z",
            replace_all=True)  # fmt: skip
    many = ToolLimits(max_results=2)
    for index in range(5):
        (root / f"f{index}.log").write_text("")
    assert run(root, "Glob", many, pattern="*.log").endswith("[3 more files not shown]")


def test_bash_is_off_by_default_and_on_only_when_enabled() -> None:
    registry = ToolRegistry()
    assert "Bash" not in registry.names() and registry.get("Bash") is None
    selection = registry.select(["Read", "Bash"])
    assert selection.names == ("Read",) and selection.disabled == ("Bash",)
    enabled = ToolRegistry(ToolLimits(bash=True))
    assert enabled.select(["Read", "Bash"]).names == ("Read", "Bash")
    with pytest.raises(ConfigurationError, match="did you mean 'Grep'"):
        registry.select(["Grepp"])


def test_bash_runs_in_the_workspace_with_no_keys(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-should-not-leak")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-should-not-leak")
    context = ToolContext(workspace=Workspace(root), limits=ToolLimits(bash=True))
    out = BUILTIN_TOOLS["Bash"].run({"command": "pwd; env; echo made > made.txt"}, context)
    lines = out.splitlines()
    assert lines[0] == str(root)
    assert "should-not-leak" not in out and f"HOME={root}" in lines
    assert context.changes.paths == ("made.txt",)
    kept = {"HOME", *KEPT_VARIABLES}
    assert set(command_environment(root)) <= kept and "ANTHROPIC_API_KEY" not in kept
    with pytest.raises(ToolError, match="exit code 3\nboom"):
        BUILTIN_TOOLS["Bash"].run({"command": "echo boom >&2; exit 3"}, context)


def test_bash_times_out_kills_the_group_and_caps_its_output(root: Path) -> None:
    limits = ToolLimits(bash=True, bash_timeout=0.3, max_output_chars=500)
    context = ToolContext(workspace=Workspace(root), limits=limits)
    with pytest.raises(ToolError, match=r"timed out after 0.3 s") as info:
        BUILTIN_TOOLS["Bash"].run({"command": "sleep 30 & echo $! > child.pid; wait"}, context)
    assert "killed" in str(info.value)
    child = int((root / "child.pid").read_text())
    status = Path(f"/proc/{child}/status")
    assert not status.exists() or "zombie" in status.read_text()  # killed with its shell
    out = BUILTIN_TOOLS["Bash"].run({"command": "yes | head -c 100000"}, context)
    assert len(out) <= 500 and "more characters cut" in out
