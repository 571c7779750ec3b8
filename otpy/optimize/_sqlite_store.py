"""``SQLiteJobStore``: jobs, their checkpoints and leases in one SQLite file.

Tables (schema version 1, ``otpy_jobs_meta``)::

    otpy_jobs         job_id PK, state, elapsed, error, updated_at,
                      lease_id, lease_owner (JSON), lease_expires, epoch
    otpy_job_specs    job_id PK, spec (JSON; apart: the row every write updates stays small)
    otpy_job_rounds   (job_id, round) PK, candidates (JSON)
    otpy_job_trials   (job_id, idx) PK, trial (JSON)
    otpy_job_results  (job_id, name) PK, result (text: a DSPy job's saved program)

Every write is one ``BEGIN IMMEDIATE`` transaction (SQLite's single writer lock, taken at
its start), so a claim's read and update, or a fenced write's lease check and inserts,
cannot interleave with another process's. One connection per store object, guarded by a
lock; WAL journal, ``synchronous=NORMAL`` (a committed write survives a killed process).
A file written by an earlier otpy (one state session per job) is imported on open.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import JobError, LeaseLostError, StateError
from otpy.optimize._job import JobSpec, JobState
from otpy.optimize._legacy_store import import_legacy
from otpy.optimize._owner import Owner
from otpy.optimize._store import (
    Checkpoint,
    CheckpointBatch,
    Holder,
    JobStore,
    Lease,
    claim_refusal,
)
from otpy.optimize._trials import Trial

__all__ = ["SQLiteJobStore"]

SCHEMA_VERSION: Final = 1
_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS otpy_jobs_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS otpy_jobs (
        job_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        elapsed REAL NOT NULL,
        error TEXT,
        updated_at REAL NOT NULL,
        lease_id TEXT,
        lease_owner TEXT,
        lease_expires REAL,
        epoch INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS otpy_jobs_by_lease ON otpy_jobs (lease_id)",
    # rows of JSON that may be long: rowid tables, their keys in an index of their own
    """CREATE TABLE IF NOT EXISTS otpy_job_specs (
        job_id TEXT PRIMARY KEY, spec TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS otpy_job_rounds (
        job_id TEXT NOT NULL, round INTEGER NOT NULL, candidates TEXT NOT NULL,
        PRIMARY KEY (job_id, round))""",
    """CREATE TABLE IF NOT EXISTS otpy_job_trials (
        job_id TEXT NOT NULL, idx INTEGER NOT NULL, trial TEXT NOT NULL,
        PRIMARY KEY (job_id, idx))""",
    """CREATE TABLE IF NOT EXISTS otpy_job_results (
        job_id TEXT NOT NULL, name TEXT NOT NULL, result TEXT NOT NULL,
        PRIMARY KEY (job_id, name))""",
)
_SAVE: Final = (
    "UPDATE otpy_jobs SET state = ?, elapsed = ?, error = ?, updated_at = ?, "
    "lease_id = ?, lease_owner = ?, lease_expires = ? WHERE job_id = ?"
)
ELAPSED_STEP: Final = 1.0
"""Seconds of running after which a checkpoint also records the elapsed time: a job that
crashes loses at most this much of its ``max_seconds`` accounting."""
_dumps = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode


class SQLiteJobStore(JobStore):
    """The jobs of one SQLite file (``path``; ``":memory:"``: this object's only), written
    by ``owner``. ``timeout``: seconds a write waits for another connection's lock."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        owner: Owner | None = None,
        clock: Clock = SYSTEM_CLOCK,
        lease_seconds: float = 30.0,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(owner or Owner.current("otpy"), clock, lease_seconds)
        self._path = os.fspath(path)
        self._lock = threading.Lock()
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(
                self._path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise StateError(f"cannot open the job store {self._path!r}: {exc}") from exc
        self._conn: sqlite3.Connection | None = conn
        self._owner_json = _dumps(self.owner.to_dict())
        with self._transaction("open") as db:
            for statement in _SCHEMA:
                db.execute(statement)
            row = db.execute("SELECT value FROM otpy_jobs_meta WHERE key = 'schema'").fetchone()
            if row is None:
                db.execute("INSERT INTO otpy_jobs_meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif int(row[0]) > SCHEMA_VERSION:
                raise StateError(
                    f"the job store {self._path!r} has schema version {row[0]}, newer than "
                    f"this otpy's ({SCHEMA_VERSION}): upgrade otpy"
                )
            import_legacy(db, self.clock.time())

    @property
    def path(self) -> str:
        return self._path

    def __repr__(self) -> str:
        return f"SQLiteJobStore({self._path!r}, owner={self.owner.describe()!r})"

    @contextmanager
    def _transaction(self, what: str, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction (``BEGIN IMMEDIATE`` for a write); StateError for what failed."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StateError(f"the job store {self._path!r} is closed ({what})")
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.Error as exc:
                raise StateError(f"job store {self._path!r}: {what}: {exc}") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StateError(f"job store {self._path!r}: {what}: {exc}") from exc
                raise

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # -- claims ----------------------------------------------------------------------------

    def _lease(self, job_id: str, epoch: int) -> tuple[Lease, tuple[str, str, float]]:
        expires = self.clock.time() + self.lease_seconds
        owner = self.owner
        return Lease(job_id, owner, epoch, expires), (owner.id, self._owner_json, expires)

    def create(self, spec: JobSpec) -> Lease:
        lease, held = self._lease(spec.job_id, 1)
        text = spec.model_dump_json()
        with self._transaction(f"create job {spec.job_id!r}") as db:
            try:
                db.execute(
                    "INSERT INTO otpy_jobs VALUES (?, 'running', 0.0, NULL, ?, ?, ?, ?, 1)",
                    (spec.job_id, self.clock.time(), *held),
                )
                db.execute("INSERT INTO otpy_job_specs VALUES (?, ?)", (spec.job_id, text))
            except sqlite3.IntegrityError:
                raise JobError(
                    f"job {spec.job_id!r} already exists in {self._path}; resume it with "
                    "rt.jobs.resume(job_id) or choose another job_id"
                ) from None
        return lease

    def claim(self, job_id: str, *, force: bool = False) -> Lease:
        with self._transaction(f"claim job {job_id!r}") as db:
            row = db.execute(
                "SELECT state, lease_owner, lease_expires, epoch FROM otpy_jobs WHERE job_id = ?",
                (job_id,),
            ).fetchone()
            if row is None:
                raise JobError(f"no job {job_id!r} in {self._path}")
            state, holder = row[0], _holder(row[1], row[2], row[3])
            refusal = claim_refusal(job_id, state, holder, self.owner, self.clock.time())
            if refusal is not None and (not force or state in ("completed", "cancelled", "failed")):
                raise refusal
            lease, held = self._lease(job_id, holder.epoch + 1)
            db.execute(
                "UPDATE otpy_jobs SET updated_at = ?, lease_id = ?, "
                "lease_owner = ?, lease_expires = ?, epoch = ? WHERE job_id = ?",
                (self.clock.time(), *held, lease.epoch, job_id),
            )
        return lease

    # -- writes ----------------------------------------------------------------------------

    def _apply(self, db: sqlite3.Connection, lease: Lease, batch: CheckpointBatch) -> Lease | None:
        """Apply one fenced batch inside a transaction; None if the lease is lost. The
        job's row is rewritten (and the lease renewed) only when its state or error
        changes, the lease is released, or ``ELAPSED_STEP`` more seconds have run: a batch
        of trials alone is a read of the fence and inserts."""
        row = db.execute(
            "SELECT state, elapsed, error FROM otpy_jobs "
            "WHERE job_id = ? AND epoch = ? AND lease_id = ?",
            (lease.job_id, lease.epoch, lease.owner.id),
        ).fetchone()
        if row is None:
            return None
        renewed = lease
        if (
            batch.release
            or (row[0], row[2]) != (batch.state, batch.error)
            or batch.elapsed - float(row[1]) >= ELAPSED_STEP
        ):
            renewed, held = self._lease(lease.job_id, lease.epoch)
            if batch.release:
                held = (None, None, None)  # type: ignore[assignment]
            db.execute(
                _SAVE, (batch.state, batch.elapsed, batch.error, self.clock.time(), *held,
                        lease.job_id),
            )  # fmt: skip
        if batch.rounds:
            db.executemany(
                "INSERT INTO otpy_job_rounds VALUES (?, ?, ?)",
                [(lease.job_id, number, _dumps(items)) for number, items in batch.rounds],
            )
        if batch.trials:
            db.executemany(
                "INSERT INTO otpy_job_trials VALUES (?, ?, ?)",
                [(lease.job_id, trial.index, trial.model_dump_json()) for trial in batch.trials],
            )
        if batch.results:
            db.executemany(
                "INSERT OR REPLACE INTO otpy_job_results VALUES (?, ?, ?)",
                [(lease.job_id, name, text) for name, text in batch.results.items()],
            )
        return renewed

    def write(self, lease: Lease, batch: CheckpointBatch) -> Lease:
        with self._transaction(f"checkpoint job {lease.job_id!r}") as db:
            renewed = self._apply(db, lease, batch)
            if renewed is None:
                holder = self._read_holder(db, lease.job_id)
                raise _lost(lease, holder)
        return renewed

    def write_many(self, items: Sequence[tuple[Lease, CheckpointBatch]]) -> list[str]:
        lost: list[str] = []
        with self._transaction(f"checkpoint {len(items)} jobs") as db:
            for lease, batch in items:
                if self._apply(db, lease, batch) is None:
                    lost.append(lease.job_id)
        return lost

    def renew(self, leases: Sequence[Lease]) -> dict[str, Holder]:
        if not leases:
            return {}
        expires = self.clock.time() + self.lease_seconds
        lost: dict[str, Holder] = {}
        with self._transaction(f"renew {len(leases)} leases") as db:
            db.executemany(
                "UPDATE otpy_jobs SET lease_expires = ? "
                "WHERE job_id = ? AND epoch = ? AND lease_id = ?",
                [(expires, lease.job_id, lease.epoch, lease.owner.id) for lease in leases],
            )
            held = {
                (job_id, epoch)
                for job_id, epoch in db.execute(
                    "SELECT job_id, epoch FROM otpy_jobs WHERE lease_id = ?", (self.owner.id,)
                )
            }
            for lease in leases:
                if (lease.job_id, lease.epoch) not in held:
                    lost[lease.job_id] = self._read_holder(db, lease.job_id)
        return lost

    def _read_holder(self, db: sqlite3.Connection, job_id: str) -> Holder:
        row = db.execute(
            "SELECT lease_owner, lease_expires, epoch FROM otpy_jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
        return Holder(None) if row is None else _holder(*row)

    # -- reads -----------------------------------------------------------------------------

    def load(self, job_id: str, *, records: bool = True) -> Checkpoint:
        with self._transaction(f"load job {job_id!r}", write=False) as db:
            row = db.execute(
                "SELECT spec, state, elapsed, error, lease_owner, lease_expires, epoch "
                "FROM otpy_jobs JOIN otpy_job_specs USING (job_id) WHERE job_id = ?",
                (job_id,),
            ).fetchone()
            if row is None:
                known = ", ".join(self._ids(db)) or "none"
                raise JobError(f"no job {job_id!r} in {self._path} (jobs there: {known})")
            rounds, trials, results = [], [], []
            if records:
                results = db.execute(
                    "SELECT name, result FROM otpy_job_results WHERE job_id = ?", (job_id,)
                ).fetchall()
                rounds = db.execute(
                    "SELECT round, candidates FROM otpy_job_rounds WHERE job_id = ?", (job_id,)
                ).fetchall()
                trials = db.execute(
                    "SELECT trial FROM otpy_job_trials WHERE job_id = ? ORDER BY idx", (job_id,)
                ).fetchall()
        state: JobState = row[1]
        checkpoint = Checkpoint(
            JobSpec.model_validate_json(row[0]),
            state=state,
            elapsed=float(row[2]),
            error=row[3],
            holder=_holder(row[4], row[5], row[6]),
        )
        checkpoint.rounds = {int(number): json.loads(text) for number, text in rounds}
        checkpoint.results = {str(name): str(text) for name, text in results}
        for (text,) in trials:
            trial = Trial.model_validate_json(text)
            checkpoint.trials[trial.index] = trial
        return checkpoint

    def holds(self, job_id: str) -> bool:
        with self._transaction("look up a job", write=False) as db:
            found = db.execute("SELECT 1 FROM otpy_jobs WHERE job_id = ?", (job_id,)).fetchone()
        return found is not None

    def job_ids(self) -> list[str]:
        with self._transaction("list jobs", write=False) as db:
            return self._ids(db)

    @staticmethod
    def _ids(db: sqlite3.Connection) -> list[str]:
        return [job_id for (job_id,) in db.execute("SELECT job_id FROM otpy_jobs ORDER BY job_id")]


def _holder(owner: str | None, expires: float | None, epoch: int) -> Holder:
    """The lease of a row; an owner that cannot be read counts as released."""
    parsed: Owner | None = None
    if owner is not None:
        try:
            data: Any = json.loads(owner)
            parsed = Owner.from_dict(data)
        except (ValueError, KeyError, TypeError):
            parsed = None
    return Holder(parsed, int(epoch), None if parsed is None else expires)


def _lost(lease: Lease, holder: Holder) -> LeaseLostError:
    who = holder.describe()
    where = f"{who} holds it now" if who is not None else "its lease was released"
    return LeaseLostError(
        f"job {lease.job_id!r}: the lease of {lease.owner.describe()} (epoch {lease.epoch}) "
        f"was taken over; {where}: nothing was written",
        job_id=lease.job_id,
        owner=who,
    )
