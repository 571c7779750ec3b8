"""A job's checkpoint in a state store: one session per job, one variable per fact.

Variables of session ``<job_id>``: ``spec`` (the JobSpec), ``round/<r>`` (the candidates
proposed in round r, written before any of them is evaluated), ``trial/<index>`` (one
finished candidate, written when it finishes: each is one transaction) and ``state``
(the job's state, elapsed seconds and error). Reading them back gives everything a
runner needs to go on without evaluating a finished candidate again.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otpy.errors import StateError, VariableExistsError, VariableNotFound
from otpy.optimize._job import JobSpec, JobState
from otpy.optimize._trials import Trial
from otpy.state import SQLiteState

__all__ = ["Checkpoint", "JobStore", "default_store_path"]


def default_store_path() -> Path:
    """``$OTPY_STATE_DIR/jobs.sqlite``, else ``~/.local/state/otpy/jobs.sqlite``."""
    base = os.environ.get("OTPY_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "otpy"
    )
    return Path(base) / "jobs.sqlite"


@dataclass
class Checkpoint:
    """What a store holds of one job."""

    spec: JobSpec
    rounds: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    trials: dict[int, Trial] = field(default_factory=dict)
    state: JobState = "running"
    elapsed: float = 0.0
    error: str | None = None


class JobStore:
    """The checkpoints of jobs in one SQLite file (``path``, or ``":memory:"`` for this
    object only); it keeps one open session per job (thread-safe) until ``close``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._sessions: dict[str, SQLiteState] = {}
        self._lock = threading.Lock()

    def session(self, job_id: str) -> SQLiteState:
        """The open store on ``job_id``'s session."""
        with self._lock:
            session = self._sessions.get(job_id)
            if session is None:
                session = self._sessions[job_id] = SQLiteState(self.path, session_id=job_id)
            return session

    def job_ids(self) -> list[str]:
        """The jobs this store holds."""
        if self.path == ":memory:":
            with self._lock:
                return sorted(self._sessions)
        if not Path(self.path).exists():
            return []
        return SQLiteState.list_sessions(self.path)

    def holds(self, job_id: str) -> bool:
        """Whether the store has job ``job_id`` (its spec)."""
        if job_id not in self.job_ids():
            return False
        try:
            self.session(job_id).get_variable("spec")
        except VariableNotFound:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.cleanup()

    @staticmethod
    def create(session: SQLiteState, spec: JobSpec) -> None:
        """Write a new job's spec (StateError if that job id exists already)."""
        try:
            session.register_variable("spec", "json", spec.model_dump(mode="json"))
        except VariableExistsError:
            raise StateError(
                f"job {spec.job_id!r} already exists in {session.path}; resume it or "
                "choose another job_id"
            ) from None
        session.register_variable("state", "json", {"state": "running", "elapsed": 0.0})

    @staticmethod
    def save_round(session: SQLiteState, round: int, candidates: list[dict[str, Any]]) -> None:
        session.register_variable(f"round/{round}", "json", candidates)

    @staticmethod
    def save_trial(session: SQLiteState, trial: Trial) -> None:
        session.register_variable(f"trial/{trial.index}", "json", trial.model_dump(mode="json"))

    @staticmethod
    def save_state(
        session: SQLiteState, state: JobState, elapsed: float, error: str | None = None
    ) -> None:
        session.set_variable("state", {"state": state, "elapsed": elapsed, "error": error})

    @staticmethod
    def load(session: SQLiteState) -> Checkpoint:
        """The job's checkpoint; StateError if the session holds no job."""
        try:
            spec = JobSpec.model_validate(session.get_variable("spec").value)
        except VariableNotFound:
            raise StateError(
                f"no job {session.session_id!r} in {session.path} (jobs there: "
                f"{', '.join(SQLiteState.list_sessions(session.path)) or 'none'})"
            ) from None
        checkpoint = Checkpoint(spec)
        for variable in session.list_variables():
            kind, _, number = variable.name.partition("/")
            if kind == "round":
                checkpoint.rounds[int(number)] = list(variable.value)
            elif kind == "trial":
                checkpoint.trials[int(number)] = Trial.model_validate(variable.value)
            elif kind == "state":
                checkpoint.state = variable.value.get("state", "running")
                checkpoint.elapsed = float(variable.value.get("elapsed", 0.0))
                checkpoint.error = variable.value.get("error")
        return checkpoint
