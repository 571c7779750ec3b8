"""Every error otpy raises, in one hierarchy.

Expected (domain) errors all subclass :class:`OtpyError`. When a :class:`GenServer`
handler raises one, it goes back to the caller and the actor carries on; any other
exception goes back to the caller *and* crashes the actor (let it crash), and its
supervisor applies its restart strategy.

::

    OtpyError
    ├── ConfigurationError                  bad settings or arguments
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

from collections.abc import Sequence
from typing import Any

__all__ = [
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
    "InvalidRequestError",
    "InvalidValueError",
    "JobError",
    "MaxChildrenError",
    "NameTakenError",
    "NoProcessError",
    "NoProviderAvailable",
    "OperationTimeout",
    "OtpyError",
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
    "ServerError",
    "SpendLimitError",
    "StartChildError",
    "StateError",
    "StepValidationError",
    "SupervisionError",
    "UnknownProviderError",
    "UnknownStepError",
    "VariableExistsError",
    "VariableNotFound",
]


class OtpyError(Exception):
    """Base of every expected otpy error; a GenServer returns these without crashing."""


class ConfigurationError(OtpyError, ValueError):
    """A setting or argument is invalid; the message names it and the allowed values."""


class SupervisionError(OtpyError):
    """An error of the supervision layer (child specs, supervisors, names)."""


class ChildSpecError(SupervisionError, ValueError):
    """A child spec or supervisor flag is invalid.

    ``child_id`` is the offending child's id (``None`` for a supervisor flag) and
    ``field`` the field that is wrong.
    """

    def __init__(self, message: str, *, child_id: Any = None, field: str | None = None) -> None:
        where = []
        if child_id is not None:
            where.append(f"child {child_id!r}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)
        self.child_id = child_id
        self.field = field


class DuplicateChildError(ChildSpecError):
    """Two child specs of one supervisor share an id."""

    def __init__(self, child_id: Any) -> None:
        super().__init__(
            "duplicate child id; ids must be unique within a supervisor",
            child_id=child_id,
            field="id",
        )


class StartChildError(SupervisionError):
    """A child's start function failed or returned something that is not a started actor.

    ``reason`` is the exception the start raised (also the ``__cause__``).
    """

    def __init__(self, child_id: Any, reason: BaseException | str) -> None:
        super().__init__(f"child {child_id!r} failed to start: {reason!r}")
        self.child_id = child_id
        self.reason = reason


class AlreadyStartedError(SupervisionError):
    """``start_child`` with the id of a running child; ``ref`` is the running actor."""

    def __init__(self, child_id: Any, ref: Any) -> None:
        super().__init__(f"child {child_id!r} is already started ({ref})")
        self.child_id = child_id
        self.ref = ref


class AlreadyPresentError(SupervisionError):
    """``start_child`` with the id of a child that is present but not running."""

    def __init__(self, child_id: Any) -> None:
        super().__init__(
            f"child {child_id!r} is already present (not running); "
            "use restart_child or delete_child first"
        )
        self.child_id = child_id


class ChildNotFoundError(SupervisionError, LookupError):
    """No child with that id (or ref) under this supervisor."""

    def __init__(self, child_id: Any) -> None:
        super().__init__(f"no child {child_id!r} in this supervisor")
        self.child_id = child_id


class ChildRunningError(SupervisionError):
    """``restart_child``/``delete_child`` of a running child; terminate it first."""

    def __init__(self, child_id: Any) -> None:
        super().__init__(f"child {child_id!r} is running; terminate_child it first")
        self.child_id = child_id


class ChildRestartingError(SupervisionError):
    """``restart_child``/``delete_child`` of a child whose restart is in progress."""

    def __init__(self, child_id: Any) -> None:
        super().__init__(
            f"child {child_id!r} is being restarted; terminate_child it to stop the restarts"
        )
        self.child_id = child_id


class MaxChildrenError(SupervisionError):
    """A DynamicSupervisor already has ``max_children`` children."""

    def __init__(self, max_children: int) -> None:
        super().__init__(f"max_children ({max_children}) reached")
        self.max_children = max_children


class NameTakenError(SupervisionError):
    """A name is already registered to a live actor (``ref``)."""

    def __init__(self, name: str, ref: Any) -> None:
        super().__init__(f"name {name!r} is already registered to {ref}")
        self.name = name
        self.ref = ref


class NoProcessError(SupervisionError, LookupError):
    """No live actor is registered under that name, or the actor is dead."""

    def __init__(self, target: Any) -> None:
        super().__init__(f"no live actor {target!r}")
        self.target = target


class CallTimeoutError(SupervisionError, TimeoutError):
    """A call got no reply within its timeout; the actor may still handle it later."""

    def __init__(self, target: Any, timeout: float | None) -> None:
        super().__init__(f"no reply from {target} within {timeout} s")
        self.target = target
        self.timeout = timeout


class ResilienceError(OtpyError):
    """An error of the resilience layer: rate limits, breakers, timeouts, fallbacks."""


class CostExceedsLimitError(ResilienceError, ValueError):
    """A cost that no window of a bucket could ever admit (it exceeds the bucket's limit).

    Raised at once by ``acquire``: waiting could never help.
    """

    def __init__(self, limiter: str, dimension: str, cost: int, limit: str) -> None:
        super().__init__(
            f"rate limiter {limiter!r}: a cost of {cost} {dimension} can never be admitted "
            f"by the bucket {limit}; split the request or raise the limit"
        )
        self.limiter = limiter
        self.dimension = dimension
        self.cost = cost
        self.limit = limit


class RateLimitTimeout(ResilienceError, TimeoutError):
    """``acquire`` was not admitted within its timeout; nothing was reserved.

    ``blocking`` names the buckets (or the pause) that held it back.
    """

    def __init__(self, limiter: str, timeout: float, blocking: Sequence[str]) -> None:
        held = ", ".join(blocking) or "requests queued ahead"
        super().__init__(
            f"rate limiter {limiter!r}: not admitted within {timeout:g} s (held back by {held})"
        )
        self.limiter = limiter
        self.timeout = timeout
        self.blocking = tuple(blocking)


class PermitError(ResilienceError):
    """A rate-limit permit was settled twice or released after it was settled."""


class CircuitOpenError(ResilienceError):
    """The circuit breaker refused the call without making it.

    ``retry_in`` is how many seconds until the breaker lets a probe through (0 when a
    probe is already in flight and this call was not it).
    """

    def __init__(self, breaker: str, retry_in: float, reason: str = "open") -> None:
        super().__init__(
            f"circuit breaker {breaker!r} is {reason}; call refused (probe in {retry_in:.3f} s)"
        )
        self.breaker = breaker
        self.retry_in = retry_in
        self.reason = reason


class OperationTimeout(ResilienceError, TimeoutError):
    """A guarded call did not finish within its per-call timeout (it is abandoned)."""

    def __init__(self, operation: str, timeout: float) -> None:
        super().__init__(f"{operation!r} did not finish within {timeout:g} s")
        self.operation = operation
        self.timeout = timeout


class AllOptionsFailed(ResilienceError):
    """Every option of a fallback chain failed; ``failures`` is ``[(option, error), ...]``
    in the order they were tried (the last error is also the ``__cause__``)."""

    def __init__(self, chain: str, failures: Sequence[tuple[str, BaseException]]) -> None:
        why = "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in failures)
        super().__init__(f"{chain!r}: all {len(failures)} options failed ({why})")
        self.chain = chain
        self.failures = list(failures)


class RegistryError(OtpyError):
    """An error of the step or provider registry (the registry itself carries on)."""


class StepValidationError(RegistryError, ValueError):
    """A step's configuration is invalid: ``step`` names the step (its ``name`` in the
    pipeline, or its type), ``field`` the offending field (``None`` for the whole step)."""

    def __init__(self, message: str, *, step: str | None = None, field: str | None = None) -> None:
        where = []
        if step is not None:
            where.append(f"step {step!r}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)
        self.step = step
        self.field = field


class UnknownStepError(RegistryError, LookupError):
    """No step type of that name; ``known`` lists the registered ones and ``suggestion``
    is the closest match (or ``None``)."""

    def __init__(
        self,
        name: str,
        known: Sequence[str] = (),
        suggestion: str | None = None,
        *,
        step: str | None = None,
        where: str | None = None,
    ) -> None:
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        shown = ", ".join(sorted(known)) or "none"
        prefix = f"step {step!r}, field 'type': " if step is not None else ""
        place = f" ({where})" if where else ""
        super().__init__(f"{prefix}unknown step type {name!r}{hint} (registered: {shown}){place}")
        self.name = name
        self.known = tuple(sorted(known))
        self.suggestion = suggestion
        self.step = step

    def __str__(self) -> str:  # LookupError would quote the message like a key
        return str(self.args[0])


class DuplicateStepError(RegistryError):
    """``register_step`` with a name already registered (pass ``replace=True`` to swap)."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"step type {name!r} is already registered; pass replace=True to replace it"
        )
        self.name = name


