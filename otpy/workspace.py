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
from pathlib import Path, PurePath

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

    __slots__ = ("given", "root")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.given = Path(root).absolute()
        self.root = Path(os.path.realpath(root))

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """The real path of ``path`` inside the root; WorkspaceError if it would leave it
        (or is empty, or holds a NUL byte)."""
        text = os.fspath(path)
        if not isinstance(text, str) or not text or "\x00" in text:
            raise self._refuse(str(text), "is not a usable path")
        pure = PurePath(text)
        if ".." in pure.parts:
            raise self._refuse(text, "has a '..' part: paths stay inside the workspace")
        if pure.is_absolute():
            relative = self._inside(Path(os.path.normpath(text)))
            if relative is None:
                raise self._refuse(text, "is an absolute path outside the workspace")
        else:
            relative = Path(pure)
        real = Path(os.path.realpath(self.root / relative))
        if real != self.root and self.root not in real.parents:
            raise self._refuse(text, "leads outside the workspace through a symbolic link")
        return real

    def relative(self, path: str | os.PathLike[str]) -> str:
        """``path`` (resolved by :meth:`resolve`) as a POSIX path relative to the root
        (``"."`` for the root itself)."""
        real = Path(path)
        try:
            return real.relative_to(self.root).as_posix() or "."
        except ValueError:
            return real.as_posix()

    def contains(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` resolves inside the root (a resolve that does not raise)."""
        try:
            self.resolve(path)
        except WorkspaceError:
            return False
        return True

    def _inside(self, absolute: Path) -> Path | None:
        for base in (self.root, self.given):
            try:
                return absolute.relative_to(base)
            except ValueError:
                continue
        return None

    def _refuse(self, path: str, why: str) -> WorkspaceError:
        return WorkspaceError(f"{path!r} {why} ({self.root})", path=path, root=str(self.root))

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"
