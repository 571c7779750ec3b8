"""Provider health: live per-provider statistics, the ``ProviderHealth`` snapshot, and the
pure rule that says whether a provider is fit for selection.

``ProviderStats`` is mutated by every caller's thread (it is shared by all the snapshots an
entry appears in), so it is thread-safe; everything else here is immutable or pure and is
tested without threads.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

from otpy._checks import is_finite_number
from otpy.errors import CircuitOpenError, ConfigurationError
from otpy.resilience import NOT_FAULTS, CircuitBreaker
from otpy.telemetry import Histogram, redact_value

__all__ = [
    "HealthRule",
    "ProviderHealth",
    "ProviderStats",
    "StatsSnapshot",
    "Verdict",
    "assess",
    "decide",
    "is_fault",
]

WINDOW = 100
"""Outcomes kept per provider for the error rate (the last N calls that reached it)."""

# Errors that say nothing about the provider's health: the breaker's NOT_FAULTS, and a
# refusal by the breaker itself (the call never reached the provider).
_NOT_FAULTS: tuple[type[BaseException], ...] = (*NOT_FAULTS, CircuitOpenError)


def is_fault(exc: BaseException) -> bool:
    """Whether ``exc`` counts against the provider's health: any ``Exception`` except the
    ones that are not the provider's doing (a wrong request, its 429, our own rate limiter,
    an open breaker). ``BaseException``\\ s such as ``KeyboardInterrupt`` are not faults."""
    return isinstance(exc, Exception) and not isinstance(exc, _NOT_FAULTS)


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """A consistent moment of a :class:`ProviderStats`."""

    in_flight: int
    calls: int  # outcomes in the window
    failures: int  # faults in the window
    error_rate: float  # failures / calls (0.0 with no calls)
    latency_p50: float | None
    latency_p99: float | None
    latency_count: int
    last_error: str | None
    total_calls: int  # complete() calls since registration
    total_failures: int  # faults since registration


EWMA_ALPHA = 0.2
"""Weight of the newest answer time in ``ProviderStats.recent_latency``."""


class ProviderStats:
    """Live statistics of one provider, shared by every thread that calls it.

    - ``in_flight``: ``complete`` calls under way (rate-limit waits and retries included).
    - latency: seconds each attempt took to *answer* (successful attempts only, measured on
      the registry's clock around ``provider.complete``), in a
      :class:`~otpy.telemetry.Histogram`.
    - the error window: the outcomes of the last ``window`` attempts that reached the
      provider (success, or a fault per :func:`is_fault`; a timed-out attempt is a fault).
    - ``last_error``: the last error of any kind, as ``"Type: message"``.
    - ``breaker_state``: the guard's breaker state as of its last transition (a lock-free
      copy for selection; an open breaker may already admit a probe).

    ``reset()`` forgets the window and the latencies (not ``in_flight`` nor the totals):
    the health monitor does so when it puts a provider back on probation. Every method
    takes one short lock and never blocks otherwise.
    """

    __slots__ = (
        "_ewma",
        "_failures",
        "_in_flight",
        "_last_error",
        "_lock",
        "_outcomes",
        "_total_calls",
        "_total_failures",
        "breaker_state",
        "latency",
        "name",
        "window",
    )

    def __init__(self, name: str, window: int = WINDOW) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigurationError(f"provider {name!r}: window must be an int >= 1: {window!r}")
        self.name = name
        self.window = window
        self.latency = Histogram("provider.latency", {"provider": name})
        self._lock = threading.Lock()
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._failures = 0
        self._in_flight = 0
        self._last_error: str | None = None
        self._total_calls = 0
        self._total_failures = 0
        self._ewma: float | None = None
        self.breaker_state = "closed"  # mirrored by the guard's breaker (see _limits.py)

    # -- recording (any thread) -----------------------------------------------------------

    def begin(self) -> None:
        """A call starts: one more in flight."""
        with self._lock:
            self._in_flight += 1
            self._total_calls += 1

    def end(self) -> None:
        """A call ended (whatever its outcome): one fewer in flight."""
        with self._lock:
            self._in_flight -= 1

    def record_latency(self, seconds: float) -> None:
        """One attempt answered after ``seconds``."""
        seconds = max(0.0, seconds)
        self.latency.record(seconds)
        with self._lock:
            ewma = self._ewma
            self._ewma = seconds if ewma is None else ewma + EWMA_ALPHA * (seconds - ewma)

    def record_outcome(self, ok: bool) -> None:
        """One attempt reached the provider and succeeded (``ok``) or failed with a fault."""
        with self._lock:
            if len(self._outcomes) == self.window and not self._outcomes[0]:
                self._failures -= 1  # the oldest outcome, a failure, drops out
            self._outcomes.append(ok)
            if not ok:
                self._failures += 1
                self._total_failures += 1

    def record_error(self, exc: BaseException) -> None:
        """Remember ``exc`` as the last error; count it in the window if it is a fault."""
        text = str(redact_value(f"{type(exc).__name__}: {exc}"))  # shown by health(), logs
        with self._lock:
            self._last_error = text
        if is_fault(exc):
            self.record_outcome(False)

    def reset(self) -> None:
        """Forget the error window and the latencies (in-flight calls and totals stay)."""
        with self._lock:
            self._outcomes.clear()
            self._failures = 0
            self._ewma = None
        self.latency.reset()

    # -- reading --------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def total_calls(self) -> int:
        """``complete`` calls since registration (answered or not)."""
        return self._total_calls

    @property
    def recent_latency(self) -> float | None:
        """The answer time, exponentially weighted toward the latest answers (alpha
        ``EWMA_ALPHA``); None before the first answer. O(1): what selection reads."""
        return self._ewma

    def latency_p50(self) -> float | None:
        """The median answer time so far, or None before the first answer."""
        return self.latency.percentile(50) if self.latency.count else None

    def statistics(self) -> StatsSnapshot:
        """A frozen snapshot of the counters, the window and the latency percentiles."""
        summary = self.latency.summary()
        with self._lock:
            calls = len(self._outcomes)
            return StatsSnapshot(
                in_flight=self._in_flight,
                calls=calls,
                failures=self._failures,
                error_rate=self._failures / calls if calls else 0.0,
                latency_p50=summary["p50"],
                latency_p99=summary["p99"],
                latency_count=summary["count"],
                last_error=self._last_error,
                total_calls=self._total_calls,
                total_failures=self._total_failures,
            )

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<ProviderStats {self.name!r} in_flight={s.in_flight} "
            f"error_rate={s.error_rate:.2f}/{s.calls} p50={s.latency_p50}>"
        )


BreakerState = Literal["closed", "open", "half-open"]


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    """How one provider is doing, at one moment (``ProviderRegistryHandle.health()``).

    ``healthy``/``reason``: whether it is in selection (set by the health monitor);
    ``breaker_state`` and ``breaker_retry_in`` (seconds until an open breaker admits a
    probe); ``error_rate`` over the last ``calls`` attempts that reached it; answer latency
    percentiles in seconds (None before the first answer); calls ``in_flight``; the
    ``last_error`` as ``"Type: message"``.
    """

    name: str
    healthy: bool
    reason: str
    breaker_state: BreakerState
    error_rate: float
    calls: int
    latency_p50: float | None
    latency_p99: float | None
    in_flight: int
    last_error: str | None
    breaker_retry_in: float = 0.0

    @property
    def breaker_refusing(self) -> bool:
        """Whether the breaker refuses calls now (open, its reset timeout not yet over)."""
        return self.breaker_state == "open" and self.breaker_retry_in > 0

    @classmethod
    def of(
        cls,
        name: str,
        healthy: bool,
        reason: str,
        breaker: CircuitBreaker,
        stats: ProviderStats,
    ) -> ProviderHealth:
        """Read a provider's breaker and stats now."""
        b = breaker.statistics()
        s = stats.statistics()
        return cls(
            name=name,
            healthy=healthy,
            reason=reason,
            breaker_state=b.state,
            error_rate=s.error_rate,
            calls=s.calls,
            latency_p50=s.latency_p50,
            latency_p99=s.latency_p99,
            in_flight=s.in_flight,
            last_error=s.last_error,
            breaker_retry_in=b.retry_in,
        )


