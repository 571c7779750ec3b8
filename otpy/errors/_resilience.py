"""Errors of the resilience layer: rate limits, breakers, timeouts, fallbacks."""

from __future__ import annotations

from collections.abc import Sequence

from otpy.errors._base import OtpyError

__all__ = [
    "AllOptionsFailed",
    "CircuitOpenError",
    "CostExceedsLimitError",
    "OperationTimeout",
    "PermitError",
    "RateLimitTimeout",
    "ResilienceError",
]


class ResilienceError(OtpyError):
    """An error of the resilience layer: rate limits, breakers, timeouts, fallbacks."""


class CostExceedsLimitError(ResilienceError, ValueError):
    """A cost that no window of a bucket could ever admit (it exceeds the bucket's limit).

    Raised at once by ``acquire``: waiting could never help.
    """

    def __init__(self, limiter: str, dimension: str, cost: int, limit: str) -> None:
        super().__init__(
            f"rate limiter {limiter!r}: a cost of {cost} {dimension} can never be admitted "
            f"by the bucket {limit}; split the request or raise the limit"
        )
        self.limiter = limiter
        self.dimension = dimension
        self.cost = cost
        self.limit = limit


class RateLimitTimeout(ResilienceError, TimeoutError):
    """``acquire`` was not admitted within its timeout; nothing was reserved.

    ``blocking`` names the buckets (or the pause) that held it back.
    """

    def __init__(self, limiter: str, timeout: float, blocking: Sequence[str]) -> None:
        held = ", ".join(blocking) or "requests queued ahead"
        super().__init__(
            f"rate limiter {limiter!r}: not admitted within {timeout:g} s (held back by {held})"
        )
        self.limiter = limiter
        self.timeout = timeout
        self.blocking = tuple(blocking)


class PermitError(ResilienceError):
    """A rate-limit permit was settled twice or released after it was settled."""


class CircuitOpenError(ResilienceError):
    """The circuit breaker refused the call without making it.

    ``retry_in`` is how many seconds until the breaker lets a probe through (0 when a
    probe is already in flight and this call was not it).
    """

    def __init__(self, breaker: str, retry_in: float, reason: str = "open") -> None:
        super().__init__(
            f"circuit breaker {breaker!r} is {reason}; call refused (probe in {retry_in:.3f} s)"
        )
        self.breaker = breaker
        self.retry_in = retry_in
        self.reason = reason


class OperationTimeout(ResilienceError, TimeoutError):
    """A guarded call did not finish within its per-call timeout (it is abandoned)."""

    def __init__(self, operation: str, timeout: float) -> None:
        super().__init__(f"{operation!r} did not finish within {timeout:g} s")
        self.operation = operation
        self.timeout = timeout


class AllOptionsFailed(ResilienceError):
    """Every option of a fallback chain failed; ``failures`` is ``[(option, error), ...]``
    in the order they were tried (the last error is also the ``__cause__``)."""

    def __init__(self, chain: str, failures: Sequence[tuple[str, BaseException]]) -> None:
        why = "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in failures)
        super().__init__(f"{chain!r}: all {len(failures)} options failed ({why})")
        self.chain = chain
        self.failures = list(failures)
