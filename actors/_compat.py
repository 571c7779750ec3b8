"""The CompatibilityManager: registers the legacy step types and checks compatibility.

::

    supervisor = Supervisor.start([
        StepRegistry.child_spec("rt.steps", snapshot),
        CompatibilityManager.child_spec("rt.compat", steps),   # after the registry
    ])
    compat = CompatibilityHandle("rt.compat", steps)
    compat.migrate_pipeline(legacy_config).changes      # pure, in the caller's thread
    compat.check_versions({"claude": "^1.0"})           # [] when the registry satisfies it
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.compat import Incompatibility, MigrationResult, check_versions, migrate_pipeline
from otpy.errors import ConfigurationError, UnknownStepError
from otpy.state import StateProvider
from otpy.steps import Step
from otpy.steps.llm import BUILTIN_STEPS, builtin_step_types
from otpy.supervision import ChildSpec, GenServer, NamedHandle, ServerRef

__all__ = ["CompatibilityHandle", "CompatibilityManager", "CompatibilityStats", "StepsHandle"]

logger = logging.getLogger("otpy.actors.compat")


class StepsHandle(Protocol):
    """What the CompatibilityManager needs of a step registry (``StepRegistryHandle``)."""

    def register_step(
        self,
        name: str,
        step_cls: type[Step],
        validator: Any = None,
        metadata: Any = None,
        replace: bool = False,
    ) -> Any: ...

    def get_step(self, name: str) -> Any:
        """The entry of ``name`` (with ``.metadata.version``); UnknownStepError if none."""
        ...


@dataclass(frozen=True, slots=True)
class CompatibilityStats:
    """A snapshot of a CompatibilityManager incarnation: the step types it registered
    (in order), how many registration rounds it ran, and when the last one finished
    (its clock's epoch seconds)."""

    registered: tuple[str, ...]
    rounds: int
    last_registered_at: float | None


class CompatibilityManager(GenServer):
    """Registers every legacy step type (``BUILTIN_STEPS``) with the step registry.

    ``on_start`` registers them all with ``replace=True``, so a restarted manager (or a
    registry that already has them) registers again without error; a name the user has
    taken over with a step type of their own is left to them (never overwritten). Each
    registration is a call to the registry actor from this actor's thread; if one fails
    the start fails (its supervisor retries). ``session_store``, if given, is where
    ``claude_session`` keeps its sessions (default: the process-wide in-memory store).
    """

    def __init__(
        self,
        steps: StepsHandle,
        *,
        clock: Clock = SYSTEM_CLOCK,
        session_store: StateProvider | None = None,
    ) -> None:
        super().__init__()
        if session_store is not None and not isinstance(session_store, StateProvider):
            raise ConfigurationError(
                f"CompatibilityManager: session_store must be a StateProvider, "
                f"got {session_store!r}"
            )
        self._steps = steps
        self._clock = clock
        self._types = builtin_step_types(session_store)
        self._registered: list[str] = []
        self._rounds = 0
        self._last: float | None = None

    @classmethod
    def child_spec(
        cls,
        name: str,
        steps_handle: StepsHandle,
        clock: Clock = SYSTEM_CLOCK,
        session_store: StateProvider | None = None,
        *,
        id: Hashable = "compat",
    ) -> ChildSpec:
        """A permanent worker spec starting the manager under ``name``; start it after
        the step registry it registers into."""
        return ChildSpec.actor(
            cls, steps_handle, id=id, register_as=name, clock=clock, session_store=session_store
        )

    def on_start(self) -> None:
        self._register_all()

    def _register_all(self) -> list[str]:
        done: list[str] = []
        for name, step_cls in self._types.items():
            if self._taken_by_user(name):
                logger.info("%s: step type %r is the user's own; left as it is", self, name)
                continue
            self._steps.register_step(name, step_cls, replace=True)
            done.append(name)
            self._registered = list(done)
        self._rounds += 1
        self._last = self._clock.time()
        logger.debug("%s registered %d legacy step types", self, len(done))
        return done

    def _taken_by_user(self, name: str) -> bool:
        try:
            current = self._steps.get_step(name)
        except UnknownStepError:
            return False
        return not _is_legacy(current.step_cls)

    def reregister(self) -> list[str]:
        """Register every legacy type again (``replace=True``); returns their names."""
        return self._register_all()

    def registered(self) -> list[str]:
        """The legacy types this incarnation registered, in order."""
        return list(self._registered)

    def statistics(self) -> CompatibilityStats:
        return CompatibilityStats(tuple(self._registered), self._rounds, self._last)


def _is_legacy(step_cls: type) -> bool:
    """Whether ``step_cls`` is one of otpy's legacy step types (or a per-store variant)."""
    return step_cls.__module__.startswith("otpy.steps.llm.")


class CompatibilityHandle:
    """What user code holds (``rt.compat``); keeps working across the manager's restarts.

    ``legacy_steps``, ``migrate_pipeline`` and ``check_versions`` run in the caller's
    thread without a message (``check_versions`` reads the step registry's snapshot
    through ``steps_handle``); ``reregister`` and ``statistics`` call the manager
    registered under ``name`` (waiting up to ``timeout`` seconds across a restart).
    """

    __slots__ = ("_server", "_steps", "name")

    def __init__(self, name: str, steps_handle: StepsHandle, timeout: float | None = 5.0) -> None:
        self.name = name
        self._steps = steps_handle
        self._server = NamedHandle(name, timeout=timeout)

    def __repr__(self) -> str:
        return f"CompatibilityHandle({self.name!r})"

    def __otpy_ref__(self) -> str:
        """For ``otpy.sys`` and ``otpy.observer``: the actor's registered name."""
        return self.name

    @property
    def ref(self) -> ServerRef[Any] | None:
        """The manager's current incarnation, or None while it is down."""
        return self._server.ref

    def legacy_steps(self) -> list[str]:
        """The names of the legacy step types the manager registers."""
        return list(BUILTIN_STEPS)

    def migrate_pipeline(self, config: Mapping[str, Any]) -> MigrationResult:
        """See :func:`otpy.compat.migrate_pipeline` (pure; no message)."""
        return migrate_pipeline(config)

    def check_versions(self, requirements: Mapping[str, str]) -> list[Incompatibility]:
        """What of ``requirements`` (step type -> version requirement) the registry's
        current step types do not satisfy; see :func:`otpy.compat.check_versions`."""
        registered: dict[str, str] = {}
        for name in requirements:
            try:
                entry = self._steps.get_step(name)
            except UnknownStepError:
                continue
            registered[name] = entry.metadata.version
        return check_versions(requirements, registered)

    def _taken_by_user(self, name: str) -> bool:
        try:
            current = self._steps.get_step(name)
        except UnknownStepError:
            return False
        return not _is_legacy(current.step_cls)

    def reregister(self) -> list[str]:
        """Have the manager register every legacy type again; returns their names."""
        names: list[str] = self._server.reregister()
        return names

    def statistics(self) -> CompatibilityStats:
        """The manager's :class:`CompatibilityStats`."""
        stats: CompatibilityStats = self._server.statistics()
        return stats
