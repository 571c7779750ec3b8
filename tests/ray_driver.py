"""A process that runs one small job on Ray the way a user's program would, for
tests/ray/test_ray_jobs.py: Ray is not initialized here before the job needs it.

    python tests/ray_driver.py [ADDRESS]

Starts a runtime whose config says ``jobs.executor: {type: ray, address: ADDRESS}`` (no
address: a local Ray of one CPU), checks that Ray is still not initialized, runs a job of
two candidates on it with no ``executor`` named, stops the runtime, and prints one JSON
line: the job's ``state`` and ``evaluations``, whether Ray was ``initialized_before`` the
job, the ``gcs`` address and the worker ``nodes`` the job ran on, and whether Ray is
``initialized_after`` the runtime stopped. On trouble it exits non-zero with a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Any, cast

import ray
from ray_support import PROGRAM, SPACE, TESTS, TRAINSET, score

import otpy
from otpy.ray import RayExecutor


def main(address: str | None) -> dict[str, Any]:
    executor: dict[str, Any] = {
        "type": "ray", "workers": 1, "threads": 4,
        "runtime_env": {"env_vars": {"PYTHONPATH": TESTS}},
    }  # fmt: skip
    executor.update({"address": address} if address else {"num_cpus": 1})
    config = {
        "name": "ray-driver",
        "plugins": False,
        "jobs_store": ":memory:",
        "jobs": {"executor": executor},
        "providers": {"simulated": {"options": {"seed": 3}}},
    }
    with otpy.start(config) as rt:
        before = ray.is_initialized()
        status = rt.jobs.start(PROGRAM, SPACE, TRAINSET, score, max_evaluations=2).wait(60)
        gcs = ray.get_runtime_context().gcs_address
        pool = cast(RayExecutor, rt.jobs.executor())
        nodes = sorted({worker["node"] for worker in pool.workers()})
    return {
        "state": status.state,
        "evaluations": status.evaluations_done,
        "initialized_before": before,
        "gcs": gcs,
        "nodes": nodes,
        "initialized_after": ray.is_initialized(),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else None)), flush=True)
