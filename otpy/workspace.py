"""Paths confined to a directory: the workspace an agent's tools (or a pipeline) work in.

A path given by a user or a model is relative to the root unless absolute; it is refused
with :class:`~otpy.errors.OutsideWorkspaceError` when it leads out of the root — an
absolute path outside it, ``..`` climbing out of it, or a symbolic link (anywhere along
the path) pointing out of it. An accepted path is returned resolved (every link followed
inside the root), so the caller works on the real file and never follows a link out::

    ws = Workspace("/srv/run-42")
    ws.path("src/app.py")           # /srv/run-42/src/app.py
    ws.path("/srv/run-42/a.txt")    # absolute inside the root: accepted
    ws.path("../../etc/passwd")     # OutsideWorkspaceError: '..' leads out of it
    ws.relative(ws.path("src"))     # "src"

A pipeline's files (``file`` prompt parts, ``file_ops``, ``codebase_query``) live under its
workspace (pipeline_ex's ``workspace_dir``, default ``./workspace``) and the files it writes
(``output_to_file``) under its output directory (default ``./outputs``), both relative to
where the pipeline runs (:func:`resolve_dir`). :meth:`Workspace.read_text` caps the size
it reads and opens the checked path without following a last-moment link
(``O_NOFOLLOW``); :meth:`Workspace.write_text` replaces a file atomically.

The check is made when the path is resolved: it guards against the paths a model asks for,
not against another process swapping directories for links at the same moment. Plain
functions and a small immutable class: thread-safe.
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
    "absolute_dir",
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


def resolve_dir(directory: str | os.PathLike[str], base: str | os.PathLike[str] | None) -> Path:
    """``directory`` as an absolute, resolved path: relative to ``base`` (default: the
    current directory) unless absolute. Nothing is created."""
    return Path(os.path.realpath(absolute_dir(directory, base)))


def absolute_dir(directory: str | os.PathLike[str], base: str | os.PathLike[str] | None) -> str:
    """``directory`` joined to ``base`` (default: the current directory) unless absolute;
    links not resolved (``os.path.realpath`` of it equals :func:`resolve_dir`'s)."""
    given = os.fspath(directory)
    if not os.path.isabs(given):
        given = os.path.join(os.fspath(base) if base is not None else os.getcwd(), given)
    return given


def confine(
    root: str | os.PathLike[str], path: str | os.PathLike[str], *, what: str = "path"
) -> Path:
    """``path`` resolved inside ``root`` (see :meth:`Workspace.path`)."""
    return Workspace(root).path(path, what=what)


class Workspace:
    """A root directory (relative to ``base`` — default: the current directory — unless
    absolute; its links resolved once, when it is first used: a run that never touches its
    workspace never reads the file system; nothing is created until :meth:`ensure`) and
    the paths inside it. Immutable and thread-safe; :meth:`path` touches the file system
    only to resolve symbolic links."""

    __slots__ = ("_given", "_real", "_text")

    def __init__(
        self, root: str | os.PathLike[str], *, base: str | os.PathLike[str] | None = None
    ) -> None:
        self._given = absolute_dir(root, base)
        self._real: Path | None = None
        self._text = ""

    @property
    def root(self) -> Path:
        """The root, absolute and resolved."""
        real = self._real
        if real is None:  # two threads may both resolve it: to the same path
            real = Path(os.path.realpath(self._given))
            self._text, self._real = str(real), real
        return real

    @property
    def _root(self) -> str:
        return self._text if self._real is not None else str(self.root)

    def path(self, path: str | os.PathLike[str], *, what: str = "path") -> Path:
        """The real path of ``path`` inside the root. Raises OutsideWorkspaceError (naming
        ``what``, the path, the root and why) when it leads out, ConfigurationError for an
        empty path or one holding a NUL byte."""
        text = os.fspath(path)
        if not isinstance(text, str) or not text.strip():
            raise ConfigurationError(f"{what}: the path is empty")
        if "\x00" in text:
            raise ConfigurationError(f"{what} {text!r}: a path cannot hold a NUL byte")
        candidate = text if os.path.isabs(text) else os.path.join(self._root, text)
        real = os.path.realpath(candidate)
        if self._inside(real):
            return Path(real)
        if os.path.isabs(text) and not self._inside(os.path.normpath(text)):
            why = "an absolute path outside it"
        elif not self._inside(os.path.normpath(candidate)):
            why = "'..' leads out of it"
        else:
            why = f"a symlink leads out of it to {real}"
        raise OutsideWorkspaceError(
            f"{what} {text!r} is outside {self._root} ({why}); paths are confined to that "
            "directory",
            path=text,
            root=self._root,
            what=what,
        )

    def relative(self, path: str | os.PathLike[str]) -> str:
        """``path`` (inside the root) as a POSIX path relative to it (``"."`` for the root)."""
        text = os.fspath(path)
        if text == self._root:
            return "."
        prefix = self._root.rstrip(os.sep) + os.sep
        inside = text[len(prefix) :] if text.startswith(prefix) else text
        return inside.replace(os.sep, "/")

    def contains(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` resolves inside the root."""
        try:
            self.path(path)
        except ConfigurationError:
            return False
        return True

    def ensure(self) -> Path:
        """Create the root (and its parents) if missing; returns it."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

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

    def _inside(self, real: str) -> bool:
        return real == self._root or real.startswith(self._root.rstrip(os.sep) + os.sep)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    def __repr__(self) -> str:
        return f"Workspace({self._root!r})"
