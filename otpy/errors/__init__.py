"""Every error otpy raises, in one hierarchy.

Expected (domain) errors all subclass :class:`OtpyError`. When a :class:`GenServer`
handler raises one, it goes back to the caller and the actor carries on; any other
exception goes back to the caller *and* crashes the actor (let it crash), and its
supervisor applies its restart strategy.

::

    OtpyError
    ├── ConfigurationError                  bad settings or arguments
    │   ├── ExpressionError                 a condition or expression that does not parse or
    │   │                                   evaluate (.text, .position, .reason)
    │   └── OutsideWorkspaceError           a path leads out of its workspace (.path, .root)
    ├── SupervisionError                    supervision tree and actor lifecycle
    │   ├── ChildSpecError (ValueError)     an invalid ChildSpec field or supervisor flag
    │   │   └── DuplicateChildError         two children with the same id
    │   ├── StartChildError                 a child's start failed (.child_id, .reason)
    │   ├── AlreadyStartedError             start_child: that id is running (.ref)
    │   ├── AlreadyPresentError             start_child: that id exists, not running
    │   ├── ChildNotFoundError              no child with that id / ref
    │   ├── ChildRunningError               restart/delete of a running child
    │   ├── ChildRestartingError            restart/delete of a child being restarted
    │   ├── MaxChildrenError                DynamicSupervisor is at max_children
    │   ├── NameTakenError                  a registered name is in use (.ref)
    │   ├── NoProcessError                  no live actor by that name / ref
    │   └── CallTimeoutError (TimeoutError) no reply within the timeout
    │       └── ServerBusyError             a system request timed out: busy with a message
    ├── ResilienceError                     rate limits, breakers, timeouts, fallbacks
    │   ├── CostExceedsLimitError (ValueError) a cost no bucket could ever admit
    │   ├── RateLimitTimeout (TimeoutError) not admitted within the timeout
    │   ├── PermitError                     a permit settled twice or used after release
    │   ├── CircuitOpenError                the breaker refused the call (.retry_in)
    │   ├── OperationTimeout (TimeoutError) a guarded call ran past its timeout
    │   └── AllOptionsFailed                every option of a fallback chain failed
    ├── RegistryError                       the step and provider registries
    │   ├── StepValidationError (ValueError) a step config is invalid (.step, .field)
    │   ├── UnknownStepError (LookupError)  no step type of that name (.known, .suggestion)
    │   ├── DuplicateStepError              register_step: the name is taken
    │   ├── UnknownProviderError (LookupError) no provider of that name
    │   ├── DuplicateProviderError          register_provider: the name is taken
    │   └── NoProviderAvailable             no healthy provider has the capabilities
    ├── PipelineError                       a pipeline run failed (.result, .step)
    ├── JobError                            an optimization job cannot do what was asked
    │   ├── JobClaimedError                 another live runtime holds the job's lease
    │   │                                   (.job_id, .owner, .state, .expires)
    │   └── LeaseLostError                  a write fenced out: the job was taken over
    │                                       (.job_id, .owner)
    ├── ToolError                           a tool call failed; the model is told (.tool)
    ├── AgentLimitError                     an agent loop hit max_turns or its token
    │                                       budget (.limit, .result so far)
    ├── AgentError                          the routing agent cannot take a request
    ├── StateError                          a state store failed or was misused
    │   ├── VariableNotFound (LookupError)  no variable with that name or id
    │   ├── VariableExistsError             register_variable: the name is taken
    │   ├── InvalidValueError (ValueError)  a value of the wrong type or breaking a
    │   │                                   constraint (.variable, .value, .rule)
    │   └── BatchUpdateError                a batch update failed (.failures, .applied)
    └── ProviderError                       a provider call failed (.provider, .status,
        │                                   .retry_after, .retryable)
        ├── RateLimitedError                429: too many requests/tokens (retryable)
        ├── OverloadedError                 529 / 503: provider overloaded (retryable)
        ├── ServerError                     other 5xx (retryable)
        ├── ProviderTimeoutError (TimeoutError) no answer in time (retryable)
        ├── ProviderConnectionError (ConnectionError) no connection (retryable)
        ├── AuthenticationError             401 / 403: bad or missing key (not retryable)
        ├── InvalidRequestError (ValueError) 400/404/422: a wrong request (not retryable)
        └── SpendLimitError                 credits or quota exhausted (not retryable)

Every error names what was wrong and where (which child, which name) and keeps the
values in attributes for code that handles it.
"""

from __future__ import annotations

from otpy.errors._agent import AgentError, AgentLimitError, ToolError
from otpy.errors._base import ConfigurationError, OtpyError
from otpy.errors._provider import (
    AuthenticationError,
    InvalidRequestError,
    OverloadedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    ServerError,
    SpendLimitError,
)
from otpy.errors._registry import (
    DuplicateProviderError,
    DuplicateStepError,
    NoProviderAvailable,
    RegistryError,
    StepValidationError,
    UnknownProviderError,
    UnknownStepError,
)
from otpy.errors._resilience import (
    AllOptionsFailed,
    CircuitOpenError,
    CostExceedsLimitError,
    OperationTimeout,
    PermitError,
    RateLimitTimeout,
    ResilienceError,
)
from otpy.errors._state import (
    BatchUpdateError,
    InvalidValueError,
    StateError,
    VariableExistsError,
    VariableNotFound,
)
from otpy.errors._supervision import (
    AlreadyPresentError,
    AlreadyStartedError,
    CallTimeoutError,
    ChildNotFoundError,
    ChildRestartingError,
    ChildRunningError,
    ChildSpecError,
    DuplicateChildError,
    MaxChildrenError,
    NameTakenError,
    NoProcessError,
    ServerBusyError,
    StartChildError,
    SupervisionError,
)
from otpy.errors._work import (
    ExpressionError,
    JobClaimedError,
    JobError,
    LeaseLostError,
    OutsideWorkspaceError,
    PipelineError,
)

__all__ = [
    "AgentError",
    "AgentLimitError",
    "AllOptionsFailed",
    "AlreadyPresentError",
    "AlreadyStartedError",
    "AuthenticationError",
    "BatchUpdateError",
    "CallTimeoutError",
    "ChildNotFoundError",
    "ChildRestartingError",
    "ChildRunningError",
    "ChildSpecError",
    "CircuitOpenError",
    "ConfigurationError",
    "CostExceedsLimitError",
    "DuplicateChildError",
    "DuplicateProviderError",
    "DuplicateStepError",
    "ExpressionError",
    "InvalidRequestError",
    "InvalidValueError",
    "JobClaimedError",
    "JobError",
    "LeaseLostError",
    "MaxChildrenError",
    "NameTakenError",
    "NoProcessError",
    "NoProviderAvailable",
    "OperationTimeout",
    "OtpyError",
    "OutsideWorkspaceError",
    "OverloadedError",
    "PermitError",
    "PipelineError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "RateLimitTimeout",
    "RateLimitedError",
    "RegistryError",
    "ResilienceError",
    "ServerBusyError",
    "ServerError",
    "SpendLimitError",
    "StartChildError",
    "StateError",
    "StepValidationError",
    "SupervisionError",
    "ToolError",
    "UnknownProviderError",
    "UnknownStepError",
    "VariableExistsError",
    "VariableNotFound",
]
