"""``SQLiteState``: a session's variables in a SQLite file that survives the process."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar, Final, TypeVar

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import ConfigurationError, StateError
from otpy.state._records import check_session_id, closed_error
from otpy.state._sqlite_schema import SQLiteTransaction, ensure_schema, read_sessions
from otpy.state._store import TransactionalState, WriteBody
from otpy.state._subscriptions import Subscriptions
from otpy.state._variable import VariableChange

__all__ = ["SQLiteState"]

T = TypeVar("T")

_SYNCHRONOUS: Final = ("OFF", "NORMAL", "FULL", "EXTRA")
_MEMORY: Final = (":memory:", "")


class SQLiteState(TransactionalState):
    """Variables in a SQLite file (WAL journal); one file may hold many sessions.

    ``path`` is a file path or ``":memory:"`` (private to this object, not persistent).
    ``timeout`` is how long a write waits for another connection's write lock (seconds),
    ``synchronous`` SQLite's setting: ``"NORMAL"`` (default) survives a killed process,
    ``"FULL"`` also survives power loss, at the price of an fsync per commit.

    Every write is one ``BEGIN IMMEDIATE`` transaction that reads the current rows, so
    versions stay right with other ``SQLiteState`` objects on the same file, in this
    process or another; a batch update is one transaction (all or nothing). One connection
    per object, guarded by a lock. Subscribers see the changes made through this object
    only (streaming is in-process). Capabilities: atomic updates, streaming, persistence
    (not for ``":memory:"``); no distribution.
    """

    requires_bridge: ClassVar[bool] = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        session_id: str | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        timeout: float = 30.0,
        synchronous: str = "NORMAL",
    ) -> None:
        self._path = os.fspath(path)
        if not isinstance(self._path, str):
            raise ConfigurationError(f"path must be a str or os.PathLike, got {path!r}")
        if str(synchronous).upper() not in _SYNCHRONOUS:
            raise ConfigurationError(
                f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, got {synchronous!r}"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise ConfigurationError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
        self._session_id = check_session_id(session_id)
        self._clock = clock
        self._timeout = float(timeout)
        self._synchronous = str(synchronous).upper()
        self._lock = threading.RLock()
        self._subscriptions = Subscriptions()
        self._conn: sqlite3.Connection | None = None
        self.init()

    def __repr__(self) -> str:
        state = "open" if self._conn is not None else "closed"
        return f"SQLiteState({self._path!r}, session_id={self._session_id!r}, {state})"

    @property
    def path(self) -> str:
        """The database file (or ``":memory:"``)."""
        return self._path

    # -- lifecycle -------------------------------------------------------------------------

    def init(self) -> None:
        with self._lock:
            if self._conn is not None:
                return
            try:
                conn = sqlite3.connect(
                    self._path,
                    timeout=self._timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
            except sqlite3.Error as exc:
                raise StateError(f"cannot open SQLite state store {self._path!r}: {exc}") from exc
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {self._synchronous}")
                conn.execute("BEGIN IMMEDIATE")
                ensure_schema(conn, self._path)
                conn.execute(
                    "INSERT OR IGNORE INTO sessions (session_id, metadata, created_at) "
                    "VALUES (?, '{}', ?)",
                    (self._session_id, self._clock.time()),
                )
                conn.execute("COMMIT")
            except (sqlite3.Error, StateError) as exc:
                _rollback(conn)
                conn.close()
                if isinstance(exc, StateError):
                    raise
                raise StateError(f"cannot open SQLite state store {self._path!r}: {exc}") from exc
            self._conn = conn

    def cleanup(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            self._subscriptions.clear()
            if conn is not None:
                conn.close()

    def capabilities(self) -> dict[str, bool]:
        self._connection()
        return {
            "atomic_updates": True,
            "streaming": True,
            "persistence": self._path not in _MEMORY,
            "distribution": False,
        }

    @staticmethod
    def list_sessions(path: str | os.PathLike[str]) -> list[str]:
        """The session ids stored in a state file, oldest first (opened read-only).

        StateError if there is no such file or it is not an otpy state store.
        """
        return read_sessions(os.fspath(path))

    # -- helpers ---------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            raise closed_error(self, self._session_id)
        return conn

    def _failed(self, exc: sqlite3.Error) -> StateError:
        hint = ""
        if "locked" in str(exc) or "busy" in str(exc):
            hint = f" (another connection held the write lock for more than {self._timeout:g} s)"
        return StateError(f"SQLite state store {self._path!r}: {exc}{hint}")

    def _check_open(self) -> None:
        self._connection()

    @contextmanager
    def _reading(self, snapshot: bool = True) -> Iterator[SQLiteTransaction]:
        """Under the lock; with ``snapshot``, in one read transaction (so several
        statements see one consistent state of the file)."""
        with self._lock:
            conn = self._connection()
            tx = SQLiteTransaction(conn, self._session_id, self._path, self._clock.time())
            try:
                if not snapshot:
                    yield tx
                    return
                conn.execute("BEGIN")
                try:
                    yield tx
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._failed(exc) from exc

    def _write(self, body: WriteBody[T]) -> T:
        """One ``BEGIN IMMEDIATE`` transaction: commits when ``body`` returns, rolls back
        if it raises. The changes are queued for the subscribers inside the lock and
        delivered after it is released."""
        changes: list[VariableChange] = []
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    tx = SQLiteTransaction(conn, self._session_id, self._path, self._clock.time())
                    result = body(tx, changes)
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
            except sqlite3.Error as exc:
                raise self._failed(exc) from exc
            if self._subscriptions:
                self._subscriptions.enqueue(changes)
        self._subscriptions.dispatch()
        return result


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is open; a failing rollback never hides the first error."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass
