"""A process that resumes jobs when told to (tests/jobs/test_jobs_race.py).

    python tests/job_racer.py STORE

Runs one runtime on the job store STORE (the simulated provider of job_support, its calls
held while a job is resumed until it is released) and reads commands on stdin, one a
line:

- ``resume JOB_ID``: ``rt.jobs.resume(JOB_ID)``; prints ``WON JOB_ID <owner>`` (its calls
  wait) or ``LOST JOB_ID <error type>: <message>`` if the claim is refused.
- ``release JOB_ID``: let the job's calls go; prints ``DONE JOB_ID <state> <evaluations>
  <calls made for it>`` once it ends.
- ``quit``: stop the runtime and exit 0.

It prints ``READY <owner>`` first. Any other trouble prints ``ERROR ...``.
"""

from __future__ import annotations

import sys
from typing import Any

from job_support import Answers, start

from otpy.errors import JobError


def main(store: str) -> int:
    answers = Answers(hold_from=0)
    rt, _ = start(store, answers)
    handles: dict[str, Any] = {}
    try:
        print(f"READY {rt.jobs.store.owner.describe()}", flush=True)
        for line in sys.stdin:
            command, _, job_id = line.strip().partition(" ")
            if command == "quit":
                return 0
            if command == "release":
                handle, before = handles.pop(job_id)
                answers.release()
                status = handle.wait(60)
                calls = answers.calls - before
                print(f"DONE {job_id} {status.state} {status.evaluations_done} {calls}", flush=True)
                answers.gate.clear()
                continue
            before = answers.calls
            try:
                handles[job_id] = (rt.jobs.resume(job_id), before)
            except JobError as exc:
                print(f"LOST {job_id} {type(exc).__name__}: {exc}", flush=True)
                continue
            print(f"WON {job_id} {rt.jobs.store.owner.describe()}", flush=True)
        return 0
    except Exception as exc:
        print(f"ERROR {type(exc).__name__}: {exc}", flush=True)
        return 1
    finally:
        answers.release()
        rt.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
