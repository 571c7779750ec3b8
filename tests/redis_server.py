"""A real redis-server for the tests that share state between limiters and processes.

``.ci/run`` installs Debian's redis-server; where none is installed or it cannot start,
the tests that need it are skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from otpy.testing import RedisUnavailable, redis_server


def start_redis() -> Iterator[str]:
    """Yield the URL of a fresh redis-server, or skip saying why there is none."""
    try:
        with redis_server() as url:
            yield url
    except RedisUnavailable as exc:
        pytest.skip(str(exc))
