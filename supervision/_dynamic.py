"""``DynamicSupervisor``: one_for_one over children added at run time (Elixir's)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, cast

from otpy.clock import Clock
from otpy.errors import ChildNotFoundError, ChildSpecError, MaxChildrenError

from ._base import SupervisorBase
from ._child import Child
from ._ref import ServerRef
from ._spec import ChildSpec
from ._supervisor import _AdminRef

__all__ = ["DynamicSupervisor", "DynamicSupervisorRef"]


class DynamicSupervisorRef(_AdminRef):
    """A running :class:`DynamicSupervisor`; every method is a call into its thread."""

    def start_child(self, spec: ChildSpec | Mapping[str, Any]) -> ServerRef[Any]:
        """Start a child and return its ref. MaxChildrenError at ``max_children``;
        StartChildError if its start fails (nothing is kept)."""
        return cast("ServerRef[Any]", self._invoke("start_child", spec))

    def terminate_child(self, ref: ServerRef[Any]) -> None:
        """Stop the child currently running as ``ref`` and forget it (ChildNotFoundError
        if it is not a child of this supervisor)."""
        self._invoke("terminate_child", ref)


class DynamicSupervisor(SupervisorBase):
    """Supervises any number of children started on demand, each restarted on its own.

    Child ids need not be unique. ``max_children`` caps live plus restarting children.
    A child that is not restarted (temporary, or transient after a normal exit) is
    forgotten. On stop, all children are asked to shut down at once, each with its own
    shutdown timeout.
    """

    ref_class = DynamicSupervisorRef

    def __init__(
        self,
        *,
        max_children: int | None = None,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        if max_children is not None and (
            isinstance(max_children, bool) or not isinstance(max_children, int) or max_children < 0
        ):
            raise ChildSpecError(
                f"must be an int >= 0 or None, got {max_children!r}", field="max_children"
            )
        super().__init__(max_restarts=max_restarts, max_seconds=max_seconds, clock=clock)
        self.max_children = max_children
        self._keys = itertools.count()

    @classmethod
    def start(
        cls,
        *,
        max_children: int | None = None,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> DynamicSupervisorRef:
        """Start an empty dynamic supervisor."""
        kwargs = dict(
            max_children=max_children,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            clock=clock,
        )
        return cast(DynamicSupervisorRef, cls._spawn(name, (), kwargs))

    @classmethod
    def start_named(cls, name: str, /, *args: Any, **kwargs: Any) -> DynamicSupervisorRef:
        """:meth:`start` registered under ``name``."""
        return cls.start(*args, name=name, **kwargs)

    def _exited_for_good(self, child: Child, reason: Any) -> None:
        self._remove(child)

    def _terminate_all(self) -> None:
        self._halt_concurrently(list(self._children.values()))

    # -- calls ----------------------------------------------------------------------------

    def start_child(self, spec: ChildSpec | Mapping[str, Any]) -> ServerRef[Any]:
        spec = ChildSpec.coerce(spec)
        if spec.significant:
            raise ChildSpecError(
                "a DynamicSupervisor has no auto_shutdown; children cannot be significant",
                child_id=spec.id,
                field="significant",
            )
        if self.max_children is not None and len(self._children) >= self.max_children:
            raise MaxChildrenError(self.max_children)
        child = Child(next(self._keys), spec)
        ref = self._launch(child)
        self._children[child.key] = child
        return ref

    def terminate_child(self, ref: ServerRef[Any]) -> None:
        child = next(
            (c for c in self._children.values() if c.ref is ref or c.last_ref is ref), None
        )
        if child is None:
            raise ChildNotFoundError(ref)
        self._halt(child)
        self._remove(child)
