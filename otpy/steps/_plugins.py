"""Step plugins: step types other packages declare under the ``otpy.steps`` entry points.

In a plugin's ``pyproject.toml``::

    [project.entry-points."otpy.steps"]
    summarize = "my_pkg.steps:Summarize"        # a Step subclass, registered as "summarize"
    my_pkg = "my_pkg.steps:register"            # a callable taking the registry handle
"""

from __future__ import annotations

from typing import Any, Protocol

from otpy._plugins import EntryPoints, PluginReport, load_plugins
from otpy.errors import ConfigurationError
from otpy.steps._base import Step

__all__ = ["STEP_PLUGIN_GROUP", "EntryPoints", "StepRegistrar", "load_step_plugins"]

STEP_PLUGIN_GROUP = "otpy.steps"


class StepRegistrar(Protocol):
    """What a plugin registers into (the StepRegistry handle)."""

    def register_step(self, name: str, step_cls: type[Step]) -> Any: ...


def load_step_plugins(
    registry: StepRegistrar, entry_points: EntryPoints | None = None
) -> list[PluginReport]:
    """Register every ``otpy.steps`` plugin into ``registry``; one report per entry point.

    A plugin's object is either a Step subclass, registered under the entry point's name
    (a name already taken is an error: it is not replaced), or a callable called with
    ``registry`` that registers what it likes. A plugin that fails to import, is of
    another kind, or whose registration raises is logged (logger ``otpy.plugins``) and
    skipped; the others still load. Runs in the caller's thread.
    """

    def accept(name: str, obj: Any) -> None:
        if isinstance(obj, type):
            if not issubclass(obj, Step):
                raise ConfigurationError(
                    f"step plugin {name!r}: {obj.__qualname__} is a class but not a "
                    "subclass of otpy.steps.Step"
                )
            registry.register_step(name, obj)
        elif callable(obj):
            obj(registry)
        else:
            raise ConfigurationError(
                f"step plugin {name!r}: {obj!r} is neither a Step subclass nor a callable "
                "taking the step registry"
            )

    return load_plugins(STEP_PLUGIN_GROUP, accept, entry_points=entry_points)
