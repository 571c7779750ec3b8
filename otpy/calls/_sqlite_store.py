"""``SQLiteJournalStore``: call journals in a SQLite table, written by group commit.

Many threads of a program record answers at once; each entry must be durable before its
``append`` returns, and a commit is what costs (a WAL write, waited for by every writer
behind it). So the writers take turns as the *leader*: one thread at a time writes every
entry pending at that moment in one transaction, while the others wait for their entry's
outcome; the next pending ones go in the next transaction. Alone, a writer commits its
own entry at once; under concurrency the commits per entry fall with the queue.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Final

from otpy.calls._store import JournalEntry, taken
from otpy.errors import ConfigurationError, StateError

__all__ = ["SQLiteJournalStore"]

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS call_journal ("
    " journal_id TEXT NOT NULL, digest BLOB NOT NULL, occurrence INTEGER NOT NULL,"
    " answer TEXT NOT NULL, PRIMARY KEY (journal_id, digest, occurrence)) WITHOUT ROWID"
)
_INSERT: Final = "INSERT INTO call_journal VALUES (?, ?, ?, ?)"
_SYNCHRONOUS: Final = ("NORMAL", "FULL", "EXTRA")

_Row = tuple[str, bytes, int, str]
_Pending = tuple[int, _Row, JournalEntry]


class SQLiteJournalStore:
    """Journals in the ``call_journal`` table of a SQLite file (WAL), which may be the job
    store's own file or one beside it (``journal_path``); ``":memory:"`` keeps them in
    this object only.

    ``append`` returns once its entry is committed (group commit: see the module
    docstring). With ``synchronous="NORMAL"`` (the default) a committed entry survives the
    process being killed; ``"FULL"`` also survives power loss, at the price of an fsync
    per commit. One connection, used by one thread at a time; ``timeout`` is how long a
    write waits for another connection's lock. Implements ``JournalStore``.
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
        self._turn = threading.Condition()
        self._writing = False  # a leader is writing a batch (outside the condition's lock)
        self._pending: list[_Pending] = []
        self._outcomes: dict[int, StateError | None] = {}
        self._tickets = 0
        self.commits = 0
        """Transactions written by ``append`` (fewer than entries under concurrency)."""

    def append(self, journal_id: str, entry: JournalEntry) -> None:
        try:
            digest = bytes.fromhex(entry.digest)
        except ValueError:
            raise ConfigurationError(f"a digest is hex, got {entry.digest!r}") from None
        row = (journal_id, digest, entry.occurrence, entry.answer)
        with self._turn:
            ticket = self._tickets = self._tickets + 1
            self._pending.append((ticket, row, entry))
            while ticket not in self._outcomes:
                if self._writing:
                    self._turn.wait()
                    continue
                batch, self._pending = self._pending, []
                self._writing = True
                interrupted = StateError(f"call journal {self.path!r}: its writer was interrupted")
                outcomes: dict[int, StateError | None] = dict.fromkeys(
                    (ticket for ticket, _, _ in batch), interrupted
                )
                self._turn.release()
                try:
                    outcomes = self._write(batch)
                finally:  # every entry of the batch gets an outcome, even on a BaseException
                    self._turn.acquire()
                    self._writing = False
                    self._outcomes.update(outcomes)
                    self._turn.notify_all()
            error = self._outcomes.pop(ticket)
        if error is not None:
            raise error

    def _write(self, batch: list[_Pending]) -> dict[int, StateError | None]:
        """Commit ``batch`` in one transaction; if that fails, row by row, so that each
        entry gets its own outcome. Raises nothing but a BaseException."""
        try:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, [row for _, row, _ in batch])
                conn.execute("COMMIT")
                self.commits += 1
                return {ticket: None for ticket, _, _ in batch}
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            return {ticket: self._write_one(conn, row, e) for ticket, row, e in batch}
        except (StateError, sqlite3.Error) as exc:
            failed = exc if isinstance(exc, StateError) else self._failed(exc)
            return {ticket: failed for ticket, _, _ in batch}

    def _write_one(
        self, conn: sqlite3.Connection, row: _Row, entry: JournalEntry
    ) -> StateError | None:
        try:
            conn.execute(_INSERT, row)
        except sqlite3.IntegrityError:
            return StateError(taken(row[0], entry))
        except sqlite3.Error as exc:
            return self._failed(exc)
        self.commits += 1
        return None

    def load(self, journal_id: str) -> list[JournalEntry]:
        rows = self._read(
            "SELECT digest, occurrence, answer FROM call_journal WHERE journal_id = ?",
            (journal_id,),
        )
        return [JournalEntry(bytes(d).hex(), int(n), str(a)) for d, n, a in rows]

    def drop(self, journal_id: str) -> None:
        self._read("DELETE FROM call_journal WHERE journal_id = ?", (journal_id,))

    def journal_ids(self) -> list[str]:
        rows = self._read("SELECT DISTINCT journal_id FROM call_journal", ())
        return sorted(str(row[0]) for row in rows)

    def close(self) -> None:
        with self._turn:
            self._turn.wait_for(lambda: not self._writing)
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _read(self, sql: str, args: tuple[object, ...]) -> list[Any]:
        """``sql`` on the connection, between two leaders' batches."""
        with self._turn:
            self._turn.wait_for(lambda: not self._writing)
            try:
                return self._connection().execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._failed(exc) from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError(f"the call journal store {self.path!r} is closed")
        return self._conn

    def _failed(self, exc: sqlite3.Error) -> StateError:
        return StateError(f"call journal {self.path!r}: {exc}")

    def __repr__(self) -> str:
        return f"SQLiteJournalStore({self.path!r})"
