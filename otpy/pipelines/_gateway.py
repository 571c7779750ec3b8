"""The provider gateway of one step execution: it accounts for what the step spent (tokens,
retries, providers) and fails over to another capable provider when one fails."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Protocol

from otpy.clock import Clock
from otpy.errors import (
    CircuitOpenError,
    ConfigurationError,
    InvalidRequestError,
    NoProviderAvailable,
    OperationTimeout,
    ProviderError,
    RateLimitTimeout,
)
from otpy.providers import Completion, CompletionRequest, ProviderEntry, ProviderTable, Usage
from otpy.resilience import RetryAttempt
from otpy.telemetry import emit_safely

__all__ = ["FAILOVER_ERRORS", "ProviderDirectory", "StepGateway"]

FAILOVER_ERRORS: tuple[type[BaseException], ...] = (
    ProviderError,
    CircuitOpenError,
    RateLimitTimeout,
    OperationTimeout,
)
"""Failures of a provider (not of the request) after which another provider is tried;
an InvalidRequestError is the request's fault and is not failed over."""


class ProviderDirectory(Protocol):
    """What the executor needs of the provider registry (its handle implements it)."""

    @property
    def table(self) -> ProviderTable: ...

    def select(
        self,
        capabilities: str | Iterable[str] = (),
        strategy: str | None = None,
        exclude: str | Iterable[str] = (),
    ) -> ProviderEntry: ...


class StepGateway:
    """A ``ProviderGateway`` for one step execution (thread-safe: fan-out steps call it
    from several threads). ``usage``, ``retries``, ``calls``, ``provider``/``model`` (of
    the last answer) and ``failed`` (providers that failed before another answered) say
    what the step spent. With ``failover``, a provider failure (see
    :data:`FAILOVER_ERRORS`) moves the call to the best other healthy provider with the
    call's capabilities and the step type's (``capabilities``), each tried once, with the
    provider's default model; when none is left the last error is raised, with a note.
    Without a ``directory`` it only accounts (the run has no providers)."""

    def __init__(
        self,
        directory: ProviderDirectory | None,
        *,
        clock: Clock,
        capabilities: Sequence[str] = (),
        failover: bool = True,
        step: str = "",
    ) -> None:
        self._directory = directory
        self._clock = clock
        self._capabilities = tuple(capabilities)
        self._failover = failover
        self._step = step
        self._lock = threading.Lock()
        self.usage = Usage()
        self.retries = 0
        self.calls = 0
        self.provider: str | None = None
        self.model: str | None = None
        self.failed: list[str] = []

    def complete(
        self,
        request: CompletionRequest,
        *,
        provider: str | None = None,
        capabilities: Sequence[str] = (),
    ) -> Completion:
        """Complete ``request`` on ``provider`` or on one selected for ``capabilities``,
        failing over as described above."""
        directory = self._directory
        if directory is None:
            raise ConfigurationError("this pipeline run has no provider registry")
        if provider is not None:
            entry = directory.table.require(provider)
            missing = set(capabilities) - entry.capabilities
            if missing:
                raise NoProviderAvailable(
                    sorted(capabilities), {provider: f"lacks {', '.join(sorted(missing))}"}
                )
        else:
            entry = directory.select(capabilities)
        tried: list[str] = []
        wanted = sorted(set(capabilities) | set(self._capabilities))
        while True:
            attempts: list[RetryAttempt] = []
            try:
                completion = entry.complete(request, clock=self._clock, attempts=attempts)
            except FAILOVER_ERRORS as exc:
                self._account(attempts, None, entry.name)
                if isinstance(exc, InvalidRequestError) or not self._failover:
                    raise
                tried.append(entry.name)
                try:
                    entry = directory.select(wanted, exclude=tried)
                except NoProviderAvailable as none:
                    exc.add_note(f"no other provider to fail over to: {none}")
                    raise exc from None
                emit_safely(
                    "pipeline.provider_failover",
                    {},
                    {
                        "step": self._step,
                        "failed": tried[-1],
                        "to": entry.name,
                        "error": type(exc).__name__,
                    },
                )
                if request.model is not None:
                    request = request.model_copy(update={"model": None})
                continue
            self._account(attempts, completion, entry.name)
            return completion

    def _account(
        self, attempts: list[RetryAttempt], completion: Completion | None, name: str
    ) -> None:
        retried = sum(1 for attempt in attempts if attempt.delay is not None)
        with self._lock:
            self.retries += retried
            if completion is None:
                self.failed.append(name)
                return
            self.calls += 1
            self.usage = self.usage + completion.usage
            self.provider = completion.provider
            self.model = completion.model
