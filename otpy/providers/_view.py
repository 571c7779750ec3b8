"""The read side of the provider directory: a :class:`ProviderView` reads the table the
registry publishes, in the caller's thread, without a lock or a message.

``rt.providers`` (the registry's handle) is a ProviderView that also writes through the
registry actor; the view alone is all a reader needs (the pipeline executor, the health
monitor, a step's gateway): the current table, one entry, the entries with a capability,
selection by strategy, a guarded ``complete``, and every provider's health.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator

from otpy._snapshot import Snapshot
from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import ConfigurationError, NoProviderAvailable
from otpy.providers._base import Completion, CompletionRequest
from otpy.providers._health import ProviderHealth
from otpy.providers._select import STRATEGIES, select
from otpy.providers._table import ProviderEntry, ProviderTable, as_capabilities

__all__ = ["ProviderView"]

_NO_CAPS: frozenset[str] = frozenset()


class ProviderView:
    """Reads of the provider table in ``snapshot`` (see the module docstring).

    ``strategy`` is the default selection strategy; ``seed`` seeds the weighted
    strategy's random source; ``clock`` times whole ``complete`` calls. Implements
    :class:`~otpy.providers.ProviderGateway`. Every method runs in the caller's thread and
    never waits on an actor, so reads keep working while the registry restarts.
    """

    def __init__(
        self,
        snapshot: Snapshot[ProviderTable],
        *,
        clock: Clock = SYSTEM_CLOCK,
        seed: int | None = None,
        strategy: str = "priority",
    ) -> None:
        if strategy not in STRATEGIES:
            raise ConfigurationError(
                f"unknown selection strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}"
            )
        self.strategy = strategy
        self._snapshot = snapshot
        self._clock = clock
        self._rng = random.Random(seed)
        # One rotation per capability set. next() on an itertools.count is atomic in
        # CPython (C code under the GIL) and dict.setdefault keeps the first counter
        # stored, so concurrent selects share the rotation without a lock.
        self._turns: dict[frozenset[str], Iterator[int]] = {}

    @classmethod
    def of(cls, entries: Iterable[ProviderEntry], *, clock: Clock = SYSTEM_CLOCK) -> ProviderView:
        """A view of a table of ``entries`` that nothing writes (no registry behind it:
        the providers a Ray worker made from the runtime config)."""
        return cls(Snapshot(ProviderTable(entries)), clock=clock)

    @property
    def table(self) -> ProviderTable:
        """The current table."""
        return self._snapshot.value

    @property
    def snapshot_version(self) -> int:
        """How many tables the registry has published."""
        return self._snapshot.version

    def get_provider(self, name: str) -> ProviderEntry:
        """The entry ``name``; UnknownProviderError (listing the registered ones) if none."""
        return self._snapshot.value.require(name)

    def list_providers(self, capability: str | None = None) -> list[ProviderEntry]:
        """Every entry sorted by name, or only those with ``capability``."""
        return self._snapshot.value.list(capability)

    def select(
        self,
        capabilities: str | Iterable[str] = (),
        strategy: str | None = None,
        exclude: str | Iterable[str] = (),
    ) -> ProviderEntry:
        """A healthy provider with every capability whose breaker admits calls, picked by
        ``strategy`` (default: the handle's): priority, round_robin, least_latency,
        least_loaded or weighted.

        Raises NoProviderAvailable (saying why each capable provider was left out) or
        ConfigurationError for an unknown strategy. Never waits on the actor.
        """
        caps = as_capabilities(capabilities) if capabilities else _NO_CAPS
        skip = as_capabilities(exclude, what="exclude") if exclude else _NO_CAPS
        strategy = self.strategy if strategy is None else strategy
        turn = 0
        if strategy == "round_robin":
            counter = self._turns.get(caps)
            if counter is None:
                counter = self._turns.setdefault(caps, itertools.count())
            turn = next(counter)
        return select(self._snapshot.value, caps, strategy, skip, turn=turn, rng=self._rng)

    def complete(
        self,
        request: CompletionRequest,
        *,
        provider: str | None = None,
        capabilities: str | Iterable[str] = (),
        strategy: str | None = None,
    ) -> Completion:
        """Complete ``request`` on the provider named ``provider`` (called even if it is
        unhealthy: the caller asked for it; NoProviderAvailable if it lacks a capability
        asked for) or else on one ``select(capabilities, strategy)`` picks.

        Runs in the caller's thread through the provider's guard (it may wait for the rate
        limiter and between retries) and records the outcome in the provider's stats.
        Raises UnknownProviderError, NoProviderAvailable, or what the guard raised.
        """
        if not isinstance(request, CompletionRequest):
            raise ConfigurationError(f"complete needs a CompletionRequest, got {request!r}")
        if provider is None:
            entry = self.select(capabilities, strategy)
        else:
            entry = self._snapshot.value.require(provider)
            wanted = as_capabilities(capabilities)
            missing = wanted - entry.capabilities
            if missing:
                raise NoProviderAvailable(
                    sorted(wanted), {provider: f"lacks {', '.join(sorted(missing))}"}
                )
        return entry.complete(request, clock=self._clock)

    def health(self) -> dict[str, ProviderHealth]:
        """Every provider's health now, by name."""
        return {entry.name: entry.health() for entry in self._snapshot.value.ordered}
