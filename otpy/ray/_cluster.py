"""This process's connection to Ray, shared by the Ray executors of its runtimes.

The first executor that needs Ray connects (``ray.init``): to the cluster its address
names, else to a local Ray it starts. A Ray this process already runs (initialized by the
user, or a test) is used as it is and never shut down by otpy; one otpy started is shut
down when the last executor using it shuts down.
"""

from __future__ import annotations

import logging
import threading

import ray

from otpy.errors import ConfigurationError
from otpy.optimize import ExecutorConfig

__all__ = ["connect", "disconnect"]

logger = logging.getLogger("otpy.jobs")

_lock = threading.Lock()
_users = 0
_ours = False


def connect(settings: ExecutorConfig) -> None:
    """Make sure this process is connected to Ray (see the module docstring); count one
    more user. ConfigurationError if the cluster cannot be reached."""
    global _users, _ours
    with _lock:
        if not ray.is_initialized():
            where = settings.address or f"a local Ray ({settings.num_cpus or 'all'} CPUs)"
            logger.info("Ray executor: connecting to %s", where)
            try:
                if settings.address:
                    ray.init(address=settings.address, namespace=settings.namespace)
                else:
                    ray.init(
                        num_cpus=settings.num_cpus,
                        namespace=settings.namespace,
                        include_dashboard=False,
                    )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigurationError(
                    f"the Ray executor cannot connect to {where}: {exc}"
                ) from exc
            _ours = True
        _users += 1


def disconnect() -> None:
    """One user fewer; the last one shuts down a Ray that otpy started."""
    global _users, _ours
    with _lock:
        _users = max(0, _users - 1)
        if _users == 0 and _ours:
            _ours = False
            ray.shutdown()
