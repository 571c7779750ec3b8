"""otpy: Erlang/OTP-style supervised actors for Python, on Pykka.

The front door holds what a user starts with (``__all__``): ``otpy.start()`` embeds the
runtime (step and provider registries, the built-in step types, health checks, the job
supervisor, pipeline runs) in this process; ``rt.run_pipeline`` runs a YAML pipeline,
``rt.jobs.start`` an optimization job. The rest lives in the packages named for it:
:mod:`otpy.supervision` (GenServers, supervisors, names), :mod:`otpy.resilience` (rate
limits, breakers, retries, fallbacks), :mod:`otpy.providers`, :mod:`otpy.steps`,
:mod:`otpy.pipelines`, :mod:`otpy.optimize`, :mod:`otpy.state`, :mod:`otpy.telemetry`,
:mod:`otpy.errors` (every error, in one hierarchy) and :mod:`otpy.testing`.

Importing ``otpy`` has no side effects and imports almost nothing: each name is imported
from its package on first use. Names that were exported here before (the errors, more
telemetry and resilience types) still resolve, but are not listed in ``__all__``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from otpy.actors import (
        JobHandle,
    )
    from otpy.clock import (
        SYSTEM_CLOCK,
        Clock,
        SystemClock,
    )
    from otpy.config import (
        HealthConfig,
        ProviderConfig,
        RuntimeConfig,
        SupervisionConfig,
    )
    from otpy.errors import (
        AgentError,
        AllOptionsFailed,
        AlreadyPresentError,
        AlreadyStartedError,
        AuthenticationError,
        BatchUpdateError,
        CallTimeoutError,
        ChildNotFoundError,
        ChildRestartingError,
        ChildRunningError,
        ChildSpecError,
        CircuitOpenError,
        ConfigurationError,
        CostExceedsLimitError,
        DuplicateChildError,
        DuplicateProviderError,
        DuplicateStepError,
        InvalidRequestError,
        InvalidValueError,
        JobError,
        MaxChildrenError,
        NameTakenError,
        NoProcessError,
        NoProviderAvailable,
        OperationTimeout,
        OtpyError,
        OverloadedError,
        PermitError,
        PipelineError,
        ProviderConnectionError,
        ProviderError,
        ProviderTimeoutError,
        RateLimitedError,
        RateLimitTimeout,
        RegistryError,
        ResilienceError,
        ServerBusyError,
        ServerError,
        SpendLimitError,
        StartChildError,
        StateError,
        StepValidationError,
        SupervisionError,
        UnknownProviderError,
        UnknownStepError,
        VariableExistsError,
        VariableNotFound,
    )
    from otpy.log import (
        SecretFilter,
        configure_logging,
    )
    from otpy.optimize import (
        JobSpec,
        JobStatus,
        SearchSpace,
        Strategy,
        Trial,
        load_job_file,
        register_metric,
        register_strategy,
    )
    from otpy.pipelines import (
        Pipeline,
        PipelineResult,
        Plan,
        StepOutcome,
        compile_pipeline,
        load_pipeline,
    )
    from otpy.providers import (
        Completion,
        CompletionRequest,
        Message,
        Provider,
        ProviderLimits,
        SimulatedProvider,
        Usage,
    )
    from otpy.resilience import (
        CircuitBreaker,
        Fallback,
        Guard,
        Guarded,
        GuardResult,
        Limit,
        Permit,
        RateLimiter,
        ResilienceEvent,
        RetryPolicy,
        guard,
    )
    from otpy.runtime import (
        Runtime,
        start,
    )
    from otpy.state import (
        LocalState,
        SQLiteState,
        StateProvider,
        Variable,
        VariableChange,
    )
    from otpy.steps import (
        Step,
        StepContext,
        StepMetadata,
        StepResult,
    )
    from otpy.supervision import (
        Backoff,
        ChildSpec,
        Down,
        DynamicSupervisor,
        GenServer,
        NamedHandle,
        ServerRef,
        Supervisor,
        whereis,
    )
    from otpy.telemetry import (
        Counter,
        Event,
        EventStore,
        Gauge,
        Histogram,
        Metrics,
        Span,
        Telemetry,
        TraceContext,
        TraceNode,
        correlation,
        current_context,
        get_telemetry,
        set_telemetry,
        use_context,
    )

__all__ = [
    "ChildSpec",
    "CircuitBreaker",
    "Completion",
    "CompletionRequest",
    "DynamicSupervisor",
    "Fallback",
    "GenServer",
    "JobHandle",
    "JobStatus",
    "Limit",
    "LocalState",
    "NamedHandle",
    "OtpyError",
    "Pipeline",
    "PipelineResult",
    "Provider",
    "ProviderLimits",
    "RateLimiter",
    "RetryPolicy",
    "Runtime",
    "RuntimeConfig",
    "SQLiteState",
    "SearchSpace",
    "ServerRef",
    "SimulatedProvider",
    "Step",
    "StepContext",
    "StepMetadata",
    "StepResult",
    "Strategy",
    "Supervisor",
    "compile_pipeline",
    "configure_logging",
    "get_telemetry",
    "guard",
    "load_job_file",
    "load_pipeline",
    "register_metric",
    "register_strategy",
    "start",
    "whereis",
]

_SOURCES: dict[str, str] = {
    "JobHandle": "otpy.actors",
    "Clock": "otpy.clock",
    "SYSTEM_CLOCK": "otpy.clock",
    "SystemClock": "otpy.clock",
    "HealthConfig": "otpy.config",
    "ProviderConfig": "otpy.config",
    "RuntimeConfig": "otpy.config",
    "SupervisionConfig": "otpy.config",
    "AgentError": "otpy.errors",
    "AllOptionsFailed": "otpy.errors",
    "AlreadyPresentError": "otpy.errors",
    "AlreadyStartedError": "otpy.errors",
    "AuthenticationError": "otpy.errors",
    "BatchUpdateError": "otpy.errors",
    "CallTimeoutError": "otpy.errors",
    "ChildNotFoundError": "otpy.errors",
    "ChildRestartingError": "otpy.errors",
    "ChildRunningError": "otpy.errors",
    "ChildSpecError": "otpy.errors",
    "CircuitOpenError": "otpy.errors",
    "ConfigurationError": "otpy.errors",
    "CostExceedsLimitError": "otpy.errors",
    "DuplicateChildError": "otpy.errors",
    "DuplicateProviderError": "otpy.errors",
    "DuplicateStepError": "otpy.errors",
    "ExpressionError": "otpy.errors",
    "InvalidRequestError": "otpy.errors",
    "InvalidValueError": "otpy.errors",
    "JobClaimedError": "otpy.errors",
    "JobError": "otpy.errors",
    "LeaseLostError": "otpy.errors",
    "MaxChildrenError": "otpy.errors",
    "NameTakenError": "otpy.errors",
    "NoProcessError": "otpy.errors",
    "NoProviderAvailable": "otpy.errors",
    "OperationTimeout": "otpy.errors",
    "OtpyError": "otpy.errors",
    "AgentLimitError": "otpy.errors",
    "ToolError": "otpy.errors",
    "OutsideWorkspaceError": "otpy.errors",
    "OverloadedError": "otpy.errors",
    "PermitError": "otpy.errors",
    "PipelineError": "otpy.errors",
    "ProviderConnectionError": "otpy.errors",
    "ProviderError": "otpy.errors",
    "ProviderTimeoutError": "otpy.errors",
    "RateLimitedError": "otpy.errors",
    "RateLimitTimeout": "otpy.errors",
    "RegistryError": "otpy.errors",
    "ResilienceError": "otpy.errors",
    "ServerBusyError": "otpy.errors",
    "ServerError": "otpy.errors",
    "SpendLimitError": "otpy.errors",
    "StartChildError": "otpy.errors",
    "StateError": "otpy.errors",
    "StepValidationError": "otpy.errors",
    "SupervisionError": "otpy.errors",
    "UnknownProviderError": "otpy.errors",
    "UnknownStepError": "otpy.errors",
    "VariableExistsError": "otpy.errors",
    "VariableNotFound": "otpy.errors",
    "configure_logging": "otpy.log",
    "SecretFilter": "otpy.log",
    "JobSpec": "otpy.optimize",
    "JobStatus": "otpy.optimize",
    "load_job_file": "otpy.optimize",
    "register_metric": "otpy.optimize",
    "register_strategy": "otpy.optimize",
    "SearchSpace": "otpy.optimize",
    "Strategy": "otpy.optimize",
    "Trial": "otpy.optimize",
    "compile_pipeline": "otpy.pipelines",
    "load_pipeline": "otpy.pipelines",
    "Pipeline": "otpy.pipelines",
    "PipelineResult": "otpy.pipelines",
    "Plan": "otpy.pipelines",
    "StepOutcome": "otpy.pipelines",
    "Completion": "otpy.providers",
    "CompletionRequest": "otpy.providers",
    "Message": "otpy.providers",
    "Provider": "otpy.providers",
    "ProviderLimits": "otpy.providers",
    "SimulatedProvider": "otpy.providers",
    "Usage": "otpy.providers",
    "CircuitBreaker": "otpy.resilience",
    "Fallback": "otpy.resilience",
    "Guard": "otpy.resilience",
    "guard": "otpy.resilience",
    "Guarded": "otpy.resilience",
    "GuardResult": "otpy.resilience",
    "Limit": "otpy.resilience",
    "Permit": "otpy.resilience",
    "RateLimiter": "otpy.resilience",
    "ResilienceEvent": "otpy.resilience",
    "RetryPolicy": "otpy.resilience",
    "Runtime": "otpy.runtime",
    "start": "otpy.runtime",
    "LocalState": "otpy.state",
    "SQLiteState": "otpy.state",
    "StateProvider": "otpy.state",
    "Variable": "otpy.state",
    "VariableChange": "otpy.state",
    "Step": "otpy.steps",
    "StepContext": "otpy.steps",
    "StepMetadata": "otpy.steps",
    "StepResult": "otpy.steps",
    "Backoff": "otpy.supervision",
    "ChildSpec": "otpy.supervision",
    "Down": "otpy.supervision",
    "DynamicSupervisor": "otpy.supervision",
    "GenServer": "otpy.supervision",
    "NamedHandle": "otpy.supervision",
    "ServerRef": "otpy.supervision",
    "Supervisor": "otpy.supervision",
    "whereis": "otpy.supervision",
    "correlation": "otpy.telemetry",
    "Counter": "otpy.telemetry",
    "current_context": "otpy.telemetry",
    "Event": "otpy.telemetry",
    "EventStore": "otpy.telemetry",
    "Gauge": "otpy.telemetry",
    "get_telemetry": "otpy.telemetry",
    "Histogram": "otpy.telemetry",
    "Metrics": "otpy.telemetry",
    "set_telemetry": "otpy.telemetry",
    "Span": "otpy.telemetry",
    "Telemetry": "otpy.telemetry",
    "TraceContext": "otpy.telemetry",
    "TraceNode": "otpy.telemetry",
    "use_context": "otpy.telemetry",
}
"""Where each name of the front door lives (``__all__`` and the names kept for
compatibility)."""

_SUBPACKAGES = frozenset(
    {
        "actors", "clock", "compat", "config", "errors", "log", "optimize", "pipelines",
        "providers", "redaction", "resilience", "runtime", "state", "steps", "supervision",
        "telemetry", "testing",
    }
)  # fmt: skip


def __getattr__(name: str) -> Any:
    """Import ``name`` from its package on first use (PEP 562), then keep it here."""
    source = _SOURCES.get(name)
    if source is not None:
        value = getattr(importlib.import_module(source), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"otpy.{name}")
    else:
        raise AttributeError(f"module 'otpy' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SOURCES, *_SUBPACKAGES})
