"""Where call journals are kept: the :class:`JournalStore` behaviour, in memory and in SQLite.

A store holds journals by id (a job id); a journal is a set of entries, each the answer to
one LLM request: the request's ``digest`` (a hex hash of its content, never the content),
its ``occurrence`` (the n-th answer to that digest) and the ``answer`` (JSON text). The
behaviour is small and backend-neutral (load, append, drop, list) so that a Redis or Ray
store can follow; ``append`` returns only once the entry is durable.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

from otpy.errors import ConfigurationError, StateError

__all__ = [
    "JournalEntry",
    "JournalStore",
    "MemoryJournalStore",
    "SQLiteJournalStore",
    "journal_path",
]


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
                raise StateError(_taken(journal_id, entry))
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


_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS call_journal ("
    " journal_id TEXT NOT NULL, digest BLOB NOT NULL, occurrence INTEGER NOT NULL,"
    " answer TEXT NOT NULL, PRIMARY KEY (journal_id, digest, occurrence)) WITHOUT ROWID"
)
_SYNCHRONOUS: Final = ("NORMAL", "FULL", "EXTRA")


class SQLiteJournalStore:
    """Journals in the ``call_journal`` table of a SQLite file (WAL), which may be the job
    store's own file or one beside it (``journal_path``); ``":memory:"`` keeps them in
    this object only.

    Each ``append`` is one committed INSERT: with ``synchronous="NORMAL"`` (the default)
    an entry survives the process being killed once ``append`` returns; ``"FULL"`` also
    survives power loss, at the price of an fsync per call. One connection, guarded by a
    lock; ``timeout`` is how long a write waits for another connection's lock.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: str = "NORMAL", timeout: float = 30.0
    ) -> None:
        self.path = os.fspath(path)
        mode = str(synchronous).upper()
        if mode not in _SYNCHRONOUS:
            raise ConfigurationError(
                f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, got {synchronous!r}"
            )
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            conn = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {mode}")
            conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise StateError(f"cannot open the call journal store {self.path!r}: {exc}") from exc
        self._conn: sqlite3.Connection | None = conn

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError(f"the call journal store {self.path!r} is closed")
        return self._conn

    def load(self, journal_id: str) -> list[JournalEntry]:
        with self._lock:
            rows = self._run(
                "SELECT digest, occurrence, answer FROM call_journal WHERE journal_id = ?",
                (journal_id,),
            ).fetchall()
        return [JournalEntry(bytes(d).hex(), int(n), str(a)) for d, n, a in rows]

    def append(self, journal_id: str, entry: JournalEntry) -> None:
        try:
            digest = bytes.fromhex(entry.digest)
        except ValueError:
            raise ConfigurationError(f"a digest is hex, got {entry.digest!r}") from None
        row = (journal_id, digest, entry.occurrence, entry.answer)
        with self._lock:
            try:
                self._connection().execute("INSERT INTO call_journal VALUES (?, ?, ?, ?)", row)
            except sqlite3.IntegrityError:
                raise StateError(_taken(journal_id, entry)) from None
            except sqlite3.Error as exc:
                raise StateError(f"call journal {self.path!r}: {exc}") from exc

    def drop(self, journal_id: str) -> None:
        with self._lock:
            self._run("DELETE FROM call_journal WHERE journal_id = ?", (journal_id,))

    def journal_ids(self) -> list[str]:
        with self._lock:
            rows = self._run("SELECT DISTINCT journal_id FROM call_journal", ()).fetchall()
        return sorted(str(row[0]) for row in rows)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _run(self, sql: str, args: tuple[object, ...]) -> sqlite3.Cursor:
        try:
            return self._connection().execute(sql, args)
        except sqlite3.Error as exc:
            raise StateError(f"call journal {self.path!r}: {exc}") from exc

    def __repr__(self) -> str:
        return f"SQLiteJournalStore({self.path!r})"


def journal_path(store_path: str | os.PathLike[str]) -> str:
    """Where a job store's call journals go: ``<store>.journal`` beside ``store_path``
    (``":memory:"`` stays so), a file of its own so that journal writes and checkpoint
    writes never wait for each other."""
    path = os.fspath(store_path)
    return path if path == ":memory:" else f"{path}.journal"


def _taken(journal_id: str, entry: JournalEntry) -> str:
    return (
        f"call journal {journal_id!r} already holds occurrence {entry.occurrence} of "
        f"request {entry.digest[:12]}"
    )
