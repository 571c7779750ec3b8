"""``ProviderLimits``: a provider's resilience settings, and the guard built from them.

Every provider call goes through one :func:`otpy.resilience.guard`: rate limiter
(requests and tokens per minute) -> circuit breaker -> retries -> per-call timeout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pybreaker
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from otpy.clock import Clock
from otpy.documents import validation_problems
from otpy.errors import ConfigurationError
from otpy.providers._base import Completion, CompletionRequest, Provider
from otpy.providers._health import ProviderStats
from otpy.resilience import (
    NOT_FAULTS,
    CircuitBreaker,
    Guarded,
    Limit,
    RateLimiter,
    RetryPolicy,
    guard,
    shared_breaker_storage,
)

__all__ = ["ProviderGuard", "ProviderLimits", "build_guard"]


class ProviderLimits(BaseModel):
    """How one provider is called: ``rpm``/``tpm`` (requests and tokens per minute; None:
    unlimited) and ``rps`` (requests per second, for services that also count by the
    second), ``timeout`` per attempt (seconds; None: none), ``max_attempts`` (the first
    included; only retryable errors are retried, honouring Retry-After), the breaker's
    ``fail_max`` consecutive faults and ``reset_timeout`` seconds, ``acquire_timeout`` (how
    long a call may wait for the rate limiter; None: as long as it takes), the limiter's
    ``storage`` URI (``memory://``, or ``redis://...`` to share limits across processes)
    and its ``strategy`` (see :class:`~otpy.resilience.Limit`): None (the default) counts
    the way the provider's service does (``Provider.rate_limit_strategy``: Anthropic a
    token bucket, Gemini and the others an exact rolling minute).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    rps: int | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=120.0, gt=0, allow_inf_nan=False)
    max_attempts: int = Field(default=3, ge=1)
    fail_max: int = Field(default=5, ge=1)
    reset_timeout: float = Field(default=30.0, ge=0, allow_inf_nan=False)
    acquire_timeout: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    storage: str = "memory://"
    strategy: (
        Literal[
            "rolling-window", "token-bucket", "moving-window", "sliding-window-counter",
            "fixed-window",
        ]
        | None
    ) = None  # fmt: skip

    @classmethod
    def coerce(
        cls, value: ProviderLimits | Mapping[str, Any] | None, *, provider: str
    ) -> ProviderLimits:
        """``value`` as ProviderLimits (None: the defaults; a mapping is validated).

        Raises ConfigurationError naming the provider and the offending field.
        """
        if value is None:
            return cls()
        if isinstance(value, ProviderLimits):
            return value
        if not isinstance(value, Mapping):
            raise ConfigurationError(
                f"provider {provider!r}: limits must be a ProviderLimits or a mapping, "
                f"got {value!r}"
            )
        try:
            return cls.model_validate(dict(value))
        except ValidationError as exc:
            problems = validation_problems(exc, prefix="limits.", empty="")
            raise ConfigurationError(f"provider {provider!r}: {problems}") from None


@dataclass(frozen=True, slots=True)
class ProviderGuard:
    """What :func:`build_guard` made: the guarded call and the stateful parts in it."""

    guard: Guarded[Completion]
    breaker: CircuitBreaker
    limiter: RateLimiter | None


class _Attempt:
    """The guarded function: one ``provider.complete`` attempt, timed into the stats.

    Runs in the caller's thread, or in the timeout's thread when ``limits.timeout`` is set.
    """

    __slots__ = ("clock", "provider", "provider_name", "stats")

    def __init__(self, name: str, provider: Provider, stats: ProviderStats, clock: Clock) -> None:
        self.provider_name = name
        self.provider = provider
        self.stats = stats
        self.clock = clock

    def __call__(self, request: CompletionRequest) -> Completion:
        started = self.clock.monotonic()
        completion = self.provider.complete(request)
        if not isinstance(completion, Completion):
            raise TypeError(
                f"provider {self.provider_name!r}: complete() returned "
                f"{type(completion).__name__}, not a Completion"
            )
        self.stats.record_latency(self.clock.monotonic() - started)
        return completion


class _Cost:
    __slots__ = ("provider", "requests", "tokens")

    def __init__(self, provider: Provider, requests: bool, tokens: bool) -> None:
        self.provider = provider
        self.requests = requests
        self.tokens = tokens

    def __call__(self, request: CompletionRequest) -> dict[str, int]:
        cost = {"requests": 1} if self.requests else {}
        if self.tokens:
            cost["tokens"] = self.provider.estimate_tokens(request)
        return cost


class _BreakerMirror(pybreaker.CircuitBreakerListener):
    """Copies the breaker's state name into ``stats.breaker_state`` on every transition
    (pybreaker calls it under the breaker's lock), so selection can skip a closed breaker
    without taking that lock. It hears this process's transitions only: selection reads a
    shared breaker (``breaker.shared``) itself."""

    def __init__(self, stats: ProviderStats) -> None:
        self.stats = stats

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self.stats.breaker_state = new_state.name


def _tokens_used(completion: Completion) -> dict[str, int]:
    return {"tokens": completion.usage.total_tokens}


def build_guard(
    name: str, provider: Provider, limits: ProviderLimits, stats: ProviderStats, clock: Clock
) -> ProviderGuard:
    """The guard for provider ``name``: a limiter with ``Limit("requests", "<rpm>/minute")``,
    ``Limit("requests", "<rps>/second")`` and ``Limit("tokens", "<tpm>/minute")`` for the
    ones set (none: no limiter), counted by ``limits.strategy`` or else the provider's
    ``rate_limit_strategy``, a breaker (``fail_max``, ``reset_timeout``, NOT_FAULTS
    excluded; its state on the limiter's Redis when ``limits.storage`` is one), ``max_attempts``
    retries and the per-attempt ``timeout``. Each attempt reserves one request and
    ``provider.estimate_tokens(request)`` tokens, and is settled with the tokens the
    completion reports. Raises ConfigurationError (e.g. a storage URI that cannot be used).
    """
    strategy: Any = limits.strategy or provider.rate_limit_strategy
    buckets = []
    if limits.rpm is not None:
        buckets.append(Limit("requests", f"{limits.rpm}/minute", strategy))
    if limits.rps is not None:
        buckets.append(Limit("requests", f"{limits.rps}/second", strategy))
    if limits.tpm is not None:
        buckets.append(Limit("tokens", f"{limits.tpm}/minute", strategy))
    limiter = (
        RateLimiter(buckets, limits.storage, clock=clock, name=f"provider:{name}")
        if buckets
        else None
    )
    breaker = CircuitBreaker(
        f"provider:{name}",
        fail_max=limits.fail_max,
        reset_timeout=limits.reset_timeout,
        exclude=NOT_FAULTS,
        state_storage=shared_breaker_storage(limits.storage, f"provider:{name}"),
        clock=clock,
    )
    stats.breaker_state = breaker.state
    breaker.add_listener(_BreakerMirror(stats))
    counts_requests = limits.rpm is not None or limits.rps is not None
    guarded: Guarded[Completion] = guard(
        _Attempt(name, provider, stats, clock),
        name=f"provider:{name}",
        limiter=limiter,
        breaker=breaker,
        retry=RetryPolicy(max_attempts=limits.max_attempts),
        timeout=limits.timeout,
        acquire_timeout=limits.acquire_timeout,
        cost=_Cost(provider, counts_requests, limits.tpm is not None) if limiter else None,
        usage=_tokens_used if limits.tpm is not None else None,
        clock=clock,
    )
    return ProviderGuard(guarded, breaker, limiter)
