"""A process that runs an optimization job until a test kills it (tests/test_jobs_survival.py).

    python tests/job_worker.py STORE JOB_ID SEED CANDIDATES [pause]

Starts job JOB_ID (:data:`job_support.PLAIN_QA` on :data:`job_support.SPACE`, a trainset of
``TRAINSET`` examples, the named metric ``exact_match``, random search with SEED) on the
job store STORE; the provider holds every call after the first ``CANDIDATES + 1``
candidates' worth, so the job cannot finish. Once CANDIDATES candidates are checkpointed
it prints ``CHECKPOINTED <n>`` (with ``pause``: then pauses the job and prints
``PAUSED paused``) and waits to be killed. On trouble it prints ``ERROR ...`` and exits 1.
"""

from __future__ import annotations

import sys
import threading

from job_support import PLAIN_QA, SPACE, Answers, start, trainset, wait_status

TRAINSET = 2
CONCURRENCY = 2
MAX_EVALUATIONS = 10


def main(store: str, job_id: str, seed: int, candidates: int, pause: bool = False) -> int:
    answers = Answers(hold_from=(candidates + 1) * TRAINSET)
    rt, _ = start(store, answers)
    try:
        job = rt.jobs.start(
            PLAIN_QA,
            SPACE,
            trainset(TRAINSET),
            "exact_match",
            concurrency=CONCURRENCY,
            max_evaluations=MAX_EVALUATIONS,
            seed=seed,
            job_id=job_id,
        )
        status = wait_status(
            job, lambda s: s.evaluations_done >= candidates or s.finished, timeout=30
        )
        if status.finished:
            print(f"ERROR the job ended before it was killed: {status!r}", flush=True)
            return 1
        print(f"CHECKPOINTED {status.evaluations_done}", flush=True)
        if pause:
            print(f"PAUSED {job.pause().state}", flush=True)
        threading.Event().wait()  # until SIGKILL
        return 0
    except Exception as exc:
        print(f"ERROR {type(exc).__name__}: {exc}", flush=True)
        return 1
    finally:
        answers.release()
        rt.stop()


if __name__ == "__main__":
    store_path, job, seed_text, count = sys.argv[1:5]
    sys.exit(main(store_path, job, int(seed_text), int(count), sys.argv[5:6] == ["pause"]))
