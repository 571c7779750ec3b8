"""``SQLiteState``: a session's variables in a SQLite file that survives the process."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Final

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import ConfigurationError, StateError, VariableExistsError, VariableNotFound
from otpy.state._export import build_export, parse_export
from otpy.state._provider import StateProvider
from otpy.state._records import (
    changes_between,
    check_identifier,
    check_metadata,
    check_session_id,
    closed_error,
    new_record,
    next_version,
    plan_batch,
)
from otpy.state._sqlite_schema import (
    COLUMNS,
    dumps,
    ensure_schema,
    read_sessions,
    record_from_row,
    row_of,
)
from otpy.state._subscriptions import ChangeCallback, Subscriptions
from otpy.state._types import is_valid_name
from otpy.state._variable import Variable, VariableChange

__all__ = ["SQLiteState"]

_SYNCHRONOUS: Final = ("OFF", "NORMAL", "FULL", "EXTRA")
_MEMORY: Final = (":memory:", "")
_INSERT: Final = (
    f"INSERT INTO variables (session_id, {COLUMNS}, seq) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
    "(SELECT COALESCE(MAX(seq), 0) + 1 FROM variables WHERE session_id = ?1))"
)
_UPDATE: Final = (
    "UPDATE variables SET value = ?, metadata = ?, version = ?, updated_at = ? "
    "WHERE session_id = ? AND id = ? AND version = ?"
)


class SQLiteState(StateProvider):
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
    def session_id(self) -> str:
        return self._session_id

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

    # -- reads -----------------------------------------------------------------------------

    def get_variable(self, name_or_id: str) -> Variable:
        with self._reading(snapshot=False) as conn:
            record = self._fetch(conn, check_identifier(name_or_id))
        if record is None:
            raise VariableNotFound(name_or_id, self._session_id)
        return record

    def get_variables(self, names_or_ids: Iterable[str]) -> dict[str, Variable]:
        if isinstance(names_or_ids, str):
            raise TypeError("get_variables takes a list of names or ids, not one str")
        found = {}
        with self._reading() as conn:
            for key in names_or_ids:
                record = self._fetch(conn, check_identifier(key))
                if record is not None:
                    found[key] = record
        return found

    def list_variables(self) -> list[Variable]:
        with self._reading() as conn:
            return self._all(conn)

    def export_state(self) -> dict[str, Any]:
        with self._reading() as conn:
            records = self._all(conn)
            metadata, created_at = self._session_row(conn)
        return build_export(
            session_id=self._session_id,
            records=records,
            backend=type(self).__name__,
            created_at=created_at,
            exported_at=self._clock.time(),
            session_metadata=metadata,
        )

    # -- writes ----------------------------------------------------------------------------

    def register_variable(
        self,
        name: str,
        type: str,
        value: Any,
        constraints: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> str:
        self._connection()
        record = new_record(
            name, type, value, constraints, metadata, description, self._clock.time()
        )
        with self._writing() as (conn, changes):
            if self._fetch(conn, record.name) is not None:
                raise VariableExistsError(record.name, self._session_id)
            conn.execute(_INSERT, row_of(self._session_id, record))
            changes.append(VariableChange.registered(record))
        return record.id

    def set_variable(
        self, name_or_id: str, value: Any, metadata: Mapping[str, Any] | None = None
    ) -> Variable:
        with self._writing() as (conn, changes):
            old = self._fetch(conn, check_identifier(name_or_id))
            if old is None:
                raise VariableNotFound(name_or_id, self._session_id)
            checked = check_metadata(metadata, f"variable {old.name!r}")
            new = next_version(old, value, checked, self._clock.time())
            self._update(conn, [(old, new)])
            changes.append(VariableChange.updated(old, new))
        return new

    def update_variables(
        self, updates: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Variable]:
        checked = check_metadata(metadata, "update_variables")
        with self._writing() as (conn, changes):
            current = self._fetch_many(conn, updates)
            plan = plan_batch(updates, current.get, checked, self._clock.time(), self._session_id)
            plan.raise_if_failed()
            self._update(conn, [(old, new) for _key, old, new in plan.planned])
            changes.extend(VariableChange.updated(old, new) for _key, old, new in plan.planned)
        return {key: new for key, _old, new in plan.planned}

    def delete_variable(self, name_or_id: str) -> None:
        with self._writing() as (conn, changes):
            old = self._fetch(conn, check_identifier(name_or_id))
            if old is None:
                raise VariableNotFound(name_or_id, self._session_id)
            conn.execute(
                "DELETE FROM variables WHERE session_id = ? AND id = ?", (self._session_id, old.id)
            )
            changes.append(VariableChange.deleted(old))

    def import_state(self, exported: Mapping[str, Any]) -> None:
        parsed = parse_export(exported)
        with self._writing() as (conn, changes):
            old = self._all(conn)
            conn.execute("DELETE FROM variables WHERE session_id = ?", (self._session_id,))
            conn.executemany(
                _INSERT, [row_of(self._session_id, record) for record in parsed.records]
            )
            metadata, _created_at = self._session_row(conn)
            metadata["imported_from"] = parsed.session_id
            conn.execute(
                "UPDATE sessions SET metadata = ? WHERE session_id = ?",
                (dumps(metadata), self._session_id),
            )
            changes.extend(changes_between(old, parsed.records))

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe(self, pattern: str, callback: ChangeCallback) -> str:
        self._connection()
        return self._subscriptions.subscribe(pattern, callback)

    def unsubscribe(self, subscription_id: str) -> bool:
        self._connection()
        return self._subscriptions.unsubscribe(subscription_id)

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

    @contextmanager
    def _reading(self, snapshot: bool = True) -> Iterator[sqlite3.Connection]:
        """The connection under the lock; with ``snapshot``, in one read transaction (so
        several statements see one consistent state of the file)."""
        with self._lock:
            conn = self._connection()
            try:
                if not snapshot:
                    yield conn
                    return
                conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._failed(exc) from exc

    @contextmanager
    def _writing(self) -> Iterator[tuple[sqlite3.Connection, list[VariableChange]]]:
        """One write transaction; yields the connection and the list the body adds its
        changes to.

        Commits when the body returns, rolls back if it raises. The changes are queued
        for the subscribers inside the lock and delivered after it is released.
        """
        changes: list[VariableChange] = []
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn, changes
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
            except sqlite3.Error as exc:
                raise self._failed(exc) from exc
            if self._subscriptions:
                self._subscriptions.enqueue(changes)
        self._subscriptions.dispatch()

    def _fetch(self, conn: sqlite3.Connection, key: str) -> Variable | None:
        column = "name" if is_valid_name(key) else "id"
        row = conn.execute(
            f"SELECT {COLUMNS} FROM variables WHERE session_id = ? AND {column} = ?",
            (self._session_id, key),
        ).fetchone()
        return None if row is None else record_from_row(row, self._path)

    def _fetch_many(self, conn: sqlite3.Connection, keys: Iterable[str]) -> dict[str, Variable]:
        """The variables of ``keys`` (names or ids) that exist, by id and by name, in a few
        queries (one per 500 keys of each kind)."""
        by_column: dict[str, list[str]] = {"name": [], "id": []}
        for key in keys:
            by_column["name" if is_valid_name(check_identifier(key)) else "id"].append(key)
        found: dict[str, Variable] = {}
        for column, wanted in by_column.items():
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = conn.execute(
                    f"SELECT {COLUMNS} FROM variables WHERE session_id = ? "
                    f"AND {column} IN ({', '.join('?' * len(chunk))})",
                    (self._session_id, *chunk),
                )
                for row in rows:
                    record = record_from_row(row, self._path)
                    found[record.id] = found[record.name] = record
        return found

    def _all(self, conn: sqlite3.Connection) -> list[Variable]:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM variables WHERE session_id = ? ORDER BY seq",
            (self._session_id,),
        )
        return [record_from_row(row, self._path) for row in rows]

    def _session_row(self, conn: sqlite3.Connection) -> tuple[dict[str, Any], float]:
        row = conn.execute(
            "SELECT metadata, created_at FROM sessions WHERE session_id = ?", (self._session_id,)
        ).fetchone()
        if row is None:
            return {}, self._clock.time()
        return dict(json.loads(row[0])), float(row[1])

    def _update(self, conn: sqlite3.Connection, pairs: list[tuple[Variable, Variable]]) -> None:
        cursor = conn.executemany(
            _UPDATE,
            [
                (
                    dumps(new.value),
                    dumps(new.metadata),
                    new.version,
                    new.updated_at,
                    self._session_id,
                    new.id,
                    old.version,
                )
                for old, new in pairs
            ],
        )
        if cursor.rowcount != len(pairs):  # cannot happen inside BEGIN IMMEDIATE
            raise StateError(f"SQLite state store {self._path!r}: a row changed under a write")


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is open; a failing rollback never hides the first error."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass
