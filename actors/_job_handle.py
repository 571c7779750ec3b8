"""``JobHandle``: one job as its user holds it: status at once, steering, waiting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otpy.actors._job_record import JobCell, JobRecord
from otpy.errors import CallTimeoutError, JobError, NoProcessError
from otpy.optimize import JobStatus, Trial
from otpy.supervision import ServerRef

__all__ = ["JobHandle"]


class JobHandle:
    """One job: ``id``, ``status()`` (at once, never waits on the runner), ``pause()``,
    ``resume()``, ``cancel()``, ``wait(timeout)``, ``best()`` and, for a DSPy job,
    ``program()``.

    A handle of a job read from the store (``rt.jobs.get`` of a job not started here)
    only reports a snapshot: steering it raises JobError (an interrupted job is resumed
    with ``rt.jobs.resume(job_id)``; one running elsewhere is steered there)."""

    def __init__(
        self,
        job_id: str,
        cell: JobCell,
        record: JobRecord | None,
        program: Callable[[], Any] | None = None,
    ) -> None:
        self.id = job_id
        self._cell = cell
        self._record = record
        self._program = program

    def status(self) -> JobStatus:
        """The job's status now (published by its runner after every change)."""
        return self._cell.status

    def best(self) -> Trial | None:
        """The best finished candidate so far (configuration, score, per-example results)."""
        return self._cell.best

    def program(self) -> Any:
        """A DSPy job's program (``dspy.Module``): the compiled one, or the best evaluated
        when a budget stopped the compile; loaded from the job store (DSPy's saved state,
        into a copy of the job's program) unless this process compiled it. Blocks on a
        store read; JobError if the job is not a DSPy job or has no program yet."""
        if self._program is None:
            raise JobError(f"job {self.id!r} has no program here")
        return self._program()

    def __otpy_ref__(self) -> ServerRef[Any] | str:
        """For ``otpy.sys``: the job's runner (its name, so a restart is waited for).

        NoProcessError saying why if the job has no runner in this process: it has
        ended, is interrupted, runs in another runtime, or is paused (a paused job's
        runner has checkpointed and exited; ``resume()`` starts one)."""
        status = self._cell.status
        if self._record is None:
            where = status.owner or "another runtime"
            raise NoProcessError(
                f"job {self.id!r}", f"it is {status.state} in {where}, not in this process"
            )
        if status.ended:
            raise NoProcessError(
                f"job {self.id!r}", f"it is {status.state}: it has no runner any more"
            )
        if self._record.phase == "hibernated":
            raise NoProcessError(
                f"job {self.id!r}", "it is paused: it has no runner until it is resumed"
            )
        return self._record.runner_name

    def _steer(self, action: str) -> JobStatus:
        if self._record is not None:
            return self._record.steer(action)
        status = self._cell.status
        if status.finished and action == "cancel":
            return status
        if status.finished or status.state == "interrupted":
            if status.state == "interrupted":
                raise JobError(
                    f"job {self.id!r} is interrupted; it cannot {action} from this handle: "
                    f"resume it with rt.jobs.resume({self.id!r})"
                )
            raise JobError(f"job {self.id!r} is {status.state}; it cannot {action}")
        where = status.owner or "another runtime"
        raise JobError(f"job {self.id!r} is {status.state} in {where}; {action} it there")

    def pause(self) -> JobStatus:
        """Start no new evaluation from now on (the ones running finish and are kept); once
        none is in flight the job holds no thread until it is resumed.

        While the call is under way the record says so (``pausing``): the runner starts
        nothing new even before the call reaches it."""
        calls = self._record.pausing if self._record is not None else []
        calls.append(None)  # append and pop are atomic: no lock
        try:
            return self._steer("pause")
        finally:
            calls.pop()

    def resume(self) -> JobStatus:
        """Go on after ``pause`` (from the checkpoint, if the runner had hibernated)."""
        return self._steer("resume")

    def cancel(self) -> JobStatus:
        """End the job now, keeping the best so far (runs in flight are told to stop and
        their results dropped)."""
        return self._steer("cancel")

    def wait(self, timeout: float | None = None) -> JobStatus:
        """The status once nothing more happens to the job here: completed, cancelled,
        failed, interrupted (its runtime stopped) or taken_over (another runtime claimed
        it); CallTimeoutError after ``timeout`` seconds. A handle read from the store
        returns its snapshot at once."""
        if not self._cell.done.wait(timeout):
            raise CallTimeoutError(f"job {self.id!r}", timeout)
        return self._cell.status

    def __repr__(self) -> str:
        status = self._cell.status
        return f"<JobHandle {self.id!r} {status.state} {status.evaluations_done} done>"
