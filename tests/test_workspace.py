"""otpy.workspace: paths stay inside their workspace (``..``, absolute paths outside and
symbolic links leading out are refused; links inside are resolved)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from otpy.errors import WorkspaceError
from otpy.workspace import Workspace, resolve_inside


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    return Workspace(root)


def test_relative_and_absolute_paths_inside(ws: Workspace) -> None:
    assert ws.resolve("src/app.py") == ws.root / "src" / "app.py"
    assert ws.resolve("./src//app.py") == ws.root / "src" / "app.py"
    assert ws.resolve(str(ws.root / "src")) == ws.root / "src"
    assert ws.resolve("new/not/yet.txt") == ws.root / "new" / "not" / "yet.txt"
    assert ws.resolve(".") == ws.root
    assert ws.relative(ws.resolve("src/app.py")) == "src/app.py"
    assert ws.relative(ws.root) == "."
    assert resolve_inside(ws.root, "src") == ws.root / "src"


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../../etc/passwd", "'..' part"),
        ("src/../app.py", "'..' part"),
        ("/etc/passwd", "absolute path outside"),
        ("", "not a usable path"),
        ("a\x00b", "not a usable path"),
    ],
)
def test_escapes_are_refused(ws: Workspace, path: str, why: str) -> None:
    with pytest.raises(WorkspaceError, match=why) as info:
        ws.resolve(path)
    assert info.value.path == path and info.value.root == str(ws.root)
    assert not ws.contains(path)


def test_symlinks_leading_out_are_refused_and_those_inside_resolved(
    ws: Workspace, tmp_path: Path
) -> None:
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key.txt").write_text("s3cr3t")
    os.symlink(outside, ws.root / "planted")  # a folder link leading out
    os.symlink(outside / "key.txt", ws.root / "key-link")  # a file link leading out
    os.symlink(tmp_path / "nowhere" / "new.txt", ws.root / "dangling")  # would write outside
    os.symlink(ws.root / "src", ws.root / "alias")  # a link inside
    for path in ("planted/key.txt", "planted", "key-link", "dangling", "planted/new.txt"):
        with pytest.raises(WorkspaceError, match="through a symbolic link"):
            ws.resolve(path)
    assert ws.resolve("alias/app.py") == ws.root / "src" / "app.py"


def test_a_workspace_given_through_a_link(ws: Workspace, tmp_path: Path) -> None:
    os.symlink(ws.root, tmp_path / "link-to-ws")
    linked = Workspace(tmp_path / "link-to-ws")
    assert linked.root == ws.root
    assert linked.resolve(str(tmp_path / "link-to-ws" / "src")) == ws.root / "src"
