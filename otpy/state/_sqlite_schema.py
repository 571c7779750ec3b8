"""The SQLite file layout of ``SQLiteState``: schema, versioning, rows <-> records."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Final

from otpy.errors import StateError
from otpy.state._variable import Variable, freeze

__all__ = [
    "COLUMNS",
    "SCHEMA_VERSION",
    "dumps",
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
    "variables": [
        "session_id",
        "id",
        "name",
        "type",
        "value",
        "constraints",
        "metadata",
        "description",
        "version",
        "created_at",
        "updated_at",
        "seq",
    ],
}
COLUMNS: Final = (
    "id, name, type, value, constraints, metadata, description, version, created_at, updated_at"
)
"""The columns ``record_from_row`` reads, in its order."""

dumps = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode
"""Values, constraints and metadata are stored as compact JSON text."""


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