class UnknownProviderError(RegistryError, LookupError):
    """No provider registered under that name; ``known`` lists the registered ones."""

    def __init__(self, name: str, known: Sequence[str] = ()) -> None:
        shown = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown provider {name!r} (registered: {shown})")
        self.name = name
        self.known = tuple(sorted(known))

    def __str__(self) -> str:
        return str(self.args[0])


class DuplicateProviderError(RegistryError):
    """``register_provider`` with a name already registered (pass ``replace=True``)."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"provider {name!r} is already registered; pass replace=True to replace it"
        )
        self.name = name


class NoProviderAvailable(RegistryError):
    """No registered, healthy provider has every capability asked for.

    ``capabilities`` is what was asked; ``excluded`` maps providers that have them but were
    left out to why (unhealthy, breaker open, excluded by the caller).
    """

    def __init__(self, capabilities: Sequence[str], excluded: dict[str, str] | None = None) -> None:
        wanted = ", ".join(capabilities) or "any capability"
        left = excluded or {}
        why = "; ".join(f"{name}: {reason}" for name, reason in left.items())
        more = f" ({why})" if why else ""
        super().__init__(f"no provider available with {wanted}{more}")
        self.capabilities = tuple(capabilities)
        self.excluded = dict(left)


class PipelineError(OtpyError):
    """A pipeline run failed or was cancelled: ``result`` is its PipelineResult (every step
    that ran, with its output or error) and ``step`` the step that failed (or None)."""

    def __init__(self, message: str, *, result: Any = None, step: str | None = None) -> None:
        super().__init__(message)
        self.result = result
        self.step = step


class JobError(OtpyError):
    """An optimization job cannot do what was asked: no such job, a job id already in the
    store, pausing a job that has ended, resuming without its metric."""


class StateError(OtpyError):
    """A state store failed or was misused (closed, a malformed export, a broken file)."""


class VariableNotFound(StateError, LookupError):
    """No variable with that name or id in the session."""

    def __init__(self, identifier: str, session_id: str | None = None) -> None:
        where = f" in session {session_id!r}" if session_id is not None else ""
        super().__init__(f"no variable {identifier!r}{where}")
        self.identifier = identifier
        self.session_id = session_id

    def __str__(self) -> str:  # LookupError would quote the message like a key
        return str(self.args[0])


class VariableExistsError(StateError):
    """``register_variable`` with a name that is already registered in the session."""

    def __init__(self, name: str, session_id: str | None = None) -> None:
        where = f" in session {session_id!r}" if session_id is not None else ""
        super().__init__(
            f"variable {name!r} is already registered{where}; "
            "set_variable changes it, delete_variable removes it"
        )
        self.name = name
        self.session_id = session_id


class InvalidValueError(StateError, ValueError):
    """A value of the wrong type, or one that breaks a constraint of its variable.

    ``variable`` names the variable, ``value`` is the refused value and ``rule`` the
    rule it broke (``"type float"``, ``"max 2.0"``, ``"pattern ^[a-z]+$"``, ...).
    """

    def __init__(self, variable: str, value: Any, rule: str, detail: str = "") -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        more = f" ({detail})" if detail else ""
        super().__init__(f"variable {variable!r}: value {shown} breaks {rule}{more}")
        self.variable = variable
        self.value = value
        self.rule = rule


class BatchUpdateError(StateError):
    """A batch update failed for one or more variables.

    ``failures`` maps each failed name (or id) to its error; ``applied`` lists the
    variables that were changed anyway (always empty on an atomic backend, which
    applies all or nothing).
    """

    def __init__(self, failures: dict[str, BaseException], applied: Sequence[str] = ()) -> None:
        why = "; ".join(f"{name}: {exc}" for name, exc in failures.items())
        done = (
            f"; applied anyway: {', '.join(map(repr, applied))}"
            if applied
            else "; nothing was applied"
        )
        super().__init__(f"batch update failed for {len(failures)} variable(s): {why}{done}")
        self.failures = dict(failures)
        self.applied = list(applied)


class ProviderError(OtpyError):
    """A provider call failed. ``retryable`` says whether trying again can help;
    ``retry_after`` is the provider's own advice in seconds (Retry-After), if it gave one.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        where = f"provider {provider!r}" if provider else "provider"
        code = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{where}{code}: {message}")
        self.provider = provider
        self.status = status
        self.retry_after = retry_after


class RateLimitedError(ProviderError):
    """429: the provider's rate limit was hit; wait ``retry_after`` and try again."""

    retryable = True


class OverloadedError(ProviderError):
    """529 (Anthropic ``overloaded_error``) or 503: the provider is overloaded."""

    retryable = True


class ServerError(ProviderError):
    """Another 5xx from the provider."""

    retryable = True


class ProviderTimeoutError(ProviderError, TimeoutError):
    """The provider did not answer in time."""

    retryable = True


class ProviderConnectionError(ProviderError, ConnectionError):
    """The provider could not be reached."""

    retryable = True


class AuthenticationError(ProviderError):
    """401 / 403: the key is missing, wrong or lacks permission; retrying cannot help."""


class InvalidRequestError(ProviderError, ValueError):
    """400 / 404 / 413 / 422: the request itself is wrong; retrying cannot help."""


class SpendLimitError(ProviderError):
    """The account's credits, budget or quota are exhausted; retrying cannot help."""
