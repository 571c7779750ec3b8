"""Handles that find an actor by name on every call, so they survive its restarts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pykka.messages import ProxyCall

from otpy.errors import NoProcessError

from . import _names
from ._ref import ServerRef

__all__ = ["NamedHandle", "call", "cast"]


def _resolve(target: str | ServerRef[Any], timeout: float | None) -> ServerRef[Any]:
    if isinstance(target, ServerRef):
        return target
    ref = _names.whereis(target) or _names.wait_for_name(target, timeout)
    if not isinstance(ref, ServerRef):
        raise NoProcessError(target)
    return ref


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def call(target: str | ServerRef[Any], message: Any, *, timeout: float | None = 5.0) -> Any:
    """Call a GenServer by ref or registered name (see :class:`NamedHandle`)."""
    if isinstance(target, ServerRef):
        return target.call(message, timeout=timeout)
    return NamedHandle(target, timeout=timeout).call(message)


def cast(target: str | ServerRef[Any], message: Any) -> None:
    """Cast to a GenServer by ref or name; dropped if nothing lives there (as Erlang)."""
    ref = target if isinstance(target, ServerRef) else _names.whereis(target)
    if isinstance(ref, ServerRef):
        ref.cast(message)


class NamedHandle:
    """Talks to whichever actor holds ``name`` right now.

    Each call looks the name up; if the actor is being restarted (name free, or the old
    incarnation died before handling the message), the call waits for the new one and is
    sent again, for up to ``timeout`` seconds in all. A message an actor did handle is
    never sent twice. Attribute access calls the actor's method of that name::

        registry = NamedHandle("steps")
        registry.register_step("x", XStep)      # blocks for the result
    """

    __slots__ = ("name", "timeout")

    def __init__(self, name: str, *, timeout: float | None = 5.0) -> None:
        self.name = name
        self.timeout = timeout

    @property
    def ref(self) -> ServerRef[Any] | None:
        """The current incarnation's ref, or None."""
        ref = _names.whereis(self.name)
        return ref if isinstance(ref, ServerRef) else None

    def __otpy_ref__(self) -> str:
        """For ``otpy.sys``: the name (whichever incarnation holds it)."""
        return self.name

    def call(self, message: Any) -> Any:
        """Send ``message`` to the current actor and wait for its reply.

        If the actor died before handling it, the message goes to the next incarnation,
        until ``timeout`` runs out (then NoProcessError or CallTimeoutError).
        """
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            ref = _resolve(self.name, _left(deadline))
            try:
                return ref.call(message, timeout=_left(deadline))  # what the wait left over
            except NoProcessError as exc:
                if exc.target is not ref:
                    raise  # the handler itself raised it: the message was handled
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                # It died before handling the message: wait for the next incarnation.

    def cast(self, message: Any) -> None:
        """Send ``message`` without waiting (dropped if no actor holds the name)."""
        cast(self.name, message)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)

        def invoke(*args: Any, **kwargs: Any) -> Any:
            return self.call(ProxyCall(attr_path=(method,), args=args, kwargs=kwargs))

        invoke.__name__ = method
        return invoke

    def __repr__(self) -> str:
        return f"NamedHandle({self.name!r})"
