"""Selection: which registered provider a call goes to, as plain functions of a table
(testable without threads or actors)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from otpy.errors import ConfigurationError, NoProviderAvailable
from otpy.providers._table import ProviderEntry, ProviderTable

__all__ = [
    "STRATEGIES",
    "by_least_latency",
    "by_least_loaded",
    "by_priority",
    "by_round_robin",
    "by_weighted",
    "candidates",
    "select",
]

STRATEGIES = ("priority", "round_robin", "least_latency", "least_loaded", "weighted")
"""The selection strategies ``select`` knows."""


def candidates(
    table: ProviderTable, capabilities: frozenset[str], exclude: frozenset[str] = frozenset()
) -> tuple[list[ProviderEntry], dict[str, str]]:
    """The entries selection may pick (sorted by name), and why each other entry having
    the ``capabilities`` was left out: excluded by the caller, unhealthy, breaker open."""
    chosen: list[ProviderEntry] = []
    left: dict[str, str] = {}
    for entry in table.ordered:
        if not capabilities <= entry.capabilities:
            continue
        if entry.name in exclude:
            left[entry.name] = "excluded by the caller"
        elif not entry.healthy:
            left[entry.name] = f"unhealthy: {entry.unhealthy_reason or 'marked unhealthy'}"
        else:
            refused = entry.refusal()
            if refused is None:
                chosen.append(entry)
            else:
                left[entry.name] = refused
    return chosen, left


def by_priority(entries: Sequence[ProviderEntry]) -> ProviderEntry:
    """The highest priority; ties go to the first name (``entries`` sorted by name)."""
    return max(entries, key=lambda e: e.priority)


def by_round_robin(entries: Sequence[ProviderEntry], turn: int) -> ProviderEntry:
    """The ``turn``-th entry, rotating over ``entries`` (sorted by name)."""
    return entries[turn % len(entries)]


def by_least_latency(entries: Sequence[ProviderEntry]) -> ProviderEntry:
    """The lowest recent answer time (``stats.recent_latency``, an EWMA); entries never
    called come first (so they get measured), by priority; entries called but never
    answered (every attempt failed) come last."""
    fresh = [e for e in entries if e.stats.total_calls == 0]
    if fresh:
        return by_priority(fresh)

    def key(entry: ProviderEntry) -> tuple[float, int]:
        recent = entry.stats.recent_latency
        return (math.inf if recent is None else recent, -entry.priority)

    return min(entries, key=key)


def by_least_loaded(entries: Sequence[ProviderEntry]) -> ProviderEntry:
    """The fewest calls in flight; ties by priority, then name."""
    return min(entries, key=lambda e: (e.stats.in_flight, -e.priority))


def by_weighted(entries: Sequence[ProviderEntry], rng: random.Random) -> ProviderEntry:
    """A random entry, each with probability ``weight / sum(weights)``."""
    return rng.choices(entries, weights=[e.weight for e in entries])[0]


def select(
    table: ProviderTable,
    capabilities: frozenset[str] = frozenset(),
    strategy: str = "priority",
    exclude: frozenset[str] = frozenset(),
    *,
    turn: int = 0,
    rng: random.Random | None = None,
) -> ProviderEntry:
    """Pick a provider having every capability, by ``strategy`` (one of STRATEGIES).

    ``turn`` is the round-robin position, ``rng`` the weighted strategy's random source.
    Raises ConfigurationError for an unknown strategy, NoProviderAvailable (saying why each
    capable provider was left out) when no candidate remains.
    """
    if strategy not in STRATEGIES:
        raise ConfigurationError(
            f"unknown selection strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}"
        )
    chosen, left = candidates(table, capabilities, exclude)
    if not chosen:
        raise NoProviderAvailable(sorted(capabilities), left)
    if len(chosen) == 1:
        return chosen[0]
    if strategy == "priority":
        return by_priority(chosen)
    if strategy == "round_robin":
        return by_round_robin(chosen, turn)
    if strategy == "least_latency":
        return by_least_latency(chosen)
    if strategy == "least_loaded":
        return by_least_loaded(chosen)
    return by_weighted(chosen, rng if rng is not None else random.Random())
