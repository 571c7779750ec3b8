"""Resilience for provider calls: multi-bucket rate limits, circuit breakers, retries,
timeouts and fallbacks, composed by :func:`guard`.

Rate limits are counted exactly by otpy's own buckets (an exact rolling window, or a token
bucket; in memory or in Redis), or by the ``limits`` library's strategies; breaker state is
``pybreaker``'s and retrying ``tenacity``'s. Every wait reads an injectable
:class:`~otpy.clock.Clock`.
"""

from otpy.resilience._breaker import PROBE_IN_FLIGHT, BreakerStats, CircuitBreaker
from otpy.resilience._breaker_store import SHARED_SCHEMES, shared_breaker_storage
from otpy.resilience._bucket import Limit
from otpy.resilience._events import EventSink, ResilienceEvent
from otpy.resilience._fallback import Fallback, FallbackResult, OptionFailure
from otpy.resilience._guard import NOT_FAULTS, Guard, Guarded, GuardResult, guard
from otpy.resilience._limiter import RateLimiter
from otpy.resilience._memory import ClockedMemoryStorage
from otpy.resilience._permit import BucketStats, LimiterStats, Permit
from otpy.resilience._retry import (
    RetryAttempt,
    RetryPolicy,
    is_retryable,
    parse_retry_after,
    retry_after_of,
)
from otpy.resilience._timeout import call_with_timeout

__all__ = [
    "NOT_FAULTS",
    "PROBE_IN_FLIGHT",
    "SHARED_SCHEMES",
    "BreakerStats",
    "BucketStats",
    "CircuitBreaker",
    "ClockedMemoryStorage",
    "EventSink",
    "Fallback",
    "FallbackResult",
    "Guard",
    "GuardResult",
    "Guarded",
    "Limit",
    "LimiterStats",
    "OptionFailure",
    "Permit",
    "RateLimiter",
    "ResilienceEvent",
    "RetryAttempt",
    "RetryPolicy",
    "call_with_timeout",
    "guard",
    "is_retryable",
    "parse_retry_after",
    "retry_after_of",
    "shared_breaker_storage",
]
