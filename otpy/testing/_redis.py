"""A throwaway redis-server on a free loopback port, for tests and benchmarks of
limiters that share their buckets through Redis."""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

__all__ = ["RedisUnavailable", "redis_server"]


class RedisUnavailable(RuntimeError):
    """No redis-server could be started here; the message says why."""


@contextlib.contextmanager
def redis_server(startup_timeout: float = 10.0) -> Iterator[str]:
    """Start ``redis-server`` (no persistence) on a free 127.0.0.1 port and yield its URL;
    stop it on exit. Raises :class:`RedisUnavailable` (saying why) when the binary or the
    ``redis`` package is missing or the server does not answer within the timeout."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable(
            "redis-server is not installed (Debian: apt-get install redis-server)"
        )
    if importlib.util.find_spec("redis") is None:
        raise RedisUnavailable("the redis package is not installed (pip install 'otpy[redis]')")
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    with tempfile.TemporaryDirectory() as tmp, open(f"{tmp}/log", "w+") as log:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        process = subprocess.Popen([binary, *args, "--dir", tmp], stdout=log, stderr=log)
        # No retries: redis-py's default retries a refused connection with backoff for
        # seconds, while the server we just started listens within milliseconds.
        client = redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
        deadline = time.monotonic() + startup_timeout
        try:
            while True:  # a process we just started: poll its socket until it answers
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RedisUnavailable(
                            f"redis-server could not be started: {log.read()[-300:]}"
                        ) from None
                    time.sleep(0.005)
            yield f"redis://127.0.0.1:{port}"
        finally:
            client.close()
            process.kill()  # nothing of it is kept: no need to wait for a clean shutdown
            process.wait()
