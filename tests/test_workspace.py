"""otpy.workspace: paths confined to a directory (``..``, absolute paths, symlinks), reads
with a size cap, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from otpy.errors import ConfigurationError, OutsideWorkspaceError
from otpy.workspace import Workspace, confine, resolve_dir


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("hello", encoding="utf-8")
    return Workspace(root)


def test_relative_paths_resolve_inside(ws: Workspace) -> None:
    assert ws.path("sub/a.txt") == ws.root / "sub" / "a.txt"
    assert ws.path("sub/../sub/a.txt") == ws.root / "sub" / "a.txt"
    assert ws.path(".") == ws.root
    assert ws.path(str(ws.root / "sub")) == ws.root / "sub"  # absolute, but inside
    assert ws.read_text("sub/a.txt") == "hello"


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../outside.txt", "'..' leads out of it"),
        ("sub/../../x", "'..' leads out of it"),
        ("/etc/passwd", "an absolute path outside it"),
    ],
)
def test_paths_leading_out_are_refused(ws: Workspace, path: str, why: str) -> None:
    with pytest.raises(OutsideWorkspaceError) as info:
        ws.path(path, what="file prompt part")
    assert why in str(info.value) and "file prompt part" in str(info.value)
    assert info.value.path == path and info.value.root == str(ws.root)


def test_symlinks_leading_out_are_refused(ws: Workspace, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret", encoding="utf-8")
    (ws.root / "link.txt").symlink_to(secret)
    (ws.root / "dirlink").symlink_to(tmp_path)
    (ws.root / "inner.txt").symlink_to(ws.root / "sub" / "a.txt")
    for path in ("link.txt", "dirlink/secret.txt"):
        with pytest.raises(OutsideWorkspaceError, match="a symlink leads out"):
            ws.read_text(path)
        with pytest.raises(OutsideWorkspaceError):
            ws.write_text(path, "x")
    assert ws.read_text("inner.txt") == "hello"  # a link that stays inside is fine
    assert secret.read_text(encoding="utf-8") == "s3cret"


def test_reads_are_capped_and_explained(ws: Workspace) -> None:
    (ws.root / "big.txt").write_bytes(b"x" * 101)
    with pytest.raises(ConfigurationError, match="larger than the 100-byte limit"):
        ws.read_text("big.txt", max_bytes=100)
    with pytest.raises(ConfigurationError, match="does not exist"):
        ws.read_text("nope.txt")
    with pytest.raises(ConfigurationError, match="is a directory"):
        ws.read_text("sub")
    (ws.root / "bin.dat").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigurationError, match="not UTF-8"):
        ws.read_text("bin.dat")
    for bad in ("", "a\x00b"):
        with pytest.raises(ConfigurationError):
            ws.path(bad)


def test_writes_create_directories_atomically(ws: Workspace) -> None:
    target = ws.write_text("out/deep/r.json", '{"a": 1}')
    assert target == ws.root / "out" / "deep" / "r.json"
    assert target.read_text(encoding="utf-8") == '{"a": 1}'
    ws.write_text("out/deep/r.json", "second")
    assert target.read_text(encoding="utf-8") == "second"
    assert sorted(os.listdir(target.parent)) == ["r.json"]  # no temporary left behind
    with pytest.raises(ConfigurationError, match="is a directory"):
        ws.write_text("out", "x")


def test_resolve_dir_and_confine(tmp_path: Path) -> None:
    assert resolve_dir("ws", tmp_path) == (tmp_path / "ws").resolve()
    assert resolve_dir(tmp_path, "/elsewhere") == tmp_path.resolve()
    assert confine(tmp_path, "a/b") == (tmp_path / "a" / "b").resolve()
    assert Workspace("ws", base=tmp_path) == Workspace(tmp_path / "ws")
