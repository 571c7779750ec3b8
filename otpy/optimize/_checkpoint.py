"""A job's checkpoint in a state store: one session per job, one variable per fact.

Variables of session ``<job_id>``: ``spec`` (the JobSpec), ``round/<r>`` (the candidates
proposed in round r, written before any of them is evaluated), ``trial/<index>`` (one
finished candidate, written when it finishes: each is one transaction) and ``state``
(the job's state, elapsed seconds, error and, while it is running or paused, its
:class:`~otpy.optimize._owner.Owner`). Reading them back gives everything a runner needs
to go on without evaluating a finished candidate again.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otpy.errors import StateError, VariableExistsError, VariableNotFound
from otpy.optimize._job import JobSpec, JobState
from otpy.optimize._owner import Owner
from otpy.optimize._trials import Trial
from otpy.state import SQLiteState

__all__ = ["Checkpoint", "JobStore", "default_store_path"]


def default_store_path(state_dir: str | os.PathLike[str] | None = None) -> Path:
    """``jobs.sqlite`` in ``state_dir`` (the runtime config's ``state_dir``), else in
    ``$OTPY_STATE_DIR``, else ``$XDG_STATE_HOME/otpy``, else ``~/.local/state/otpy``."""
    base = (
        state_dir
        or os.environ.get("OTPY_STATE_DIR")
        or os.path.join(
            os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "otpy"
        )
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
    owner: Owner | None = None
    """Who runs it, recorded while it is running or paused (None once it has ended)."""


_OWNED = ("running", "paused")


class JobStore:
    """The checkpoints of jobs in one SQLite file (``path``, or ``":memory:"`` for this
    object only); it keeps one open session per job (thread-safe) until ``close``.

    ``owner`` is the runtime that writes through this store: :meth:`create` and
    :meth:`save_state` record it with a job that is running or paused. There is no
    compare-and-set: two processes claiming one job at the same instant both succeed."""

    def __init__(self, path: str | os.PathLike[str], *, owner: Owner | None = None) -> None:
        self.path = os.fspath(path)
        self.owner = owner
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

    def create(self, spec: JobSpec) -> None:
        """Write a new job's spec, running and owned by :attr:`owner` (StateError if that
        job id exists already)."""
        session = self.session(spec.job_id)
        try:
            session.register_variable("spec", "json", spec.model_dump(mode="json"))
        except VariableExistsError:
            raise StateError(
                f"job {spec.job_id!r} already exists in {session.path}; resume it or "
                "choose another job_id"
            ) from None
        session.register_variable("state", "json", self._state("running", 0.0, None))

    def save_round(self, job_id: str, round: int, candidates: list[dict[str, Any]]) -> None:
        self.session(job_id).register_variable(f"round/{round}", "json", candidates)

    def save_trial(self, job_id: str, trial: Trial) -> None:
        self.session(job_id).register_variable(
            f"trial/{trial.index}", "json", trial.model_dump(mode="json")
        )

    def save_state(
        self, job_id: str, state: JobState, elapsed: float, error: str | None = None
    ) -> None:
        """Record the job's state; a running or paused one is owned by :attr:`owner`."""
        self.session(job_id).set_variable("state", self._state(state, elapsed, error))

    def _state(self, state: JobState, elapsed: float, error: str | None) -> dict[str, Any]:
        owner = self.owner.to_dict() if self.owner is not None and state in _OWNED else None
        return {"state": state, "elapsed": elapsed, "error": error, "owner": owner}

    def load(self, job_id: str) -> Checkpoint:
        """The job's checkpoint; StateError if the store holds no job ``job_id``."""
        session = self.session(job_id)
        try:
            spec = JobSpec.model_validate(session.get_variable("spec").value)
        except VariableNotFound:
            raise StateError(
                f"no job {job_id!r} in {session.path} (jobs there: "
                f"{', '.join(self.job_ids()) or 'none'})"
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
                checkpoint.owner = _owner(variable.value.get("owner"))
        return checkpoint


def _owner(data: Any) -> Owner | None:
    """The recorded owner; None if there is none, or it is malformed (then the job reads
    as interrupted, and can be resumed)."""
    if not isinstance(data, dict):
        return None
    try:
        return Owner.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None
