"""The provider table: immutable entries and the snapshot the registry publishes (the
selection strategies are in ``_select``, the read side as a whole in ``_view``).

An entry is immutable, but it holds the provider's live parts: its guard (rate limiter,
breaker) and its stats. A new table made by a write shares them with the old one, so a
health update or a registry restart never resets a provider's limits or counters.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from otpy.clock import Clock
from otpy.errors import ConfigurationError, UnknownProviderError
from otpy.providers._base import Completion, CompletionRequest, Provider
from otpy.providers._health import ProviderHealth, ProviderStats
from otpy.providers._limits import ProviderLimits, build_guard
from otpy.resilience import CircuitBreaker, Guarded, RateLimiter, RetryAttempt
from otpy.telemetry import emit_safely

__all__ = ["ProviderEntry", "ProviderTable", "as_capabilities", "make_entry"]


_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/@+\-]*$")


@dataclass(frozen=True, eq=False, repr=False)
class ProviderEntry:
    """One registered provider: the provider, what it can do, how it is called.

    ``guard`` (limiter -> breaker -> retry -> timeout) was built once from ``limits`` at
    registration; ``breaker``/``limiter`` are its stateful parts and ``stats`` its live
    health statistics. ``healthy``/``unhealthy_reason`` say whether selection may pick it.
    """

    name: str
    provider: Provider
    capabilities: frozenset[str]
    priority: int
    weight: float
    limits: ProviderLimits
    guard: Guarded[Completion]
    breaker: CircuitBreaker
    limiter: RateLimiter | None
    stats: ProviderStats
    healthy: bool = True
    unhealthy_reason: str = ""

    def with_health(self, healthy: bool, reason: str = "") -> ProviderEntry:
        """This entry marked (un)healthy; the provider's live parts are shared."""
        reason = "" if healthy else reason
        return dataclasses.replace(self, healthy=healthy, unhealthy_reason=reason)

    def refusal(self) -> str | None:
        """Why the breaker would refuse a call now, or None (closed, or a probe is due)."""
        breaker = self.breaker
        if self.stats.breaker_state == "closed" and not breaker.shared:
            return None  # the lock-free copy: the common case costs no lock
        state = breaker.state
        if state == "closed":
            return None
        if state == "open":
            wait = breaker.retry_in()
            return f"circuit breaker open (probe in {wait:.1f} s)" if wait > 0 else None
        if breaker.statistics().probe_in_flight:
            return "circuit breaker half-open, probe in flight"
        return None

    def health(self) -> ProviderHealth:
        """Its health now: the flag, breaker state, error rate, latencies, in-flight."""
        return ProviderHealth.of(
            self.name, self.healthy, self.unhealthy_reason, self.breaker, self.stats
        )

    def complete(
        self,
        request: CompletionRequest,
        *,
        clock: Clock | None = None,
        attempts: list[RetryAttempt] | None = None,
    ) -> Completion:
        """Call the provider through its guard, in this thread, and record the outcome.

        Counts the call in flight while it runs; every attempt that failed (from the
        guard's retry record) and the final success go into the stats; the provider's
        reported rate limits (``completion.rate_limits``) align the limiter; emits
        ``provider.call`` (measurements ``latency`` — the whole call, waits and retries
        included — ``tokens``, ``attempts`` and, for a rate-limited provider,
        ``admitted_at``: when the limiter admitted the last attempt, on the limiter's
        clock — the Redis server's epoch seconds for a shared limiter); metadata
        ``provider``, ``model``,
        ``outcome``: "ok" or the error's type name); ``clock`` times the whole call
        (default: the guard's); ``attempts``, when given, collects the failed attempts
        that were retried or ended the call. Raises what the guard raised: a ProviderError,
        CircuitOpenError, RateLimitTimeout, OperationTimeout, ...
        """
        guarded = self.guard
        runner = guarded.guard
        clock = clock or runner.clock
        stats = self.stats
        if attempts is None:
            attempts = []
        already = len(attempts)
        admitted: list[float] | None = [] if self.limiter is not None else None
        started = clock.monotonic()
        stats.begin()
        try:
            completion = runner.call(
                guarded.fn, request, cost=guarded.cost, usage=guarded.usage, retries=attempts,
                admitted=admitted,
            )  # fmt: skip
        except BaseException as exc:
            mine = attempts[already:]
            self._record(mine, exc)
            latency = clock.monotonic() - started
            self._report(request, None, exc, latency, len(mine), admitted)
            raise
        finally:
            stats.end()
        mine = attempts[already:]
        self._record(mine, None)
        self._align(completion)
        latency = clock.monotonic() - started
        self._report(request, completion, None, latency, len(mine) + 1, admitted)
        return completion

    def _align(self, completion: Completion) -> None:
        """Take the provider's own view of its limits (``completion.rate_limits``) where it
        is stricter than the limiter's, so the limiter's view matches the server's."""
        limiter = self.limiter
        if limiter is None or not completion.rate_limits:
            return
        dimensions = limiter.dimensions
        for reading in completion.rate_limits:
            if reading.remaining is not None and reading.dimension in dimensions:
                limiter.align(reading.dimension, reading.remaining)

    def _record(self, attempts: list[RetryAttempt], error: BaseException | None) -> None:
        stats = self.stats
        for attempt in attempts:
            stats.record_error(attempt.error)
        if error is None:
            stats.record_outcome(True)
        elif not any(attempt.error is error for attempt in attempts):
            stats.record_error(error)  # raised outside the attempts (e.g. estimate_tokens)

    def _report(
        self,
        request: CompletionRequest,
        completion: Completion | None,
        error: BaseException | None,
        latency: float,
        attempts: int,
        admitted: list[float] | None,
    ) -> None:
        measurements = {
            "latency": latency,
            "tokens": completion.usage.total_tokens if completion is not None else 0,
            "attempts": max(1, attempts),
        }
        if admitted:
            measurements["admitted_at"] = admitted[-1]
        emit_safely(
            "provider.call",
            measurements,
            {
                "provider": self.name,
                "model": completion.model if completion is not None else request.model,
                "outcome": "ok" if error is None else type(error).__name__,
            },
        )

    def __repr__(self) -> str:
        flag = "" if self.healthy else f" unhealthy ({self.unhealthy_reason})"
        caps = ",".join(sorted(self.capabilities))
        return f"<ProviderEntry {self.name!r} [{caps}] priority={self.priority}{flag}>"


