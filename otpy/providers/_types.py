"""Provider types a config names (``type: anthropic``): a factory per type, and the
default limits a provider of that type gets when its config gives none.

The SDK-backed types import their SDK only when a provider of that type is made, so
``import otpy`` stays cheap and a missing optional SDK only matters to its users.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from otpy.clock import Clock
from otpy.errors import ConfigurationError
from otpy.providers._base import Provider
from otpy.providers._limits import ProviderLimits

__all__ = ["PROVIDER_TYPES", "ProviderType", "make_provider", "register_provider_type"]

ProviderFactory = Callable[[str, Mapping[str, Any], Clock], Provider]
"""``(name, options, clock) -> Provider``; ``options`` are the config's ``options`` plus
``api_key`` and ``model`` when the config gives them."""


@dataclass(frozen=True)
class ProviderType:
    """A provider type: how to make one, and its limits when the config gives none."""

    name: str
    factory: ProviderFactory
    default_limits: ProviderLimits


def _simulated(name: str, options: Mapping[str, Any], clock: Clock) -> Provider:
    from otpy.providers._simulated import SimulatedProvider

    return SimulatedProvider.from_config({"name": name, **options}, clock=clock)


def _anthropic(name: str, options: Mapping[str, Any], clock: Clock) -> Provider:
    from otpy.providers._anthropic import AnthropicProvider

    return AnthropicProvider.from_config({"name": name, **options})


def _gemini(name: str, options: Mapping[str, Any], clock: Clock) -> Provider:
    from otpy.providers._gemini import GeminiProvider

    return GeminiProvider.from_config({"name": name, **options})


PROVIDER_TYPES: dict[str, ProviderType] = {
    # A simulated call never hangs: no per-attempt timeout (and so no watchdog thread).
    "simulated": ProviderType("simulated", _simulated, ProviderLimits(timeout=None)),
    # Anthropic's tier-1 limits for Claude Sonnet: 50 requests and 30,000 input tokens a
    # minute (our tokens bucket counts input + output, so this is on the cautious side).
    "anthropic": ProviderType("anthropic", _anthropic, ProviderLimits(rpm=50, tpm=30_000)),
    # Gemini's free tier for Flash: 10 requests and 250,000 tokens a minute.
    "gemini": ProviderType("gemini", _gemini, ProviderLimits(rpm=10, tpm=250_000)),
}
"""Every provider type a config may name, by name (a plugin may add its own with
:func:`register_provider_type`)."""

_lock = threading.Lock()


def register_provider_type(
    name: str, factory: ProviderFactory, default_limits: ProviderLimits | None = None
) -> None:
    """Let configs name ``type: <name>``; replaces a type of that name."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a provider type name must be a non-empty str, got {name!r}")
    if not callable(factory):
        raise ConfigurationError(f"provider type {name!r}: factory must be callable")
    with _lock:
        PROVIDER_TYPES[name] = ProviderType(name, factory, default_limits or ProviderLimits())


def make_provider(type_name: str, name: str, options: Mapping[str, Any], clock: Clock) -> Provider:
    """A provider of type ``type_name`` called ``name``; ConfigurationError naming the
    provider for an unknown type or options the type refuses."""
    kind = PROVIDER_TYPES.get(type_name)
    if kind is None:
        known = ", ".join(sorted(PROVIDER_TYPES))
        raise ConfigurationError(
            f"provider {name!r}: unknown type {type_name!r} (known types: {known})"
        )
    try:
        provider = kind.factory(name, options, clock)
    except ConfigurationError as exc:
        raise ConfigurationError(f"provider {name!r} ({type_name}): {exc}") from exc
    if not isinstance(provider, Provider):
        raise ConfigurationError(
            f"provider {name!r}: the {type_name!r} factory returned {provider!r}, not a Provider"
        )
    return provider
