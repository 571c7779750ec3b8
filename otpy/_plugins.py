"""Plugins: objects other packages declare under an entry-point group (``otpy.steps``,
``otpy.providers``). Loading is never fatal: a plugin that fails to import or is of the
wrong kind is logged and skipped, and the report says why. :func:`resolve` finds the
object a ``"module:qualname"`` reference names (a DSPy job's program, a metric a Ray
worker imports, an executor factory)."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = ["EntryPoints", "PluginReport", "load_plugins", "resolve"]

EntryPoints: TypeAlias = (
    Iterable[importlib.metadata.EntryPoint]
    | Callable[[str], Iterable[importlib.metadata.EntryPoint]]
)
"""Entry points to load instead of the installed ones: a list (those of other groups are
ignored) or a function of the group name."""

logger = logging.getLogger("otpy.plugins")


@dataclass(frozen=True)
class PluginReport:
    """What happened to one entry point: ``loaded`` and its ``name``/``value``, or the
    ``error`` that made it skipped."""

    group: str
    name: str
    value: str
    loaded: bool
    error: str | None = None


def load_plugins(
    group: str,
    accept: Callable[[str, Any], None],
    *,
    entry_points: EntryPoints | None = None,
) -> list[PluginReport]:
    """Load every entry point of ``group`` and hand ``(name, obj)`` to ``accept`` (which
    registers it, or raises if ``obj`` is of the wrong kind). Any exception while loading
    or accepting is logged (logger ``otpy.plugins``) and reported; the others go on.

    ``entry_points`` replaces ``importlib.metadata.entry_points(group=...)`` (for tests).
    """
    if entry_points is None:
        found: Iterable[Any] = importlib.metadata.entry_points(group=group)
    elif callable(entry_points):
        found = entry_points(group)
    else:
        found = [ep for ep in entry_points if ep.group == group]
    reports = []
    for ep in found:
        try:
            accept(ep.name, ep.load())
        except Exception as exc:
            logger.warning(
                "plugin %r (%s) in group %r skipped: %s: %s",
                ep.name,
                ep.value,
                group,
                type(exc).__name__,
                exc,
                exc_info=True,
            )
            error = f"{type(exc).__name__}: {exc}"
            reports.append(PluginReport(group, ep.name, ep.value, False, error))
        else:
            reports.append(PluginReport(group, ep.name, ep.value, True))
    return reports


def resolve(reference: str) -> Any:
    """The object ``"module:qualname"`` names (``qualname`` may be dotted), its module
    imported: ImportError, or AttributeError naming the part that is not there."""
    module, _, qualname = reference.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found