def _seconds(what: str, value: object, *, zero_ok: bool) -> None:
    if not is_finite_number(value) or value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ConfigurationError(f"health rule: {what} must be a finite number {bound}: {value!r}")


@dataclass(frozen=True, slots=True)
class HealthRule:
    """When a provider leaves selection and when it comes back.

    Out (any of): its breaker refuses calls; an error rate ``>= error_rate`` over at least
    ``min_calls`` attempts in the window; latency p99 ``> latency_p99`` seconds (if set);
    its ``health_check()`` raised or returned False.

    Back: at once when none of those holds any more. A provider out of selection gets no
    traffic, so its window and latencies cannot improve by themselves: once it has been
    out ``recover_after`` seconds and neither its breaker nor its ``health_check`` (live
    evidence) holds it back, it returns *on probation*: its window and latencies are reset
    and its breaker decides from the next calls (failures trip it, and the next check takes
    the provider out again).
    """

    error_rate: float = 0.5
    min_calls: int = 10
    latency_p99: float | None = None
    recover_after: float = 30.0

    def __post_init__(self) -> None:
        rate = self.error_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
            raise ConfigurationError(f"health rule: error_rate must be in (0, 1]: {rate!r}")
        calls = self.min_calls
        if isinstance(calls, bool) or not isinstance(calls, int) or calls < 1:
            raise ConfigurationError(f"health rule: min_calls must be an int >= 1: {calls!r}")
        if self.latency_p99 is not None:
            _seconds("latency_p99", self.latency_p99, zero_ok=False)
        _seconds("recover_after", self.recover_after, zero_ok=True)


