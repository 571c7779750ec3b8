"""The StepRegistry: step types registered at run time, read without a message.

Writes go to one actor, one at a time; after each it publishes a new immutable
:class:`~otpy.steps.StepTable` in a :class:`~otpy._snapshot.Snapshot` cell that the
runtime creates and hands to every incarnation, so a restarted registry keeps every
registration and reads never wait, not even while the actor is down::

    snapshot = Snapshot(StepTable())
    supervisor = Supervisor.start([StepRegistry.child_spec("rt.steps", snapshot)])
    steps = StepRegistryHandle("rt.steps", snapshot)
    steps.register_step("echo", Echo)           # a call to the actor
    steps.get_step("echo")                      # a read of the snapshot, in this thread
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from typing import Any

from otpy._plugins import EntryPoints, PluginReport
from otpy._snapshot import Snapshot
from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import ConfigurationError
from otpy.steps import (
    Step,
    StepEntry,
    StepMetadata,
    StepTable,
    StepValidator,
    load_step_plugins,
    make_entry,
    validate_step,
)
from otpy.supervision import ChildSpec, GenServer, NamedHandle, ServerRef
from otpy.telemetry import emit_safely

__all__ = ["StepRegistry", "StepRegistryHandle"]

logger = logging.getLogger("otpy.actors.steps")


class StepRegistry(GenServer):
    """The actor that owns the step table: validates and applies registrations.

    Its handlers run in its own thread, one at a time; each publishes the new table to
    ``snapshot`` before it replies, so the caller sees its change at once. Bad arguments
    raise OtpyErrors that go back to the caller while the registry lives on. It holds no
    state but the snapshot, which outlives it: a restart keeps every registration.
    """

    def __init__(self, snapshot: Snapshot[StepTable], *, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__()
        if not isinstance(snapshot, Snapshot):
            raise ConfigurationError(
                f"StepRegistry needs a Snapshot holding a StepTable, got {snapshot!r}"
            )
        self._snapshot = snapshot
        self._clock = clock

    @classmethod
    def child_spec(
        cls,
        name: str,
        snapshot: Snapshot[StepTable],
        *,
        clock: Clock = SYSTEM_CLOCK,
        id: Hashable = "steps",
    ) -> ChildSpec:
        """A permanent worker spec starting the registry under ``name`` over ``snapshot``
        (``dataclasses.replace`` it to change restart, shutdown or backoff)."""
        return ChildSpec.actor(cls, snapshot, id=id, register_as=name, clock=clock)

    def on_start(self) -> None:
        table = self._snapshot.value
        if not isinstance(table, StepTable):
            raise ConfigurationError(
                f"StepRegistry {self.actor_ref.name!r}: the snapshot holds {table!r}, "
                "not a StepTable"
            )
        logger.debug("%s started with %d step types", self, len(table))

    def register_step(
        self,
        name: str,
        step_cls: type[Step],
        validator: StepValidator | None = None,
        metadata: StepMetadata | Mapping[str, Any] | None = None,
        replace: bool = False,
    ) -> StepEntry:
        """Register (or with ``replace``, swap) a step type; see :class:`StepRegistryHandle`."""
        snapshot = self._snapshot
        with snapshot.writing() as table:
            entry = make_entry(
                name, step_cls, validator, metadata, registered_at=self._clock.time()
            )
            replaced = entry.name in table
            snapshot.publish(table.with_entry(entry, replace=bool(replace)))
        _emit("registry.step_registered", entry, replaced=replaced)
        return entry

    def unregister_step(self, name: str) -> bool:
        """Remove a step type; False if there was none (nothing is published then)."""
        if not isinstance(name, str):
            raise ConfigurationError(f"a step type name must be a str, got {name!r}")
        snapshot = self._snapshot
        with snapshot.writing() as table:
            entry = table.get(name)
            if entry is None:
                return False
            snapshot.publish(table.without(name))
        _emit("registry.step_unregistered", entry)
        return True


def _emit(event: str, entry: StepEntry, **more: Any) -> None:
    emit_safely(
        event, metadata={"name": entry.name, "version": entry.metadata.version, **more}
    )  # refused: logged, never undoing or crashing a registration


class StepRegistryHandle:
    """What user code holds (``rt.steps``): reads from the snapshot, writes to the actor.

    ``get_step``, ``has_step``, ``list_steps`` and ``validate_step`` read the current
    immutable table in the calling thread: no lock, no message, and they keep working
    while the actor is down or restarting. ``register_step`` and ``unregister_step`` call
    the actor registered under ``name`` (whichever incarnation is alive, waiting up to
    ``timeout`` seconds across a restart) and return once the new table is published.
    """

    __slots__ = ("_server", "_snapshot", "name")

    def __init__(
        self, name: str, snapshot: Snapshot[StepTable], timeout: float | None = 5.0
    ) -> None:
        self.name = name
        self._snapshot = snapshot
        self._server = NamedHandle(name, timeout=timeout)

    def __repr__(self) -> str:
        return f"StepRegistryHandle({self.name!r}, {len(self._snapshot.value)} step types)"

    def __otpy_ref__(self) -> str:
        """For ``otpy.sys`` and ``otpy.observer``: the actor's registered name."""
        return self.name

    @property
    def ref(self) -> ServerRef[Any] | None:
        """The registry actor's current incarnation, or None while it is down."""
        return self._server.ref

    @property
    def table(self) -> StepTable:
        """The current table: one consistent view for a series of reads."""
        return self._snapshot.value

    @property
    def snapshot_version(self) -> int:
        """How many tables have been published (one per successful write)."""
        return self._snapshot.version

    # -- writes: calls to the actor ---------------------------------------------------------

    def register_step(
        self,
        name: str,
        step_cls: type[Step],
        validator: StepValidator | None = None,
        metadata: StepMetadata | Mapping[str, Any] | None = None,
        replace: bool = False,
    ) -> StepEntry:
        """Register step type ``name`` served by ``step_cls``; returns its entry.

        ``validator`` (optional) runs after ``step_cls.validate`` in ``validate_step``;
        ``metadata`` (a StepMetadata or a dict of its fields) defaults to
        ``step_cls.metadata``. Raises ConfigurationError for an invalid name, class,
        validator or metadata, DuplicateStepError if the name is taken and not
        ``replace``; NoProcessError / CallTimeoutError if no registry answers in time.
        """
        entry: StepEntry = self._server.register_step(name, step_cls, validator, metadata, replace)
        return entry

    def unregister_step(self, name: str) -> bool:
        """Remove step type ``name``; False if it was not registered."""
        removed: bool = self._server.unregister_step(name)
        return removed

    def load_plugins(self, entry_points: EntryPoints | None = None) -> list[PluginReport]:
        """Register the ``otpy.steps`` plugins (see :func:`otpy.steps.load_step_plugins`);
        a broken one is logged and reported, never raised. Runs in the caller's thread."""
        return load_step_plugins(self, entry_points)

    # -- reads: the snapshot, in the caller's thread ---------------------------------------

    def get_step(self, name: str) -> StepEntry:
        """The entry of step type ``name``; UnknownStepError (known names, closest match)."""
        return self._snapshot.value.require(name)

    def has_step(self, name: str) -> bool:
        """Whether step type ``name`` is registered."""
        try:
            return name in self._snapshot.value
        except TypeError:
            return False

    def list_steps(self, capability: str | None = None) -> list[StepEntry]:
        """Every entry, or those declaring ``capability``, sorted by name."""
        return self._snapshot.value.list(capability)

    def validate_step(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a step config (its ``type`` resolved in the current table); returns the
        validated dict. StepValidationError / UnknownStepError otherwise; a validator that
        raises cannot hurt the registry: it runs here, in the caller's thread."""
        return validate_step(self._snapshot.value, config)
