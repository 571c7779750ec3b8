"""Errors of the supervision layer: child specs, supervisors, names, calls."""

from __future__ import annotations

from typing import Any

from otpy.errors._base import OtpyError, located

__all__ = [
    "AlreadyPresentError",
    "AlreadyStartedError",
    "CallTimeoutError",
    "ChildNotFoundError",
    "ChildRestartingError",
    "ChildRunningError",
    "ChildSpecError",
    "DuplicateChildError",
    "MaxChildrenError",
    "NameTakenError",
    "NoProcessError",
    "ServerBusyError",
    "StartChildError",
    "SupervisionError",
]


class SupervisionError(OtpyError):
    """An error of the supervision layer (child specs, supervisors, names)."""


class _ChildError(SupervisionError):
    """An error about one child: ``child_id``, and a message made from ``template``."""

    template = "child {child_id!r}"

    def __init__(self, child_id: Any) -> None:
        super().__init__(self.template.format(child_id=child_id))
        self.child_id = child_id


class ChildSpecError(SupervisionError, ValueError):
    """A child spec or supervisor flag is invalid.

    ``child_id`` is the offending child's id (``None`` for a supervisor flag) and
    ``field`` the field that is wrong.
    """

    def __init__(self, message: str, *, child_id: Any = None, field: str | None = None) -> None:
        super().__init__(located(message, "child", child_id, field))
        self.child_id = child_id
        self.field = field


class DuplicateChildError(ChildSpecError):
    """Two child specs of one supervisor share an id."""

    def __init__(self, child_id: Any) -> None:
        super().__init__(
            "duplicate child id; ids must be unique within a supervisor",
            child_id=child_id,
            field="id",
        )


class StartChildError(SupervisionError):
    """A child's start function failed or returned something that is not a started actor.

    ``reason`` is the exception the start raised (also the ``__cause__``).
    """

    def __init__(self, child_id: Any, reason: BaseException | str) -> None:
        super().__init__(f"child {child_id!r} failed to start: {reason!r}")
        self.child_id = child_id
        self.reason = reason


class AlreadyStartedError(SupervisionError):
    """``start_child`` with the id of a running child; ``ref`` is the running actor."""

    def __init__(self, child_id: Any, ref: Any) -> None:
        super().__init__(f"child {child_id!r} is already started ({ref})")
        self.child_id = child_id
        self.ref = ref


class AlreadyPresentError(_ChildError):
    """``start_child`` with the id of a child that is present but not running."""

    template = (
        "child {child_id!r} is already present (not running); "
        "use restart_child or delete_child first"
    )


class ChildNotFoundError(_ChildError, LookupError):
    """No child with that id (or ref) under this supervisor."""

    template = "no child {child_id!r} in this supervisor"


class ChildRunningError(_ChildError):
    """``restart_child``/``delete_child`` of a running child; terminate it first."""

    template = "child {child_id!r} is running; terminate_child it first"


class ChildRestartingError(_ChildError):
    """``restart_child``/``delete_child`` of a child whose restart is in progress."""

    template = "child {child_id!r} is being restarted; terminate_child it to stop the restarts"


class MaxChildrenError(SupervisionError):
    """A DynamicSupervisor already has ``max_children`` children."""

    def __init__(self, max_children: int) -> None:
        super().__init__(f"max_children ({max_children}) reached")
        self.max_children = max_children


class NameTakenError(SupervisionError):
    """A name is already registered to a live actor (``ref``)."""

    def __init__(self, name: str, ref: Any) -> None:
        super().__init__(f"name {name!r} is already registered to {ref}")
        self.name = name
        self.ref = ref


class NoProcessError(SupervisionError, LookupError):
    """No live actor is registered under that name, or the actor is dead; ``reason``
    (optional) says why there is none (a paused job, a finished run)."""

    def __init__(self, target: Any, reason: str = "") -> None:
        super().__init__(f"no live actor {target!r}" + (f": {reason}" if reason else ""))
        self.target = target
        self.reason = reason


class CallTimeoutError(SupervisionError, TimeoutError):
    """A call got no reply within its timeout; the actor may still handle it later."""

    def __init__(self, target: Any, timeout: float | None) -> None:
        super().__init__(f"no reply from {target} within {timeout} s")
        self.target = target
        self.timeout = timeout


class ServerBusyError(CallTimeoutError):
    """A system request (``otpy.sys``) got no answer in time because the server was busy
    with one message all along: ``handling`` is that message (a short text) and
    ``busy_for`` how long it had been at it, in seconds. The request is withdrawn: it
    will not run later."""

    def __init__(
        self, target: Any, timeout: float | None, request: str, handling: str, busy_for: float
    ) -> None:
        super().__init__(target, timeout)
        self.args = (
            f"{target} is busy: it has been handling {handling} for {busy_for:.3g} s, and "
            f"{request} got no answer within {timeout} s (system requests are answered "
            "between messages; it was withdrawn)",
        )
        self.request = request
        self.handling = handling
        self.busy_for = busy_for
