"""Where call journals are kept: the :class:`JournalStore` behaviour, in memory and in SQLite.

A store holds journals by id (a job id); a journal is a set of entries, each the answer to
one LLM request: the request's ``digest`` (a hex hash of its content, never the content),
its ``occurrence`` (the n-th answer to that digest) and the ``answer`` (JSON text). The
behaviour is small and backend-neutral (load, append, drop, list) so that a Redis or Ray
store can follow; ``append`` returns only once the entry is durable. The SQLite store is
``otpy.calls._sqlite_store``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from otpy.errors import StateError

__all__ = ["JournalEntry", "JournalStore", "MemoryJournalStore", "journal_path", "taken"]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journaled answer: the request's ``digest`` (hex), its ``occurrence`` and the
    ``answer`` as JSON text."""

    digest: str
    occurrence: int
    answer: str


@runtime_checkable
class JournalStore(Protocol):
    """Journals by id. Every method is safe from any thread and may block on I/O."""

    def load(self, journal_id: str) -> list[JournalEntry]:
        """Every entry of ``journal_id`` (empty if there is none), in no set order."""
        ...

    def append(self, journal_id: str, entry: JournalEntry) -> None:
        """Add ``entry``; durable when this returns (it survives the process being
        killed). StateError if that (digest, occurrence) is already there."""
        ...

    def drop(self, journal_id: str) -> None:
        """Forget ``journal_id`` (nothing if there is none)."""
        ...

    def journal_ids(self) -> list[str]:
        """The ids of the journals held, sorted."""
        ...

    def close(self) -> None:
        """Release the store; it is not used again."""
        ...


class MemoryJournalStore:
    """Journals in this process's memory (tests, and runs that need no resume)."""

    def __init__(self) -> None:
        self._journals: dict[str, dict[tuple[str, int], JournalEntry]] = {}
        self._lock = threading.Lock()

    def load(self, journal_id: str) -> list[JournalEntry]:
        with self._lock:
            return list(self._journals.get(journal_id, {}).values())

    def append(self, journal_id: str, entry: JournalEntry) -> None:
        key = (entry.digest, entry.occurrence)
        with self._lock:
            entries = self._journals.setdefault(journal_id, {})
            if key in entries:
                raise StateError(taken(journal_id, entry))
            entries[key] = entry

    def drop(self, journal_id: str) -> None:
        with self._lock:
            self._journals.pop(journal_id, None)

    def journal_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._journals)

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"MemoryJournalStore({len(self._journals)} journals)"


def journal_path(store_path: str | os.PathLike[str]) -> str:
    """Where a job store's call journals go: ``<store>.journal`` beside ``store_path``
    (``":memory:"`` stays so), a file of its own so that journal writes and checkpoint
    writes never wait for each other."""
    path = os.fspath(store_path)
    return path if path == ":memory:" else f"{path}.journal"


def taken(journal_id: str, entry: JournalEntry) -> str:
    """Why ``entry`` cannot be added: its occurrence is there already."""
    return (
        f"call journal {journal_id!r} already holds occurrence {entry.occurrence} of "
        f"request {entry.digest[:12]}"
    )
