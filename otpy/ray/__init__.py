"""Optimization jobs on a Ray cluster (the ``otpy[ray]`` extra): ``executor: ray``.

::

    rt = otpy.start({"jobs": {"executor": {"type": "ray", "address": "auto"}},
                     "providers": {"claude": {"type": "anthropic",
                                              "limits": {"rpm": 50, "storage": "redis://redis:6379"}}}})
    rt.jobs.start("qa.yaml", space, trainset, "mypkg.metrics:f1", executor="ray")

The job's runner (ledger, checkpoints, budgets, pause, resume, cancel, status, lease)
stays in this process; its evaluations run on a pool of :class:`EvaluationWorker` actors
(:class:`RayExecutor`). What travels to a worker is data and references, never a live
object or a key (see :mod:`otpy.ray._travel`): the providers' config (each worker builds
its providers and reads keys from its own environment), the program as stored, the step
types and metric by importable reference, each evaluation's configuration and example.
A provider whose ``limits.storage`` is ``redis://...`` shares one limiter and one breaker
across the cluster. ``import otpy`` never imports Ray; importing this module without it
raises ImportError naming the extra.
"""

from __future__ import annotations

try:
    import ray as _ray
except ImportError as exc:  # pragma: no cover - the extra is part of dev
    raise ImportError("otpy.ray needs Ray: install the extra, pip install 'otpy[ray]'") from exc

from otpy.ray._actor import EvaluationWorker
from otpy.ray._executor import RayExecutor, executor
from otpy.ray._travel import JobPayload, WorkerSetup, job_payload, reference_of, worker_setup
from otpy.ray._worker_env import WorkerEnv

__all__ = [
    "EvaluationWorker",
    "JobPayload",
    "RayExecutor",
    "WorkerEnv",
    "WorkerSetup",
    "executor",
    "job_payload",
    "reference_of",
    "worker_setup",
]

RAY_VERSION = _ray.__version__
