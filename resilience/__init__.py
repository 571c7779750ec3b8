"""Resilience for provider calls: multi-bucket rate limits, circuit breakers, retries,
timeouts and fallbacks, composed by :func:`guard`.

Built on ``limits`` (windows and shared storage), ``pybreaker`` (breaker state) and
``tenacity`` (retrying); every wait reads an injectable :class:`~otpy.clock.Clock`.
"""

from otpy.resilience._breaker import PROBE_IN_FLIGHT, BreakerStats, CircuitBreaker
from otpy.resilience._bucket import Limit
from otpy.resilience._events import EventSink, ResilienceEvent
from otpy.resilience._fallback import Fallback, FallbackResult, OptionFailure
from otpy.resilience._guard import NOT_FAULTS, Guard, Guarded, GuardResult, guard
from otpy.resilience._limiter import BucketStats, LimiterStats, Permit, RateLimiter
from otpy.resilience._memory import ClockedMemoryStorage
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
]
