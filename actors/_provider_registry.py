"""The ProviderRegistry GenServer (writes, one at a time) and its handle (reads, no mailbox).

The registry owns a :class:`~otpy._snapshot.Snapshot` of an immutable
:class:`~otpy.providers.ProviderTable`, made outside the actor and handed to every
incarnation: after each write the actor publishes a new table, then replies; the actor
only serialises writes. Readers (:class:`~otpy.providers.ProviderView`: ``select``,
``get_provider``, ``list_providers``, ``health``, ``complete``) read the current table in
their own thread without a lock or a message, and keep working while the actor restarts;
a restarted registry starts from the last table, so every provider and its breaker,
limiter and stats survive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from otpy._plugins import EntryPoints, PluginReport, load_plugins
from otpy._snapshot import Snapshot
from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import (
    ConfigurationError,
    DuplicateProviderError,
    OtpyError,
)
from otpy.providers import (
    Provider,
    ProviderEntry,
    ProviderLimits,
    ProviderTable,
    ProviderView,
    make_entry,
)
from otpy.supervision import ChildSpec, GenServer, NamedHandle
from otpy.telemetry import emit_safely

__all__ = ["PLUGIN_GROUP", "ProviderRegistry", "ProviderRegistryHandle"]


PLUGIN_GROUP = "otpy.providers"
"""The entry-point group providers are loaded from."""


class ProviderRegistry(GenServer):
    """The provider registry's writer: registers, unregisters and marks (un)healthy.

    Each write runs in the actor's thread, publishes a new table and returns. Invalid
    arguments raise ConfigurationError, a taken name DuplicateProviderError, an unknown one
    UnknownProviderError: all go back to the caller and the registry lives on. Use a
    :class:`ProviderRegistryHandle` rather than messaging it directly.
    """

    def __init__(self, snapshot: Snapshot[ProviderTable], *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__()
        self._snapshot = snapshot
        self._clock = clock

    def on_start(self) -> None:
        if not isinstance(self._snapshot.value, ProviderTable):
            raise ConfigurationError(
                f"ProviderRegistry needs a Snapshot of a ProviderTable, got "
                f"{self._snapshot.value!r}"
            )

    @classmethod
    def child_spec(
        cls, name: str, snapshot: Snapshot[ProviderTable], *, clock: Clock = SYSTEM_CLOCK
    ) -> ChildSpec:
        """A permanent child registered as ``name`` (also its id), sharing ``snapshot``."""
        return ChildSpec.actor(cls, snapshot, clock=clock, register_as=name)

    def register_provider(
        self,
        name: str,
        provider: Provider,
        capabilities: Iterable[str] | None = None,
        priority: int = 0,
        limits: ProviderLimits | Mapping[str, Any] | None = None,
        weight: float = 1.0,
        replace: bool = False,
    ) -> ProviderEntry:
        """Add ``provider`` as ``name`` (see ProviderRegistryHandle.register_provider)."""
        with self._snapshot.writing() as table:
            replaced = name in table
            if replaced and not replace:
                raise DuplicateProviderError(name)
            try:
                entry = make_entry(
                    name,
                    provider,
                    capabilities=capabilities,
                    priority=priority,
                    weight=weight,
                    limits=limits,
                    clock=self._clock,
                )
            except OtpyError:
                raise
            except Exception as exc:  # a provider's own code failed: refuse it, do not crash
                raise ConfigurationError(
                    f"provider {name!r} could not be registered: {type(exc).__name__}: {exc}"
                ) from exc
            self._snapshot.publish(table.with_entry(entry))
        emit_safely(
            "registry.provider_registered",
            metadata={
                "name": name,
                "capabilities": sorted(entry.capabilities),
                "priority": entry.priority,
                "replaced": replaced,
            },
        )
        return entry

    def unregister_provider(self, name: str) -> bool:
        """Remove ``name``; False if it was not registered. The provider is not closed."""
        with self._snapshot.writing() as table:
            if name not in table:
                return False
            self._snapshot.publish(table.without(name))
        emit_safely("registry.provider_unregistered", metadata={"name": name})
        return True

    def set_health(
        self,
        name: str,
        healthy: bool,
        reason: str = "",
        expected: ProviderEntry | None = None,
    ) -> None:
        """Mark ``name`` healthy (in selection) or not; UnknownProviderError if none. With
        ``expected``, only if ``name`` is still that registration (not replaced since)."""
        if not isinstance(healthy, bool):
            raise ConfigurationError(f"set_health: healthy must be True or False: {healthy!r}")
        reason = "" if healthy else str(reason)
        with self._snapshot.writing() as table:
            entry = table.require(name)
            if expected is not None and entry.stats is not expected.stats:
                return  # replaced since the caller looked: its verdict was about the old one
            if entry.healthy == healthy and entry.unhealthy_reason == reason:
                return
            self._snapshot.publish(table.with_entry(entry.with_health(healthy, reason)))
        emit_safely(
            "registry.provider_health",
            metadata={"name": name, "healthy": healthy, "reason": reason},
        )


class ProviderRegistryHandle(ProviderView):
    """What users hold (``rt.providers``): a :class:`~otpy.providers.ProviderView` (reads
    from the snapshot) whose writes go to the registry actor.

    Reads run in the caller's thread with no lock and no message, and keep working while
    the registry restarts. Writes are calls to the actor registered as ``name``
    (a :class:`~otpy.supervision.NamedHandle`, so they survive its restarts), waiting up to
    ``timeout`` seconds. ``strategy``, ``seed`` and ``clock`` are the view's.
    """

    def __init__(
        self,
        name: str,
        snapshot: Snapshot[ProviderTable],
        *,
        clock: Clock = SYSTEM_CLOCK,
        timeout: float | None = 5.0,
        seed: int | None = None,
        strategy: str = "priority",
    ) -> None:
        super().__init__(snapshot, clock=clock, seed=seed, strategy=strategy)
        self.name = name
        self._actor = NamedHandle(name, timeout=timeout)

    def __otpy_ref__(self) -> str:
        """For ``otpy.sys`` and ``otpy.observer``: the registry actor's registered name."""
        return self.name

    # -- writes (through the actor) -------------------------------------------------------

    def register_provider(
        self,
        name: str,
        provider: Provider,
        capabilities: Iterable[str] | None = None,
        priority: int = 0,
        limits: ProviderLimits | Mapping[str, Any] | None = None,
        weight: float = 1.0,
        replace: bool = False,
    ) -> ProviderEntry:
        """Register ``provider`` as ``name`` and return its entry, visible to every reader
        once this returns.

        ``capabilities`` default to ``provider.capabilities``; ``priority`` (higher first)
        and ``weight`` (> 0) steer selection; ``limits`` (ProviderLimits or a mapping of
        its fields) build the provider's guard. Raises DuplicateProviderError if the name
        is taken (unless ``replace``: the new entry gets a fresh guard and stats) and
        ConfigurationError naming a bad argument.
        """
        entry = self._actor.register_provider(
            name,
            provider,
            capabilities=capabilities,
            priority=priority,
            limits=limits,
            weight=weight,
            replace=replace,
        )
        return cast(ProviderEntry, entry)

    def unregister_provider(self, name: str) -> bool:
        """Remove ``name`` (False if there was none). Calls under way finish; the provider
        is not closed (its owner closes it)."""
        return bool(self._actor.unregister_provider(name))

    def set_health(
        self,
        name: str,
        healthy: bool,
        reason: str = "",
        expected: ProviderEntry | None = None,
    ) -> None:
        """Put ``name`` in selection (healthy) or take it out, with ``reason``. Used by
        the HealthMonitor, which re-evaluates every provider at each check and passes the
        entry it judged as ``expected`` (a registration replaced meanwhile is left alone)."""
        self._actor.set_health(name, healthy, reason, expected)

    def load_plugins(self, entry_points: EntryPoints | None = None) -> list[PluginReport]:
        """Register the providers of the ``otpy.providers`` entry-point group.

        Each entry point's object is a Provider instance or a Provider subclass (made with
        no arguments), registered under the entry point's name, or a callable taking this
        handle that registers providers itself. One that fails to load, is of another kind
        or cannot be registered is logged and skipped; the report says what happened.
        ``entry_points`` replaces the installed ones (a list, or a function of the group).
        """
        return load_plugins(PLUGIN_GROUP, self._accept_plugin, entry_points=entry_points)

    def _accept_plugin(self, name: str, obj: Any) -> None:
        if isinstance(obj, Provider):
            self.register_provider(name, obj)
        elif isinstance(obj, type) and issubclass(obj, Provider):
            self.register_provider(name, obj())
        elif callable(obj) and not isinstance(obj, type):
            obj(self)
        else:
            raise ConfigurationError(
                f"provider plugin {name!r}: expected a Provider instance, a Provider subclass "
                f"or a callable taking the registry handle, got {obj!r}"
            )

    def __repr__(self) -> str:
        return f"ProviderRegistryHandle({self.name!r}, {self._snapshot.value!r})"
