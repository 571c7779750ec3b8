"""Keeping paths inside a workspace directory: the one confinement rule of otpy.

A path given by a user or a model is *relative to the workspace root*; it is refused with
:class:`~otpy.errors.WorkspaceError` when it has a ``..`` part, when it is absolute and
outside the root, or when it resolves (through symbolic links) to a place outside the
root. An accepted path is returned resolved, so the caller works on the real file and
never follows a link out::

    ws = Workspace("/srv/run-42")
    ws.resolve("src/app.py")        # /srv/run-42/src/app.py
    ws.resolve("/srv/run-42/a.txt") # absolute inside the root: accepted
    ws.resolve("../../etc/passwd")  # WorkspaceError
    ws.relative(ws.resolve("src"))  # "src"

The check is made when the path is resolved: it guards against the paths a model asks for,
not against another process swapping directories for links at the same moment.
"""

from __future__ import annotations

import os
from pathlib import Path

from otpy.errors import WorkspaceError

__all__ = ["Workspace", "resolve_inside"]


def resolve_inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """``path`` resolved inside ``root`` (see the module docstring); raises WorkspaceError
    saying why it is refused. ``root`` need not exist; ``path`` need not exist."""
    return Workspace(root).resolve(path)


class Workspace:
    """A workspace root (resolved once, at construction) and the paths inside it.

    Immutable and thread-safe; :meth:`resolve` touches the file system only to resolve
    symbolic links.
    """

    __slots__ = ("_prefixes", "given", "root")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.given = Path(root).absolute()
        self.root = Path(os.path.realpath(root))
        self._prefixes = (str(self.root), str(self.given))

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """The real path of ``path`` inside the root; WorkspaceError if it would leave it
        (or is empty, or holds a NUL byte)."""
        text = os.fspath(path)
        if not isinstance(text, str) or not text or "\x00" in text:
            raise self._refuse(str(text), "is not a usable path")
        if ".." in text.split(os.sep):
            raise self._refuse(text, "has a '..' part: paths stay inside the workspace")
        root = self._prefixes[0]
        if os.path.isabs(text):
            relative = self._inside(os.path.normpath(text))
            if relative is None:
                raise self._refuse(text, "is an absolute path outside the workspace")
        else:
            relative = text
        real = os.path.realpath(os.path.join(root, relative))
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise self._refuse(text, "leads outside the workspace through a symbolic link")
        return Path(real)

    def relative(self, path: str | os.PathLike[str]) -> str:
        """``path`` (resolved by :meth:`resolve`) as a POSIX path relative to the root
        (``"."`` for the root itself)."""
        text = os.fspath(path)
        inside = self._inside(text) if os.path.isabs(text) else None
        return (inside if inside is not None else text).replace(os.sep, "/")

    def contains(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` resolves inside the root (a resolve that does not raise)."""
        try:
            self.resolve(path)
        except WorkspaceError:
            return False
        return True

    def _inside(self, absolute: str) -> str | None:
        """``absolute`` relative to the root (as given or as resolved), or None."""
        for base in self._prefixes:
            if absolute == base:
                return "."
            if absolute.startswith(base.rstrip(os.sep) + os.sep):
                return absolute[len(base.rstrip(os.sep)) + 1 :]
        return None

    def _refuse(self, path: str, why: str) -> WorkspaceError:
        return WorkspaceError(f"{path!r} {why} ({self.root})", path=path, root=str(self.root))

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"
