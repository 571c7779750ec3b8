"""otpy.workspace: paths stay inside their workspace (an absolute path outside it, ``..``
climbing out and symbolic links leading out are refused; links inside are resolved)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from otpy.errors import ConfigurationError, OutsideWorkspaceError
from otpy.workspace import Workspace, confine


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    return Workspace(root)


def test_relative_and_absolute_paths_inside(ws: Workspace, tmp_path: Path) -> None:
    assert ws.path("src/app.py") == ws.root / "src" / "app.py"
    assert ws.path("./src//app.py") == ws.root / "src" / "app.py"
    assert ws.path("src/../src/app.py") == ws.root / "src" / "app.py"  # '..' staying inside
    assert ws.path(str(ws.root / "src")) == ws.root / "src"
    assert ws.path("new/not/yet.txt") == ws.root / "new" / "not" / "yet.txt"
    assert ws.path(".") == ws.root
    assert ws.relative(ws.path("src/app.py")) == "src/app.py"
    assert ws.relative(ws.root) == "."
    assert confine(ws.root, "src") == ws.root / "src"
    assert Workspace("ws", base=tmp_path) == ws and not (tmp_path / "made").exists()
    assert Workspace(tmp_path / "made").ensure().is_dir()


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../../etc/passwd", "'..' leads out of it"),
        ("src/../../x", "'..' leads out of it"),
        ("/etc/passwd", "an absolute path outside it"),
    ],
)
def test_escapes_are_refused(ws: Workspace, path: str, why: str) -> None:
    with pytest.raises(OutsideWorkspaceError, match=why) as info:
        ws.path(path, what="file_path")
    error = info.value
    assert (error.path, error.root, error.what) == (path, str(ws.root), "file_path")
    assert str(error).startswith(f"file_path {path!r} is outside {ws.root}")
    assert not ws.contains(path)


@pytest.mark.parametrize("path", ["", "  ", "a\x00b"])
def test_unusable_paths(ws: Workspace, path: str) -> None:
    with pytest.raises(ConfigurationError):
        ws.path(path)


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
        with pytest.raises(OutsideWorkspaceError, match="a symlink leads out of it"):
            ws.path(path)
    assert ws.path("alias/app.py") == ws.root / "src" / "app.py"


def test_a_workspace_given_through_a_link(ws: Workspace, tmp_path: Path) -> None:
    os.symlink(ws.root, tmp_path / "link-to-ws")
    linked = Workspace(tmp_path / "link-to-ws")
    assert linked.root == ws.root
    assert linked.path(str(tmp_path / "link-to-ws" / "src")) == ws.root / "src"
