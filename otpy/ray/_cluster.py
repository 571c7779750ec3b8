"""This process's connection to Ray, shared by the Ray executors of its runtimes.

The first executor that needs Ray connects (``ray.init``): to the cluster its address
names, else to a local Ray it starts. A Ray this process already runs (initialized by the
user, or a test) is used as it is and never shut down by otpy; one otpy started is shut
down when the last executor using it shuts down.

otpy connects from a thread of its own that lives as long as the connection: Ray ties the
processes it starts to the *thread* that started them (``PR_SET_PDEATHSIG``), so a local
Ray started from a runner's or a request's thread would die with that thread.
"""

from __future__ import annotations

import logging
import queue
import threading

import ray

from otpy.errors import ConfigurationError
from otpy.optimize import ExecutorConfig

__all__ = ["connect", "disconnect"]

logger = logging.getLogger("otpy.jobs")

_SHUTDOWN_TIMEOUT = 60.0

_lock = threading.Lock()
_users = 0
_keeper: threading.Thread | None = None
_closing: threading.Thread | None = None  # a keeper shutting its Ray down
_release = threading.Event()


def connect(settings: ExecutorConfig) -> None:
    """Make sure this process is connected to Ray (see the module docstring); count one
    more user. Blocks while Ray starts; ConfigurationError if it cannot be reached."""
    global _users, _keeper, _closing
    with _lock:
        if _closing is not None:  # the last user just left: let that Ray go down first
            _closing.join(_SHUTDOWN_TIMEOUT)
            _closing = None
        if not ray.is_initialized():
            ready: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
            _release.clear()
            keeper = threading.Thread(
                target=_keep, args=(settings, ready), name="otpy-ray", daemon=True
            )
            keeper.start()
            failure = ready.get()
            if failure is not None:
                where = settings.address or "a local Ray"
                raise ConfigurationError(
                    f"the Ray executor cannot connect to {where}: {failure}"
                ) from failure
            _keeper = keeper
        _users += 1


def _keep(settings: ExecutorConfig, ready: queue.SimpleQueue[BaseException | None]) -> None:
    """The connection's thread: start or join Ray, hold it until released, shut it down."""
    where = settings.address or f"a local Ray ({settings.num_cpus or 'all'} CPUs)"
    logger.info("Ray executor: connecting to %s", where)
    try:
        if settings.address:
            ray.init(address=settings.address, namespace=settings.namespace)
        else:
            ray.init(
                num_cpus=settings.num_cpus, namespace=settings.namespace, include_dashboard=False
            )
    except BaseException as exc:  # ConnectionError, RuntimeError, ValueError from Ray
        ready.put(exc)
        return
    ready.put(None)
    _release.wait()
    ray.shutdown()


def disconnect() -> None:
    """One user fewer; the last one shuts down the Ray otpy connected (waits for it)."""
    global _users, _keeper, _closing
    with _lock:
        _users = max(0, _users - 1)
        keeper = _keeper if _users == 0 else None
        if keeper is not None:
            _keeper, _closing = None, keeper
            _release.set()
    if keeper is not None:
        keeper.join(_SHUTDOWN_TIMEOUT)
