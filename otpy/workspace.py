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

The check is made when the path is resolved: it guards against the paths a model asks for,
not against another process swapping directories for links at the same moment. Plain
functions and a small immutable class: thread-safe.
"""

from __future__ import annotations

import os
from pathlib import Path

from otpy.errors import ConfigurationError, OutsideWorkspaceError

__all__ = ["Workspace", "confine"]


def confine(
    root: str | os.PathLike[str], path: str | os.PathLike[str], *, what: str = "path"
) -> Path:
    """``path`` resolved inside ``root`` (see :meth:`Workspace.path`)."""
    return Workspace(root).path(path, what=what)


class Workspace:
    """A root directory (resolved once, relative to ``base`` — default: the current
    directory — unless absolute; nothing is created until :meth:`ensure`) and the paths
    inside it. Immutable and thread-safe; :meth:`path` touches the file system only to
    resolve symbolic links."""

    __slots__ = ("_root", "root")

    def __init__(
        self, root: str | os.PathLike[str], *, base: str | os.PathLike[str] | None = None
    ) -> None:
        given = os.fspath(root)
        if not os.path.isabs(given):
            given = os.path.join(os.fspath(base) if base is not None else os.getcwd(), given)
        self._root = os.path.realpath(given)
        self.root = Path(self._root)

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

    def _inside(self, real: str) -> bool:
        return real == self._root or real.startswith(self._root.rstrip(os.sep) + os.sep)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    def __repr__(self) -> str:
        return f"Workspace({self._root!r})"
