"""Jobs stored by an earlier otpy, read into the job store's tables once.

That store kept one state session per job in the same file (``SQLiteState`` tables
``sessions`` and ``variables``): variables ``spec``, ``state`` (with its owner),
``round/<r>`` and ``trial/<i>``, values as JSON text. They are copied, with no lease (a
job left running reads as interrupted and can be resumed), the first time the file is
opened by this version; the old rows are left as they were.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from typing import Any

from otpy.optimize._job import JobSpec
from otpy.optimize._trials import Trial

__all__ = ["import_legacy"]


def import_legacy(db: sqlite3.Connection, now: float) -> int:
    """Copy the jobs of the old layout into the new tables (inside the caller's write
    transaction), once per file; how many were copied. A job that cannot be read is
    skipped (its old rows stay)."""
    done = db.execute("SELECT 1 FROM otpy_jobs_meta WHERE key = 'legacy_imported'").fetchone()
    if done is not None:
        return 0
    db.execute("INSERT INTO otpy_jobs_meta VALUES ('legacy_imported', ?)", (str(now),))
    has_old = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'variables'"
    ).fetchone()
    if has_old is None:
        return 0
    jobs: dict[str, dict[str, Any]] = defaultdict(dict)
    for session, name, value in db.execute(
        "SELECT session_id, name, value FROM variables WHERE name = 'spec' OR name = 'state' "
        "OR name LIKE 'round/%' OR name LIKE 'trial/%'"
    ):
        jobs[session][name] = value
    copied = 0
    for job_id, variables in jobs.items():
        try:
            copied += _copy(db, job_id, variables, now)
        except (ValueError, TypeError, KeyError, sqlite3.IntegrityError):
            continue
    return copied


def _copy(db: sqlite3.Connection, job_id: str, variables: dict[str, Any], now: float) -> int:
    if "spec" not in variables:
        return 0
    exists = db.execute("SELECT 1 FROM otpy_jobs WHERE job_id = ?", (job_id,)).fetchone()
    if exists is not None:
        return 0
    spec = JobSpec.model_validate_json(variables["spec"])
    state = json.loads(variables.get("state") or "{}")
    trials = [Trial.model_validate_json(v) for k, v in variables.items() if k.startswith("trial/")]
    db.execute(
        "INSERT INTO otpy_jobs VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, 0)",
        (job_id, str(state.get("state", "running")), float(state.get("elapsed", 0.0)),
         state.get("error"), now),
    )  # fmt: skip
    db.execute("INSERT INTO otpy_job_specs VALUES (?, ?)", (job_id, spec.model_dump_json()))
    rounds = [(int(k.partition("/")[2]), v) for k, v in variables.items() if k.startswith("round/")]
    db.executemany(
        "INSERT INTO otpy_job_rounds VALUES (?, ?, ?)", [(job_id, n, v) for n, v in rounds]
    )
    db.executemany(
        "INSERT INTO otpy_job_trials VALUES (?, ?, ?)",
        [(job_id, trial.index, trial.model_dump_json()) for trial in trials],
    )
    return 1
