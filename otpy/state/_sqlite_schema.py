"""The SQLite file layout of ``SQLiteState``: schema, versioning, rows <-> records, and
the transaction on a session's rows."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from otpy.errors import StateError
from otpy.state._records import dumps
from otpy.state._store import Transaction
from otpy.state._types import is_valid_name
from otpy.state._variable import FIELDS, Variable, freeze

__all__ = [
    "COLUMNS",
    "SCHEMA_VERSION",
    "SQLiteTransaction",
    "ensure_schema",
    "read_sessions",
    "record_from_row",
    "row_of",
]

SCHEMA_VERSION: Final = 1
"""``PRAGMA user_version`` of the layout below; a file of a newer version is refused."""

_TABLES: Final = (
    """CREATE TABLE IF NOT EXISTS sessions (
        session_id TEXT PRIMARY KEY,
        metadata TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    # seq keeps registration order (rowids of a table without an INTEGER PRIMARY KEY may
    # change in a VACUUM).
    """CREATE TABLE IF NOT EXISTS variables (
        session_id TEXT NOT NULL,
        id TEXT NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        value TEXT NOT NULL,
        constraints TEXT NOT NULL,
        metadata TEXT NOT NULL,
        description TEXT NOT NULL,
        version INTEGER NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (session_id, id),
        UNIQUE (session_id, name)
    )""",
)
_INDEX: Final = "CREATE INDEX IF NOT EXISTS variables_in_order ON variables (session_id, seq)"
_EXPECTED: Final = {
    "sessions": ["session_id", "metadata", "created_at"],
    "variables": ["session_id", *FIELDS, "seq"],
}
COLUMNS: Final = ", ".join(FIELDS)
"""The columns ``record_from_row`` reads, in its order."""


