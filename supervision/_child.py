"""A supervisor's record of one child, and the public views of it."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from otpy.clock import TimerHandle

from ._ref import Monitor, ServerRef, ServerStats
from ._spec import ChildSpec

__all__ = [
    "Child",
    "ChildCounts",
    "ChildInfo",
    "ChildRow",
    "ChildState",
    "SupervisorStats",
    "SupervisorView",
]

ChildState: TypeAlias = Literal["running", "restarting", "terminated"]


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One row of ``which_children()``: ``ref`` is None unless ``state`` is running."""

    id: Hashable
    ref: ServerRef[Any] | None
    type: Literal["worker", "supervisor"]
    state: ChildState
    restart: str


@dataclass(frozen=True, slots=True)
class ChildCounts:
    """``count_children()``: all specs, live children, and specs by type."""

    specs: int
    active: int
    supervisors: int
    workers: int


@dataclass(frozen=True, slots=True)
class SupervisorStats(ServerStats):
    """``statistics()`` of a supervisor: its GenServer figures plus its children's."""

    strategy: str
    children: int
    active: int
    restarting: int
    restarts_in_window: int
    max_restarts: int
    max_seconds: float


@dataclass(frozen=True, slots=True)
class ChildRow:
    """One child in a :class:`SupervisorView`: ``restarts`` counts the incarnations
    started after the first; ``ref`` is None unless running."""

    id: Hashable
    type: Literal["worker", "supervisor"]
    restart: str
    state: ChildState
    restarts: int
    ref: ServerRef[Any] | None


@dataclass(frozen=True, slots=True)
class SupervisorView:
    """A supervisor's flags and children, read in its thread between two messages (one
    consistent moment): what ``otpy.observer`` draws."""

    strategy: str
    max_restarts: int
    max_seconds: float
    restarts_in_window: int
    children: tuple[ChildRow, ...]


class Child:
    """Mutable state of one child; only the owning supervisor's thread touches it."""

    __slots__ = (
        "attempt",
        "key",
        "last_ref",
        "monitor",
        "ref",
        "spec",
        "started_at",
        "starts",
        "state",
        "timer",
    )

    def __init__(self, key: Hashable, spec: ChildSpec) -> None:
        self.key = key
        self.spec = spec
        self.ref: ServerRef[Any] | None = None
        self.last_ref: ServerRef[Any] | None = None  # the incarnation that exited last
        self.state: ChildState = "terminated"
        self.monitor: Monitor | None = None
        self.started_at: float | None = None
        self.attempt = 0  # consecutive backoff restarts
        self.starts = 0  # incarnations started so far (a restart is any start after the first)
        self.timer: TimerHandle | None = None

    def row(self) -> ChildRow:
        restarts = max(0, self.starts - 1) + (self.state == "restarting")
        return ChildRow(
            self.spec.id, self.spec.type, self.spec.restart, self.state, restarts, self.ref
        )

    def info(self) -> ChildInfo:
        return ChildInfo(self.spec.id, self.ref, self.spec.type, self.state, self.spec.restart)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def __repr__(self) -> str:
        return f"<Child {self.spec.id!r} {self.state}>"


def count(children: Iterable[Child]) -> ChildCounts:
    """Count children as OTP's count_children does."""
    children = list(children)
    supervisors = sum(1 for c in children if c.spec.type == "supervisor")
    active = sum(1 for c in children if c.ref is not None and c.ref.is_alive())
    return ChildCounts(len(children), active, supervisors, len(children) - supervisors)
