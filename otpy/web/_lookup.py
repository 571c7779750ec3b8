"""Job handles found once and then read without I/O: what the status endpoint and the
event hub use from the server's event loop."""

from __future__ import annotations

from otpy.actors import JobHandle, JobsHandle

__all__ = ["JobLookup"]


class JobLookup:
    """Remembers the handles of jobs whose status can be read without touching the job
    store: jobs running or paused in this runtime (their handle reads the runner's cell)
    and finished jobs (their stored snapshot never changes). Other jobs (interrupted, or
    running in another process) are looked up again each time."""

    def __init__(self, jobs: JobsHandle, size: int = 10_000) -> None:
        self.jobs = jobs
        self.size = size
        self._known: dict[str, JobHandle] = {}

    def cached(self, job_id: str) -> JobHandle | None:
        """The remembered handle of ``job_id``, or None: never blocks."""
        return self._known.get(job_id)

    def get(self, job_id: str) -> JobHandle:
        """The handle of ``job_id`` (JobError if there is none); may read the job store."""
        handle = self._known.get(job_id)
        if handle is not None:
            return handle
        handle = self.jobs.get(job_id)
        status = handle.status()
        if status.finished or (status.state in ("running", "paused") and status.owner is None):
            if len(self._known) >= self.size:
                self._known.clear()
            self._known[job_id] = handle
        return handle