def as_capabilities(
    value: str | Iterable[str] | None, *, what: str = "capabilities"
) -> frozenset[str]:
    """``value`` as a frozenset of capability names (a single string is one capability).

    Raises ConfigurationError for anything but non-empty strings.
    """
    if value is None:
        return frozenset()
    items = (value,) if isinstance(value, str) else value
    try:
        caps = frozenset(items)
    except TypeError:
        raise ConfigurationError(f"{what} must be strings, got {value!r}") from None
    bad = [c for c in caps if not isinstance(c, str) or not c]
    if bad:
        raise ConfigurationError(f"{what} must be non-empty strings, got {bad!r}")
    return caps


def make_entry(
    name: str,
    provider: Provider,
    *,
    capabilities: str | Iterable[str] | None = None,
    priority: int = 0,
    weight: float = 1.0,
    limits: ProviderLimits | Mapping[str, Any] | None = None,
    clock: Clock,
) -> ProviderEntry:
    """Check a registration and build its entry (guard, breaker, limiter, stats).

    Raises ConfigurationError naming the argument that is wrong.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(
            f"provider name must be a non-empty string of letters, digits and _.:/@+- "
            f"(not starting with a symbol), got {name!r}"
        )
    given: object = provider  # callers without type checks pass anything
    if not isinstance(given, Provider):
        kind = "a Provider class (instantiate it)" if isinstance(given, type) else "not one"
        raise ConfigurationError(
            f"provider {name!r}: provider must be a Provider instance, got {provider!r}, {kind}"
        )
    caps = as_capabilities(
        provider.capabilities if capabilities is None else capabilities,
        what=f"provider {name!r}: capabilities",
    )
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ConfigurationError(f"provider {name!r}: priority must be an int, got {priority!r}")
    if (
        isinstance(weight, bool)
        or not isinstance(weight, int | float)
        or not 0 < weight < float("inf")
    ):
        raise ConfigurationError(
            f"provider {name!r}: weight must be a finite number > 0, got {weight!r}"
        )
    settings = ProviderLimits.coerce(limits, provider=name)
    stats = ProviderStats(name)
    built = build_guard(name, provider, settings, stats, clock)
    return ProviderEntry(
        name=name,
        provider=provider,
        capabilities=caps,
        priority=priority,
        weight=float(weight),
        limits=settings,
        guard=built.guard,
        breaker=built.breaker,
        limiter=built.limiter,
        stats=stats,
    )


class ProviderTable:
    """An immutable table of provider entries by name (what the registry publishes).

    ``entries`` is a read-only mapping, ``ordered`` the entries sorted by name. Writes make
    a new table (``with_entry``, ``without``).
    """

    __slots__ = ("entries", "names", "ordered")

    def __init__(self, entries: Iterable[ProviderEntry] = ()) -> None:
        by_name = {entry.name: entry for entry in sorted(entries, key=lambda e: e.name)}
        self.entries: Mapping[str, ProviderEntry] = MappingProxyType(by_name)
        self.ordered: tuple[ProviderEntry, ...] = tuple(by_name.values())
        self.names: tuple[str, ...] = tuple(by_name)

    def get(self, name: str) -> ProviderEntry | None:
        """The entry ``name``, or None (also for a name that is not a str)."""
        return self.entries.get(name) if isinstance(name, str) else None

    def require(self, name: str) -> ProviderEntry:
        """The entry ``name``; UnknownProviderError (listing the known ones) if none."""
        entry = self.get(name)
        if entry is None:
            raise UnknownProviderError(name, self.names)
        return entry

    def with_entry(self, entry: ProviderEntry) -> ProviderTable:
        """A table with ``entry`` added, or replacing the entry of the same name."""
        return ProviderTable((*(e for e in self.ordered if e.name != entry.name), entry))

    def without(self, name: str) -> ProviderTable:
        """A table without ``name`` (the same table if it is not there)."""
        if name not in self:
            return self
        return ProviderTable(e for e in self.ordered if e.name != name)

    def list(self, capability: str | None = None) -> list[ProviderEntry]:
        """The entries (sorted by name), only those with ``capability`` if given."""
        if capability is None:
            return list(self.ordered)
        return [e for e in self.ordered if capability in e.capabilities]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.entries

    def __len__(self) -> int:
        return len(self.ordered)

    def __iter__(self) -> Iterator[ProviderEntry]:
        return iter(self.ordered)

    def __repr__(self) -> str:
        return f"ProviderTable({', '.join(self.names)})"
