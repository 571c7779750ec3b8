"""``override_provider``: a stand-in for one of a runtime's providers, for one test."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from otpy.providers import Provider, ProviderEntry, ProviderLimits

if TYPE_CHECKING:
    from otpy.runtime import Runtime

__all__ = ["override_provider"]


@contextmanager
def override_provider(
    rt: Runtime,
    name: str,
    provider: Provider,
    *,
    capabilities: Iterable[str] | None = None,
    limits: ProviderLimits | Mapping[str, Any] | None = None,
) -> Iterator[ProviderEntry]:
    """Register ``provider`` as ``rt``'s provider ``name`` for the ``with`` block, then put
    back what was there (or remove it, if ``name`` was not registered).

    The stand-in keeps the original's capabilities, priority, weight and limits unless
    ``capabilities`` or ``limits`` are given, so steps select it exactly as they selected
    the original; it gets a fresh guard (breaker and limiter) and statistics, and so does
    the original when it is put back. Yields the stand-in's entry::

        with override_provider(rt, "claude", SimulatedProvider(responses=["ok"])):
            rt.run_pipeline("flow.yaml")
    """
    original = rt.providers.table.get(name)
    entry = rt.providers.register_provider(
        name,
        provider,
        capabilities=capabilities
        if capabilities is not None
        else (original.capabilities if original is not None else None),
        priority=original.priority if original is not None else 0,
        limits=limits if limits is not None else (original.limits if original else None),
        weight=original.weight if original is not None else 1.0,
        replace=True,
    )
    try:
        yield entry
    finally:
        if original is None:
            rt.providers.unregister_provider(name)
        else:
            rt.providers.register_provider(
                name,
                original.provider,
                capabilities=original.capabilities,
                priority=original.priority,
                limits=original.limits,
                weight=original.weight,
                replace=True,
            )
