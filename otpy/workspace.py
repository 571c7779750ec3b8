"""Paths a pipeline names, confined to a directory: its workspace or its output directory.

A pipeline's files (``file`` prompt parts, ``file_ops``, ``codebase_query``) live under its
workspace (pipeline_ex's ``workspace_dir``, default ``./workspace``) and the files it writes
(``output_to_file``) under its output directory (default ``./outputs``), both relative to
where the pipeline runs. :func:`confine` turns a path a user wrote into an absolute path
inside such a root, or refuses it::

    ws = Workspace("./workspace")
    ws.path("notes/todo.md")          # /abs/workspace/notes/todo.md
    ws.path("../secrets")             # OutsideWorkspaceError: '..' leads out of it
    ws.path("/etc/passwd")            # OutsideWorkspaceError: an absolute path outside it
    ws.read_text("link_to_etc")       # OutsideWorkspaceError: a symlink leads out to /etc
    ws.read_text("big.log")           # ConfigurationError beyond the size cap

Every check resolves symlinks of the parts that exist, so a link inside the root that
points out of it is refused like ``..``; a file is then opened by its resolved path
without following a last-moment symlink (``O_NOFOLLOW``). Plain functions and a small
immutable class: thread-safe, no state.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Final

from otpy.errors import ConfigurationError, OutsideWorkspaceError

__all__ = [
    "DEFAULT_CHECKPOINT_DIR",
    "DEFAULT_OUTPUT_DIR",
    "DEFAULT_WORKSPACE_DIR",
    "MAX_READ_BYTES",
    "Workspace",
    "confine",
    "resolve_dir",
]

DEFAULT_WORKSPACE_DIR: Final = "./workspace"
"""pipeline_ex's default workspace, relative to where the pipeline runs."""
DEFAULT_OUTPUT_DIR: Final = "./outputs"
"""pipeline_ex's default output directory (``defaults.output_dir``)."""
DEFAULT_CHECKPOINT_DIR: Final = "./checkpoints"
"""pipeline_ex's default checkpoint directory."""
MAX_READ_BYTES: Final = 1_000_000
"""How much of a file :meth:`Workspace.read_text` reads at most (1 MB)."""


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def resolve_dir(directory: str | os.PathLike[str], base: str | os.PathLike[str] | None) -> Path:
    """``directory`` as an absolute, resolved path: relative to ``base`` (default: the
    current directory) unless absolute. Nothing is created."""
    path = Path(directory)
    if not path.is_absolute():
        path = Path(base if base is not None else os.getcwd()) / path
    return path.resolve()


def confine(
    root: str | os.PathLike[str], path: str | os.PathLike[str], *, what: str = "path"
) -> Path:
    """The absolute, resolved path of ``path`` (relative to ``root`` unless absolute) if
    it lies inside ``root``; OutsideWorkspaceError naming ``what``, the path, the root and
    why (an absolute path outside it, ``..`` leading out, a symlink leading out) otherwise;
    ConfigurationError for an empty path or one holding a NUL byte."""
    text = os.fspath(path)
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"{what}: the path is empty")
    if "\x00" in text:
        raise ConfigurationError(f"{what} {text!r}: a path cannot hold a NUL byte")
    base = Path(root).resolve()
    given = Path(text)
    candidate = given if given.is_absolute() else base / given
    resolved = candidate.resolve()
    if _inside(resolved, base):
        return resolved
    if given.is_absolute() and not _inside(Path(os.path.normpath(given)), base):
        why = "an absolute path outside it"
    elif not _inside(Path(os.path.normpath(candidate)), base):
        why = "'..' leads out of it"
    else:
        why = f"a symlink leads out of it to {resolved}"
    raise OutsideWorkspaceError(
        f"{what} {text!r} is outside {base} ({why}); paths are confined to that directory",
        path=text,
        root=str(base),
        what=what,
    )


class Workspace:
    """A directory that confines the paths a pipeline names (see :func:`confine`).

    ``root`` is resolved once (relative to ``base``, default: the current directory);
    nothing is created until :meth:`ensure` or a write. Thread-safe (immutable).
    """

    __slots__ = ("root",)

    def __init__(
        self, root: str | os.PathLike[str], *, base: str | os.PathLike[str] | None = None
    ) -> None:
        self.root = resolve_dir(root, base)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    def ensure(self) -> Path:
        """Create the root (and its parents) if missing; returns it."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

    def path(self, path: str | os.PathLike[str], *, what: str = "path") -> Path:
        """``path`` confined to the root (see :func:`confine`)."""
        return confine(self.root, path, what=what)

    def relative(self, path: Path) -> str:
        """``path`` (inside the root) as a POSIX path relative to it."""
        return path.relative_to(self.root).as_posix() if path != self.root else "."

    def read_text(
        self,
        path: str | os.PathLike[str],
        *,
        what: str = "file",
        max_bytes: int = MAX_READ_BYTES,
    ) -> str:
        """The UTF-8 text of ``path`` (confined), read without following a symlink swapped
        in after the check. ConfigurationError when it is missing, a directory, larger
        than ``max_bytes``, not UTF-8 or unreadable; OutsideWorkspaceError when outside."""
        target = self.path(path, what=what)
        shown = f"{what} {os.fspath(path)!r}"
        if not target.exists():
            raise ConfigurationError(f"{shown} does not exist in {self.root}")
        if target.is_dir():
            raise ConfigurationError(f"{shown} is a directory, not a file ({target})")
        try:
            fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as file:
                data = file.read(max_bytes + 1)
        except OSError as exc:
            raise ConfigurationError(f"cannot read {shown}: {exc.strerror or exc}") from None
        if len(data) > max_bytes:
            raise ConfigurationError(
                f"{shown} is larger than the {max_bytes:,}-byte limit for files a pipeline "
                "reads; split it or pass a part of it"
            )
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigurationError(
                f"{shown} is not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None

    def write_text(self, path: str | os.PathLike[str], text: str, *, what: str = "file") -> Path:
        """Write ``text`` (UTF-8) to ``path`` (confined), creating its directories;
        replaces the file atomically (a temporary file renamed over it). Returns the path."""
        target = self.path(path, what=what)
        if target == self.root or target.is_dir():
            raise ConfigurationError(f"{what} {os.fspath(path)!r} is a directory, not a file")
        target.parent.mkdir(parents=True, exist_ok=True)
        confine(self.root, target.parent, what=what)  # a directory made through a link
        temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, target)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise ConfigurationError(
                f"cannot write {what} {os.fspath(path)!r}: {exc.strerror or exc}"
            ) from None
        return target