def assess(health: ProviderHealth, rule: HealthRule, check_failure: str | None = None) -> str:
    """Why ``health`` breaks ``rule`` ("" when it does not). ``check_failure`` is what the
    provider's own ``health_check`` said, if it failed."""
    reasons = []
    if health.breaker_refusing:
        reasons.append(f"circuit breaker open (probe in {health.breaker_retry_in:.1f} s)")
    if health.calls >= rule.min_calls and health.error_rate >= rule.error_rate:
        reasons.append(
            f"error rate {health.error_rate:.0%} over the last {health.calls} calls "
            f"(limit {rule.error_rate:.0%})"
        )
    p99 = health.latency_p99
    if rule.latency_p99 is not None and p99 is not None and p99 > rule.latency_p99:
        reasons.append(f"latency p99 {p99:.3f} s over {rule.latency_p99:g} s")
    if check_failure is not None:
        reasons.append(f"health_check failed: {check_failure}")
    return "; ".join(reasons)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A change to make: set ``healthy`` (with ``reason``); ``probation``: reset its stats
    first (it comes back without the evidence that took it out)."""

    healthy: bool
    reason: str = ""
    probation: bool = False


def decide(
    health: ProviderHealth,
    rule: HealthRule,
    *,
    check_failure: str | None = None,
    out_for: float = 0.0,
) -> Verdict | None:
    """The change :class:`HealthRule` asks for, or None to leave the provider as it is.

    ``out_for``: seconds the provider has been out of selection (for an unhealthy one).
    """
    reason = assess(health, rule, check_failure)
    if health.healthy:
        return Verdict(False, reason) if reason else None
    if not reason:
        return Verdict(True)
    if health.breaker_refusing or check_failure is not None:
        return None  # live evidence holds it back
    if out_for >= rule.recover_after:
        return Verdict(True, probation=True)
    return None
