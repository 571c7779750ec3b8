"""The job store's contract: checkpoints, and the lease that lets one runtime run a job.

A job is claimed by a **lease**: its holder (an :class:`Owner`), an expiry (epoch seconds,
on the store's clock) and an ``epoch``, a fence token that grows by one with every claim.
Starting a job (:meth:`JobStore.create`) and resuming one (:meth:`JobStore.claim`) are
each one atomic compare-and-set: a claim succeeds only on a job whose lease has expired,
was released, is the claimer's own, or is held by a process on this host that has exited
(its heartbeat can never come again), unless ``force``. The holder renews its leases by
heartbeat (:meth:`JobStore.renew`, all of them in one transaction). Every checkpoint
write (:meth:`JobStore.write`) is fenced: it is applied, with the lease check, in one
transaction, and refused with :class:`~otpy.errors.LeaseLostError` once another claim
has moved the epoch on. So no two runtimes ever both write one job, whatever their
timing; a runner whose write is refused stops.

Backends implement :class:`JobStore` (``SQLiteJobStore`` here; a Redis store can do the
same with ``WATCH``/``MULTI`` or a script).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otpy.clock import Clock
from otpy.errors import JobClaimedError, JobError
from otpy.optimize._job import JobSpec, JobState
from otpy.optimize._owner import Owner
from otpy.optimize._trials import Trial

__all__ = [
    "Checkpoint",
    "CheckpointBatch",
    "Holder",
    "JobStore",
    "Lease",
    "claim_refusal",
    "default_store_path",
]

FINISHED: tuple[JobState, ...] = ("completed", "cancelled", "failed")


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


@dataclass(frozen=True, slots=True)
class Lease:
    """A claim held on job ``job_id``: by ``owner``, fence token ``epoch``, valid until
    ``expires`` (epoch seconds) unless renewed."""

    job_id: str
    owner: Owner
    epoch: int
    expires: float


@dataclass(frozen=True, slots=True)
class Holder:
    """What the store says of a job's lease: its ``owner`` (None once released), the
    ``epoch`` of the last claim and when it ``expires``."""

    owner: Owner | None
    epoch: int = 0
    expires: float | None = None

    def live(self, now: float) -> bool:
        """Held and not expired at ``now`` (a dead process on this host still counts)."""
        return self.owner is not None and self.expires is not None and self.expires > now

    def describe(self) -> str | None:
        return None if self.owner is None else self.owner.describe()


@dataclass
class Checkpoint:
    """What a store holds of one job: its spec, the candidates of each round, the finished
    trials, its ``results`` (named texts: a DSPy job's saved programs), its state, elapsed
    seconds of running, error and ``holder`` (its lease)."""

    spec: JobSpec
    rounds: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    trials: dict[int, Trial] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)
    state: JobState = "running"
    elapsed: float = 0.0
    error: str | None = None
    holder: Holder = field(default_factory=lambda: Holder(None))


@dataclass
class CheckpointBatch:
    """What one fenced transaction writes for a job: new ``rounds`` (index, candidates),
    finished ``trials``, ``results`` by name (each replaces the one of that name), and
    the job's ``state``, ``elapsed`` and ``error``; with ``release`` the lease is given up
    in the same transaction (the job ended or its runtime stopped)."""

    state: JobState
    elapsed: float
    rounds: list[tuple[int, list[dict[str, Any]]]] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)
    results: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    release: bool = False


def claim_refusal(
    job_id: str, state: JobState, holder: Holder, mine: Owner, now: float
) -> JobError | None:
    """Why ``mine`` may not claim job ``job_id`` (stored ``state``, lease ``holder``) at
    ``now``; None if it may: the job has not finished and its lease has expired, was
    released, is ``mine``, or is held by a process on this host that has exited."""
    if state in FINISHED:
        return JobError(f"job {job_id!r} is {state}; nothing to resume")
    owner = holder.owner
    if owner is None or not holder.live(now) or owner.id == mine.id or owner.alive() is False:
        return None
    state = "running" if state == "interrupted" else state  # claimed, not yet written
    return JobClaimedError(
        f"job {job_id!r} is {state} in {owner.describe()}; stop it there, or pass "
        "force=True if that process is gone",
        job_id=job_id,
        owner=owner.describe(),
        state=state,
        expires=holder.expires,
    )


class JobStore(ABC):
    """Where jobs checkpoint, and who may run them (see the module docstring).

    ``owner`` is the runtime writing through this store; ``lease_seconds`` how long a
    claim or renewal holds; ``clock`` gives the time (``clock.time()``: leases are
    compared across processes). Methods are thread-safe; each write is one transaction.
    Failures of the backend raise StateError.
    """

    def __init__(self, owner: Owner, clock: Clock, lease_seconds: float) -> None:
        self.owner = owner
        self.clock = clock
        self.lease_seconds = lease_seconds

    @property
    @abstractmethod
    def path(self) -> str:
        """Where the store is (for messages)."""

    @abstractmethod
    def create(self, spec: JobSpec) -> Lease:
        """Store a new job, ``running`` and leased to :attr:`owner`: one atomic insert.
        JobError if the job id is taken."""

    @abstractmethod
    def claim(self, job_id: str, *, force: bool = False) -> Lease:
        """Lease job ``job_id`` to :attr:`owner` (a new epoch; its state is left as it is),
        in one compare-and-set (see :func:`claim_refusal`; ``force`` skips the lease check).
        JobError if there is no such job or it has finished; JobClaimedError (naming the
        holder) if another live runtime holds it."""

    @abstractmethod
    def write(self, lease: Lease, batch: CheckpointBatch) -> Lease:
        """Apply ``batch`` if ``lease`` still holds (same epoch): one transaction. Returns
        the lease (renewed if the write renewed it). The elapsed time may be recorded
        only every so often (a backend says how often). LeaseLostError if another claim
        came since: nothing is written."""

    @abstractmethod
    def write_many(self, items: Sequence[tuple[Lease, CheckpointBatch]]) -> list[str]:
        """:meth:`write` for several jobs in one transaction; the ids of the jobs whose
        lease was lost (their batch is skipped, the others applied)."""

    @abstractmethod
    def renew(self, leases: Sequence[Lease]) -> dict[str, Holder]:
        """Extend every lease of ``leases`` that still holds, in one transaction; the
        others by job id, with the store's holder now (another owner, or released)."""

    @abstractmethod
    def load(self, job_id: str, *, records: bool = True) -> Checkpoint:
        """The job's checkpoint (without its rounds, trials and results if not ``records``);
        JobError if the store holds no job ``job_id``."""

    @abstractmethod
    def holds(self, job_id: str) -> bool:
        """Whether the store has job ``job_id``."""

    @abstractmethod
    def job_ids(self) -> list[str]:
        """The ids of the jobs in the store, sorted."""

    @abstractmethod
    def close(self) -> None:
        """Release the backend's connections (the store is not used after)."""
