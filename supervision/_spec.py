"""``ChildSpec``: how a supervisor starts, restarts and stops one child."""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

from pykka import ActorRef

from otpy.errors import ChildSpecError

from ._policy import Backoff

__all__ = ["ChildSpec", "Restart", "Shutdown"]

Restart: TypeAlias = Literal["permanent", "transient", "temporary"]
Shutdown: TypeAlias = float | Literal["brutal_kill"] | None
"""Seconds to wait for a clean exit before killing; ``"brutal_kill"``; None = infinity."""

RESTARTS: Final = ("permanent", "transient", "temporary")
TYPES: Final = ("worker", "supervisor")
WORKER_SHUTDOWN: Final = 5.0

_DEFAULT: Any = object()


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """A child of a supervisor.

    - ``id``: unique within the supervisor (any hashable).
    - ``start``: zero-argument callable returning a started GenServer ref
      (:meth:`ChildSpec.actor` builds one); run in the supervisor's thread.
    - ``restart``: ``"permanent"`` always restarted, ``"transient"`` only after an
      abnormal exit (not normal/shutdown), ``"temporary"`` never (its spec is dropped).
    - ``shutdown``: seconds to wait for a clean exit before it is killed, ``"brutal_kill"``
      or None / ``"infinity"``; default 5.0 for workers, infinity for supervisors.
    - ``type``: ``"worker"`` or ``"supervisor"``.
    - ``significant``: its own exit may shut the supervisor down (``auto_shutdown``);
      not allowed on permanent children.
    - ``backoff``: an optional :class:`Backoff` delaying its restarts.
    """

    id: Hashable = None
    start: Callable[[], Any] | None = None
    restart: Restart = "permanent"
    shutdown: Shutdown | str = field(default=_DEFAULT)
    type: Literal["worker", "supervisor"] = "worker"
    significant: bool = False
    backoff: Backoff | None = None

    def __post_init__(self) -> None:
        cid = self.id
        if cid is None or cid == "":
            raise ChildSpecError("id is required", field="id")
        try:
            hash(cid)
        except TypeError:
            raise ChildSpecError(f"id must be hashable, got {cid!r}", field="id") from None
        if self.start is None:
            raise ChildSpecError("start is required", child_id=cid, field="start")
        if not callable(self.start):
            raise ChildSpecError(
                f"start must be a zero-argument callable returning a started actor ref, "
                f"got {self.start!r}",
                child_id=cid,
                field="start",
            )
        if self.restart not in RESTARTS:
            raise ChildSpecError(
                f"restart must be one of {', '.join(RESTARTS)}; got {self.restart!r}",
                child_id=cid,
                field="restart",
            )
        if self.type not in TYPES:
            raise ChildSpecError(
                f"type must be 'worker' or 'supervisor'; got {self.type!r}",
                child_id=cid,
                field="type",
            )
        object.__setattr__(self, "shutdown", _check_shutdown(cid, self.shutdown, self.type))
        if not isinstance(self.significant, bool):
            raise ChildSpecError(
                f"significant must be True or False; got {self.significant!r}",
                child_id=cid,
                field="significant",
            )
        if self.significant and self.restart == "permanent":
            raise ChildSpecError(
                "a permanent child cannot be significant (use transient or temporary)",
                child_id=cid,
                field="significant",
            )
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise ChildSpecError(
                f"backoff must be a Backoff or None; got {self.backoff!r}",
                child_id=cid,
                field="backoff",
            )

    @classmethod
    def actor(
        cls,
        actor_class: builtins.type[Any],
        *args: Any,
        id: Hashable = None,
        register_as: str | None = None,
        restart: Restart = "permanent",
        shutdown: Shutdown | str = _DEFAULT,
        type: Literal["worker", "supervisor"] = "worker",
        significant: bool = False,
        backoff: Backoff | None = None,
        **kwargs: Any,
    ) -> ChildSpec:
        """A spec whose start is ``actor_class.start(*args, **kwargs)``.

        ``id`` defaults to ``register_as`` or the class name; with ``register_as`` the
        actor is started under that name (``start_named``), so ``whereis`` finds every
        incarnation.
        """
        if register_as is not None:

            def start() -> Any:
                return actor_class.start_named(register_as, *args, **kwargs)

        else:

            def start() -> Any:
                return actor_class.start(*args, **kwargs)

        return cls(
            id=id if id is not None else (register_as or actor_class.__name__),
            start=start,
            restart=restart,
            shutdown=shutdown,
            type=type,
            significant=significant,
            backoff=backoff,
        )

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> ChildSpec:
        """Build a spec from a mapping with the same keys; unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(spec) - known, key=str)
        if unknown:
            names = ", ".join(map(repr, unknown))
            raise ChildSpecError(
                f"unknown key(s) {names}; known: {', '.join(sorted(known))}",
                child_id=spec.get("id"),
            )
        return cls(**spec)

    @classmethod
    def coerce(cls, spec: ChildSpec | Mapping[str, Any]) -> ChildSpec:
        """Accept a ChildSpec or a mapping (see :meth:`from_dict`)."""
        if isinstance(spec, ChildSpec):
            return spec
        if isinstance(spec, Mapping):
            return cls.from_dict(spec)
        raise ChildSpecError(f"a child must be a ChildSpec or a dict, got {spec!r}")


def _check_shutdown(cid: Hashable, shutdown: Any, child_type: str) -> Shutdown:
    if shutdown is _DEFAULT:
        return WORKER_SHUTDOWN if child_type == "worker" else None
    if shutdown is None or shutdown == "infinity":
        return None
    if shutdown == "brutal_kill":
        return "brutal_kill"
    if (
        isinstance(shutdown, (int, float))
        and not isinstance(shutdown, bool)
        and shutdown >= 0
        and math.isfinite(shutdown)
    ):
        return float(shutdown)
    raise ChildSpecError(
        f"shutdown must be seconds >= 0, 'brutal_kill', 'infinity' or None; got {shutdown!r}",
        child_id=cid,
        field="shutdown",
    )


def as_server_ref(child_id: Hashable, started: Any) -> Any:
    """The ServerRef a child's start returned; raises ChildSpecError naming the child."""
    from ._ref import ServerRef

    if isinstance(started, ServerRef):
        return started
    if isinstance(started, ActorRef):
        started.stop(block=False)
    raise ChildSpecError(
        f"start must return a started GenServer ref (ServerRef), got {started!r}",
        child_id=child_id,
        field="start",
    )
