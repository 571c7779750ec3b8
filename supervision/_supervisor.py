"""``Supervisor``: OTP's supervisor with one_for_one, one_for_all and rest_for_one."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Final, Literal, TypeAlias, cast

from pykka.messages import ProxyCall

from otpy.clock import Clock
from otpy.errors import (
    AlreadyPresentError,
    AlreadyStartedError,
    ChildNotFoundError,
    ChildRestartingError,
    ChildRunningError,
    ChildSpecError,
    DuplicateChildError,
)

from ._base import SupervisorBase
from ._child import Child, ChildCounts, ChildInfo, SupervisorStats
from ._ref import ServerRef
from ._spec import ChildSpec

__all__ = ["Supervisor", "SupervisorRef"]

logger = logging.getLogger("otpy.supervision")

Strategy: TypeAlias = Literal["one_for_one", "one_for_all", "rest_for_one"]
AutoShutdown: TypeAlias = Literal["never", "any_significant", "all_significant"]
STRATEGIES: Final = ("one_for_one", "one_for_all", "rest_for_one")
AUTO_SHUTDOWNS: Final = ("never", "any_significant", "all_significant")


class _AdminRef(ServerRef[Any]):
    """Shared plumbing: run a supervisor method in its thread and return the result."""

    def _invoke(self, method: str, *args: Any) -> Any:
        return self.call(ProxyCall(attr_path=(method,), args=args, kwargs={}), timeout=None)

    def which_children(self) -> list[ChildInfo]:
        """Every child in start order: id, ref (None unless running), type, state."""
        return cast("list[ChildInfo]", self._invoke("which_children"))

    def count_children(self) -> ChildCounts:
        """Counts of specs, live children, supervisors and workers."""
        return cast("ChildCounts", self._invoke("count_children"))

    def statistics(self) -> SupervisorStats:
        """A snapshot: children, active, restarting, restarts in the intensity window."""
        return cast("SupervisorStats", self._invoke("statistics"))


class SupervisorRef(_AdminRef):
    """A running :class:`Supervisor`; every method is a call into its thread.

    Errors are raised here and the supervisor carries on.
    """

    def start_child(self, spec: ChildSpec | Mapping[str, Any]) -> ServerRef[Any]:
        """Add and start a child. AlreadyStartedError / AlreadyPresentError if the id is
        taken, ChildSpecError if invalid, StartChildError if its start fails (not kept)."""
        return cast("ServerRef[Any]", self._invoke("start_child", spec))

    def terminate_child(self, child_id: Hashable) -> None:
        """Stop a child (its shutdown honoured); the spec is kept unless temporary. Also ends
        a restart loop. ChildNotFoundError if there is no such id."""
        self._invoke("terminate_child", child_id)

    def restart_child(self, child_id: Hashable) -> ServerRef[Any]:
        """Start a terminated child again. ChildRunningError, ChildRestartingError,
        ChildNotFoundError, or StartChildError if its start fails."""
        return cast("ServerRef[Any]", self._invoke("restart_child", child_id))

    def delete_child(self, child_id: Hashable) -> None:
        """Drop a terminated child's spec. ChildRunningError, ChildRestartingError,
        ChildNotFoundError."""
        self._invoke("delete_child", child_id)


class Supervisor(SupervisorBase):
    """An Erlang/OTP supervisor: starts children in order, restarts them by strategy.

    - ``one_for_one``: only the child that exited is restarted.
    - ``one_for_all``: every other child is stopped (reverse order) and all are started
      again in order; temporary ones are dropped.
    - ``rest_for_one``: the children started after it are stopped and restarted with it.

    More than ``max_restarts`` restarts within ``max_seconds`` make it stop all children
    (reverse order) and exit with reason ``shutdown``, which its own supervisor sees as a
    child exit (escalation). A restart whose start fails is retried through the mailbox
    (so calls are still answered) and counts as a restart.

    With ``auto_shutdown`` ``"any_significant"`` / ``"all_significant"`` it exits
    (reason shutdown) when any / all of its ``significant`` children have exited by
    themselves and are not restarted.
    """

    ref_class = SupervisorRef

    def __init__(
        self,
        children: Iterable[ChildSpec | Mapping[str, Any]] = (),
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        auto_shutdown: AutoShutdown = "never",
        clock: Clock | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ChildSpecError(
                f"must be one of {', '.join(STRATEGIES)}; got {strategy!r}", field="strategy"
            )
        if auto_shutdown not in AUTO_SHUTDOWNS:
            raise ChildSpecError(
                f"must be one of {', '.join(AUTO_SHUTDOWNS)}; got {auto_shutdown!r}",
                field="auto_shutdown",
            )
        super().__init__(max_restarts=max_restarts, max_seconds=max_seconds, clock=clock)
        self.strategy = strategy
        self.auto_shutdown: AutoShutdown = auto_shutdown
        self._initial = check_specs(children, auto_shutdown)

    @classmethod
    def start(
        cls,
        children: Iterable[ChildSpec | Mapping[str, Any]] = (),
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        auto_shutdown: AutoShutdown = "never",
        name: str | None = None,
        clock: Clock | None = None,
    ) -> SupervisorRef:
        """Start a supervisor and its children, in order; returns once all are started.

        If a child fails to start, the ones already started are stopped in reverse order
        and StartChildError (naming the child) is raised here. Invalid specs or flags raise
        ChildSpecError before anything starts.
        """
        kwargs = dict(
            strategy=strategy,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            auto_shutdown=auto_shutdown,
            clock=clock,
        )
        return cast(SupervisorRef, cls._spawn(name, (list(children),), kwargs))

    @classmethod
    def start_named(cls, name: str, /, *args: Any, **kwargs: Any) -> SupervisorRef:
        """:meth:`start` registered under ``name``."""
        return cls.start(*args, name=name, **kwargs)

    def on_start(self) -> None:
        super().on_start()
        for spec in self._initial:
            child = Child(spec.id, spec)
            try:
                self._launch(child)
            except BaseException:
                self._terminate_all()
                raise
            self._children[spec.id] = child
        self._initial = []

    def _group(self, child: Child) -> list[Child]:
        if self.strategy == "one_for_one":
            return [child]
        members = list(self._children.values())
        if self.strategy == "one_for_all":
            return members
        return members[members.index(child) :]

    def _exited_for_good(self, child: Child, reason: Any) -> None:
        super()._exited_for_good(child, reason)
        if not child.spec.significant or self.auto_shutdown == "never":
            return
        if self.auto_shutdown == "all_significant" and any(
            c.spec.significant and c.state != "terminated" for c in self._children.values()
        ):
            return
        logger.info("%s: significant child %r exited; auto-shutdown", self, child.spec.id)
        self._shut_down()

    # -- calls (run in the supervisor's thread) -------------------------------------------

    def start_child(self, spec: ChildSpec | Mapping[str, Any]) -> ServerRef[Any]:
        spec = check_specs([spec], self.auto_shutdown)[0]
        existing = self._children.get(spec.id)
        if existing is not None:
            if existing.ref is not None:
                raise AlreadyStartedError(spec.id, existing.ref)
            raise AlreadyPresentError(spec.id)
        child = Child(spec.id, spec)
        ref = self._launch(child)
        self._children[spec.id] = child
        return ref

    def terminate_child(self, child_id: Hashable) -> None:
        child = self._get(child_id)
        self._halt(child)
        if child.spec.restart == "temporary":
            self._remove(child)

    def restart_child(self, child_id: Hashable) -> ServerRef[Any]:
        child = self._idle(child_id)
        return self._launch(child)

    def delete_child(self, child_id: Hashable) -> None:
        self._remove(self._idle(child_id))

    def _get(self, child_id: Hashable) -> Child:
        try:
            return self._children[child_id]
        except (KeyError, TypeError):
            raise ChildNotFoundError(child_id) from None

    def _idle(self, child_id: Hashable) -> Child:
        child = self._get(child_id)
        if child.state == "running":
            raise ChildRunningError(child_id)
        if child.state == "restarting":
            raise ChildRestartingError(child_id)
        return child


def check_specs(
    children: Iterable[ChildSpec | Mapping[str, Any]], auto_shutdown: str
) -> list[ChildSpec]:
    """Coerce and validate specs against each other and the supervisor's flags."""
    specs: list[ChildSpec] = []
    seen: set[Hashable] = set()
    for raw in children:
        spec = ChildSpec.coerce(raw)
        if spec.id in seen:
            raise DuplicateChildError(spec.id)
        seen.add(spec.id)
        if spec.significant and auto_shutdown == "never":
            raise ChildSpecError(
                "significant children need auto_shutdown 'any_significant' or "
                "'all_significant' (this supervisor has 'never')",
                child_id=spec.id,
                field="significant",
            )
        specs.append(spec)
    return specs