def ensure_schema(conn: sqlite3.Connection, path: str) -> None:
    """Create the tables in a new file, or check an existing file's layout and version.

    Call inside a write transaction. Raises StateError for a file of a newer schema
    version or one whose tables are not otpy's.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StateError(
            f"SQLite state store {path!r} has schema version {version}, newer than this "
            f"otpy understands ({SCHEMA_VERSION}); upgrade otpy to open it"
        )
    if version < SCHEMA_VERSION:
        for statement in _TABLES:
            conn.execute(statement)
    for table, expected in _EXPECTED.items():
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        if columns != expected:
            raise StateError(
                f"{path!r} is not an otpy state store: its table {table!r} has columns "
                f"{columns}, expected {expected}"
            )
    if version < SCHEMA_VERSION:
        conn.execute(_INDEX)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def read_sessions(path: str) -> list[str]:
    """The session ids in a state file, oldest first; the file is opened read-only."""
    if not os.path.isfile(path):
        raise StateError(f"no SQLite state store at {path!r}")
    try:
        conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StateError(f"cannot open SQLite state store {path!r}: {exc}") from exc
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            return []
        if version > SCHEMA_VERSION:
            raise StateError(
                f"SQLite state store {path!r} has schema version {version}, newer than "
                f"this otpy understands ({SCHEMA_VERSION})"
            )
        rows = conn.execute("SELECT session_id FROM sessions ORDER BY created_at, session_id")
        return [row[0] for row in rows]
    except sqlite3.Error as exc:
        raise StateError(f"cannot read SQLite state store {path!r}: {exc}") from exc
    finally:
        conn.close()


@functools.lru_cache(maxsize=1024)
def _frozen(text: str) -> Any:
    """Parsed read-only JSON; shared between records (constraints and metadata repeat)."""
    return freeze(json.loads(text))


def record_from_row(row: tuple[Any, ...], path: str) -> Variable:
    """The Variable of a ``SELECT {COLUMNS}`` row; StateError if a JSON field is broken."""
    try:
        value, constraints, metadata = json.loads(row[3]), _frozen(row[4]), _frozen(row[5])
    except (TypeError, ValueError) as exc:
        raise StateError(
            f"SQLite state store {path!r}: variable {row[1]!r} has a broken stored field ({exc})"
        ) from exc
    return Variable(
        id=row[0],
        name=row[1],
        type=row[2],
        value=value,
        constraints=constraints,
        metadata=metadata,
        description=row[6],
        version=row[7],
        created_at=row[8],
        updated_at=row[9],
    )


def row_of(session_id: str, record: Variable) -> tuple[Any, ...]:
    """``(session_id, *record fields)`` in the order of the ``variables`` table (no seq)."""
    return (
        session_id,
        record.id,
        record.name,
        record.type,
        dumps(record.value),
        dumps(record.constraints),
        dumps(record.metadata),
        record.description,
        record.version,
        record.created_at,
        record.updated_at,
    )


_INSERT: Final = (
    f"INSERT INTO variables (session_id, {COLUMNS}, seq) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
    "(SELECT COALESCE(MAX(seq), 0) + 1 FROM variables WHERE session_id = ?1))"
)
_UPDATE: Final = (
    "UPDATE variables SET value = ?, metadata = ?, version = ?, updated_at = ? "
    "WHERE session_id = ? AND id = ? AND version = ?"
)


class SQLiteTransaction(Transaction):
    """A session's rows through a connection that is inside a transaction (the caller's
    ``BEGIN``/``COMMIT``); writes are executed at once and committed with it."""

    def __init__(self, conn: sqlite3.Connection, session_id: str, path: str, now: float) -> None:
        self._conn, self._session_id, self._path, self._now = conn, session_id, path, now

    def find(self, key: str) -> Variable | None:
        column = "name" if is_valid_name(key) else "id"
        row = self._conn.execute(
            f"SELECT {COLUMNS} FROM variables WHERE session_id = ? AND {column} = ?",
            (self._session_id, key),
        ).fetchone()
        return None if row is None else record_from_row(row, self._path)

    def find_many(self, keys: Sequence[str]) -> dict[str, Variable]:
        """In a few queries: one per 500 keys of each kind (names, ids)."""
        by_column: dict[str, list[str]] = {"name": [], "id": []}
        for key in keys:
            by_column["name" if is_valid_name(key) else "id"].append(key)
        found: dict[str, Variable] = {}
        for column, wanted in by_column.items():
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = self._conn.execute(
                    f"SELECT {COLUMNS} FROM variables WHERE session_id = ? "
                    f"AND {column} IN ({', '.join('?' * len(chunk))})",
                    (self._session_id, *chunk),
                )
                for row in rows:
                    record = record_from_row(row, self._path)
                    found[record.id] = found[record.name] = record
        return found

    def all(self) -> list[Variable]:
        rows = self._conn.execute(
            f"SELECT {COLUMNS} FROM variables WHERE session_id = ? ORDER BY seq",
            (self._session_id,),
        )
        return [record_from_row(row, self._path) for row in rows]

    def session(self) -> tuple[dict[str, Any], float]:
        row = self._conn.execute(
            "SELECT metadata, created_at FROM sessions WHERE session_id = ?", (self._session_id,)
        ).fetchone()
        if row is None:
            return {}, self._now
        return dict(json.loads(row[0])), float(row[1])

    def insert(self, record: Variable) -> None:
        self._conn.execute(_INSERT, row_of(self._session_id, record))

    def update(self, pairs: Sequence[tuple[Variable, Variable]]) -> None:
        cursor = self._conn.executemany(
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

    def delete(self, record: Variable) -> None:
        self._conn.execute(
            "DELETE FROM variables WHERE session_id = ? AND id = ?", (self._session_id, record.id)
        )

    def replace(self, records: Sequence[Variable], metadata: Mapping[str, Any]) -> None:
        self._conn.execute("DELETE FROM variables WHERE session_id = ?", (self._session_id,))
        self._conn.executemany(_INSERT, [row_of(self._session_id, record) for record in records])
        self._conn.execute(
            "UPDATE sessions SET metadata = ? WHERE session_id = ?",
            (dumps(dict(metadata)), self._session_id),
        )
