"""Breaker state other processes share: pybreaker's Redis storage, made from the same
storage URI a rate limiter is given, so that one setting shares both.

pybreaker's :class:`~pybreaker.CircuitRedisStorage` keeps the state, the counters and the
time it opened under ``pybreaker:<namespace>:*``; every process whose breaker of the same
name uses it sees one breaker. Its reads fall back to *closed* while Redis cannot be
reached (pybreaker's rule: a breaker never refuses calls because its storage is down),
and its first writes wait for Redis rather than failing the breaker's construction.
"""

from __future__ import annotations

import logging
from typing import Any

import pybreaker

from otpy.errors import ConfigurationError

__all__ = ["SHARED_SCHEMES", "shared_breaker_storage"]

_log = logging.getLogger("otpy.resilience")

SHARED_SCHEMES = ("redis://", "rediss://", "redis+unix://")
"""Storage URIs whose breaker state is shared (the others keep it in the process)."""


class _RedisStorage(pybreaker.CircuitRedisStorage):
    """pybreaker's Redis storage whose initial writes never raise: a breaker made while
    Redis is down starts closed and writes its state once Redis answers."""

    def _initialize_redis_state(self, state: str) -> None:
        try:
            super()._initialize_redis_state(state)
        except Exception as exc:  # redis-py's errors: connection refused, timeout, auth
            _log.warning(
                "breaker %s: its shared state on Redis is not initialized yet (%s)",
                self._namespace_name,
                exc,
            )


def shared_breaker_storage(uri: str, name: str) -> pybreaker.CircuitBreakerStorage | None:
    """A pybreaker storage on the Redis that ``uri`` names (one of :data:`SHARED_SCHEMES`),
    its keys under ``pybreaker:otpy:<name>:``; None for any other URI (``memory://``: the
    breaker keeps its state in this process). ConfigurationError if redis-py is missing
    or the URI cannot be parsed."""
    if not uri.startswith(SHARED_SCHEMES):
        return None
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - the redis extra is part of dev
        raise ConfigurationError(
            f"breaker {name!r}: storage {uri!r} needs redis-py: pip install 'otpy[redis]'"
        ) from exc
    url = "unix://" + uri[len("redis+unix://") :] if uri.startswith("redis+unix://") else uri
    try:
        client: Any = redis.Redis.from_url(url)
    except ValueError as exc:
        raise ConfigurationError(f"breaker {name!r}: storage {uri!r}: {exc}") from exc
    return _RedisStorage(pybreaker.STATE_CLOSED, client, namespace=f"otpy:{name}")
