"""The stateful processes of the runtime: the registries, the health monitor, pipeline runs,
the optimization runners of jobs and the agent."""

from otpy.actors._chat import ChatAgent, ChatCell, ChatHandle, chat_child
from otpy.actors._compat import (
    CompatibilityHandle,
    CompatibilityManager,
    CompatibilityStats,
    StepsHandle,
)
from otpy.actors._deadline import Deadline
from otpy.actors._health_monitor import HealthChange, HealthMonitor
from otpy.actors._job_handle import JobHandle
from otpy.actors._job_record import JobCell, JobRecord
from otpy.actors._jobs import JobsHandle
from otpy.actors._optimization_runner import OptimizationRunner
from otpy.actors._pipeline_runner import PipelineRun, PipelineRunner, start_run
from otpy.actors._provider_registry import ProviderRegistry, ProviderRegistryHandle
from otpy.actors._step_registry import StepRegistry, StepRegistryHandle

__all__ = [
    "ChatAgent",
    "ChatCell",
    "ChatHandle",
    "CompatibilityHandle",
    "CompatibilityManager",
    "CompatibilityStats",
    "Deadline",
    "HealthChange",
    "HealthMonitor",
    "JobCell",
    "JobHandle",
    "JobRecord",
    "JobsHandle",
    "OptimizationRunner",
    "PipelineRun",
    "PipelineRunner",
    "ProviderRegistry",
    "ProviderRegistryHandle",
    "StepRegistry",
    "StepRegistryHandle",
    "StepsHandle",
    "chat_child",
    "start_run",
]
