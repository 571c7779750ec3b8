"""The tools a runtime knows (``rt.tools``): the built-in workspace tools, ``Bash`` when
the config enables it, and the Python functions registered by name.

::

    @rt.tools.register
    def weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        '''The weather in a city now.'''
        ...
    rt.tools.register(lookup, name="find_order")   # a plain call works too
    rt.agent("What is the weather in Oslo?", tools=["weather"])
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar, overload

from otpy.agent._bash import BASH
from otpy.agent._files import EDIT, MULTI_EDIT, READ, WRITE
from otpy.agent._limits import ToolLimits
from otpy.agent._search import GLOB, GREP, LS
from otpy.agent._tool import Tool, python_tool
from otpy.errors import ConfigurationError

__all__ = ["BUILTIN_TOOLS", "ToolRegistry", "ToolSelection", "as_tool", "tool"]

F = TypeVar("F", bound=Callable[..., Any])

BUILTIN_TOOLS: Mapping[str, Tool] = MappingProxyType(
    {t.name: t for t in (READ, WRITE, EDIT, MULTI_EDIT, GLOB, GREP, LS, BASH)}
)
"""The built-in tools by name: the workspace tools (Read, Write, Edit, MultiEdit, Glob,
Grep, LS) and Bash."""
_ATTRIBUTE = "__otpy_tool__"


@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(*, name: str | None = None, description: str | None = None) -> Callable[[F], F]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Any:
    """Decorator: mark a typed function as a tool (``@tool`` or ``@tool(name=...)``); the
    function stays callable as it was, and ``rt.agent(..., tools=[fn])`` or
    ``rt.tools.register(fn)`` use the name and description given here."""

    def mark(func: F) -> F:
        setattr(func, _ATTRIBUTE, python_tool(func, name=name, description=description))
        return func

    return mark if fn is None else mark(fn)


def as_tool(item: Tool | Callable[..., Any]) -> Tool:
    """``item`` as a Tool: a Tool as it is, a function marked with :func:`tool` as marked,
    any other typed function through :func:`~otpy.agent.python_tool`."""
    if isinstance(item, Tool):
        return item
    marked = getattr(item, _ATTRIBUTE, None)
    return marked if isinstance(marked, Tool) else python_tool(item)


@dataclass(frozen=True, slots=True)
class ToolSelection:
    """The tools a step or an agent may use (``tools``, in the order asked), and the names
    asked for that are left out because the runtime does not enable them (``disabled``:
    Bash without ``tools.bash``)."""

    tools: tuple[Tool, ...]
    disabled: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tools)


class ToolRegistry:
    """Tools by name, thread-safe, with the ``limits`` their calls run under (the runtime
    config's ``tools`` section). Built-in tools are always there; ``Bash`` may be offered
    only when ``limits.bash`` is true."""

    def __init__(self, limits: ToolLimits | None = None) -> None:
        if limits is not None and not isinstance(limits, ToolLimits):
            raise ConfigurationError(f"limits must be ToolLimits or None, got {limits!r}")
        self.limits = limits or ToolLimits()
        self._lock = threading.Lock()
        self._tools: dict[str, Tool] = dict(BUILTIN_TOOLS)

    @property
    def bash(self) -> bool:
        """Whether the Bash tool may be offered (``limits.bash``)."""
        return self.limits.bash

    @overload
    def register(self, fn: F, /, *, name: str | None = ..., description: str | None = ...,
                 replace: bool = ...) -> F: ...  # fmt: skip
    @overload
    def register(self, fn: Tool, /, *, replace: bool = ...) -> Tool: ...
    @overload
    def register(self, *, name: str | None = ..., description: str | None = ...,
                 replace: bool = ...) -> Callable[[F], F]: ...  # fmt: skip
    def register(
        self,
        fn: Any = None,
        *,
        name: str | None = None,
        description: str | None = None,
        replace: bool = False,
    ) -> Any:
        """Register a function (its schema from its type hints) or a :class:`Tool`; also a
        decorator, bare or with arguments. Returns what it was given. ConfigurationError
        for a function that cannot be a tool, or a name already taken (``replace=True``
        replaces it, a built-in one too)."""
        if fn is None:
            return lambda func: self.register(
                func, name=name, description=description, replace=replace
            )
        if isinstance(fn, Tool):
            made = fn
        elif name is None and description is None:
            made = as_tool(fn)
        else:
            made = python_tool(fn, name=name, description=description)
        with self._lock:
            if made.name in self._tools and not replace:
                raise ConfigurationError(
                    f"a tool named {made.name!r} is registered already (replace=True replaces it)"
                )
            self._tools[made.name] = made
        return fn

    def unregister(self, name: str) -> bool:
        """Remove a tool; False if there was none of that name."""
        with self._lock:
            return self._tools.pop(name, None) is not None

    def get(self, name: str) -> Tool | None:
        """The tool ``name`` if it may be offered (Bash only when enabled), else None."""
        with self._lock:
            found = self._tools.get(name)
        if found is not None and found.kind == "bash" and not self.bash:
            return None
        return found

    def names(self) -> list[str]:
        """Every tool that may be offered, sorted."""
        with self._lock:
            tools = list(self._tools.values())
        return sorted(t.name for t in tools if t.kind != "bash" or self.bash)

    def select(
        self, allowed: Iterable[str | Tool | Callable[..., Any]], disallowed: Sequence[str] = ()
    ) -> ToolSelection:
        """The tools ``allowed`` names (or gives: Tools and functions are taken as they
        are) minus ``disallowed``. ConfigurationError for a name no tool has (with the
        closest one); a known tool this runtime does not enable (Bash) is left out and
        named in ``disabled``."""
        chosen: dict[str, Tool] = {}
        disabled: list[str] = []
        with self._lock:
            known = dict(self._tools)
        for item in allowed:
            if not isinstance(item, str):
                made = as_tool(item)
                chosen[made.name] = made
                continue
            found = known.get(item)
            if found is None:
                raise ConfigurationError(self.unknown(item))
            if found.kind == "bash" and not self.bash:
                disabled.append(item)
                continue
            chosen[item] = found
        for name in disallowed:
            chosen.pop(name, None)
        return ToolSelection(tuple(chosen.values()), tuple(disabled))

    def unknown(self, name: str) -> str:
        """The message for a tool name nobody registered (with the closest known one)."""
        with self._lock:
            known = sorted(self._tools)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"no tool named {name!r}{hint} (tools: {', '.join(known)})"

    def is_known(self, name: str) -> bool:
        """Whether any tool has this name (Bash counts, enabled or not)."""
        with self._lock:
            return name in self._tools

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __repr__(self) -> str:
        return f"ToolRegistry({', '.join(self.names())})"
