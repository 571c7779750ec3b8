"""Resilience for provider calls: multi-bucket rate limits, circuit breakers, retries,
timeouts and fallbacks, composed by :func:`guard`.

Built on ``limits`` (windows and shared storage), ``pybreaker`` (breaker state) and
``tenacity`` (retrying); every wait reads an injectable :class:`~otpy.clock.Clock`.
"""

from otpy.resilience._bucket import Limit
from otpy.resilience._limiter import BucketStats, LimiterStats, Permit, RateLimiter
from otpy.resilience._memory import ClockedMemoryStorage

__all__ = [
    "BucketStats",
    "ClockedMemoryStorage",
    "Limit",
    "LimiterStats",
    "Permit",
    "RateLimiter",
]
