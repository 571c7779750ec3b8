"""The stateful processes of the runtime (registries, job runners); filled in by later work."""

from otpy.actors._compat import (
    CompatibilityHandle,
    CompatibilityManager,
    CompatibilityStats,
    StepsHandle,
)
from otpy.actors._health_monitor import HealthChange, HealthMonitor
from otpy.actors._provider_registry import ProviderRegistry, ProviderRegistryHandle
from otpy.actors._step_registry import StepRegistry, StepRegistryHandle

__all__ = [
    "CompatibilityHandle",
    "CompatibilityManager",
    "CompatibilityStats",
    "HealthChange",
    "HealthMonitor",
    "ProviderRegistry",
    "ProviderRegistryHandle",
    "StepRegistry",
    "StepRegistryHandle",
    "StepsHandle",
]
