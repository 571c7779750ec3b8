"""A process that runs a DSPy job until a test kills it (tests/dspy/test_dspy_jobs.py)::

    python tests/dspy_job_worker.py STORE JOB_ID KILL_AT

Starts :data:`dspy_job_fixtures.MIPRO_JOB` (single-threaded, seeded) as job JOB_ID on the
job store STORE; the simulated provider's call number ``KILL_AT + 1`` never returns. Once
``KILL_AT`` calls are journaled it prints ``CALLS <n> IN_FLIGHT <m>`` and waits to be
killed. On trouble it prints ``ERROR ...`` and exits 1 (each on a line of its own: DSPy
writes its progress bars on stdout too).
"""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from pathlib import Path

from dspy_job_fixtures import MIPRO_JOB, examples, provider
from dspy_worker import BlockingClock

import otpy
from otpy.testing import wait_until

HERE = Path(__file__).resolve().parent


def main(store: str, job_id: str, kill_at: int) -> int:
    logging.disable(logging.WARNING)
    sim = provider(latency=0.001, clock=BlockingClock(kill_at))
    config = {"name": f"worker-{uuid.uuid4().hex[:6]}", "plugins": False, "providers": {},
              "jobs_store": store}  # fmt: skip
    rt = otpy.start(config)
    try:
        rt.providers.register_provider("sim", sim, limits={"timeout": None})
        job = rt.jobs.start_dspy(trainset=examples(10), job_id=job_id, base_dir=HERE, **MIPRO_JOB)
        status = wait_until(
            lambda: (s := job.status()).lm_calls >= kill_at and s.in_flight and s, timeout=30
        )
        print(f"\nCALLS {status.lm_calls} IN_FLIGHT {status.in_flight}", flush=True)
        threading.Event().wait()  # until SIGKILL
        return 0
    except Exception as exc:
        print(f"\nERROR {type(exc).__name__}: {exc}", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
