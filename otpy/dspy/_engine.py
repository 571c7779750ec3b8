"""The DSPy engine whose every call goes through otpy's provider layer.

DSPy 3.4's extension point for a model is an *engine* (``complete(dspy.lm15.Request) ->
dspy.lm15.Response``, ``stream``, ``close``; an async twin), passed to
``dspy.LM(model, engine=..., async_engine=...)``; the engine makes one attempt and DSPy's
LM layer keeps history and callbacks. :class:`OtpyEngine` makes that attempt through the
runtime's providers: selection by name or capabilities, the rate limiters (they wait),
the breaker, the guard's retries (Retry-After honoured), failover to another capable
provider, the ``provider.call`` telemetry, tokens. Around each call it applies the
:class:`CallScope` in force (:func:`otpy.dspy.call_scope`): a journal answers the
requests it holds, and a gate holds, stops or budgets the live ones.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import dspy  # type: ignore[import-untyped]
from dspy import lm15

from otpy.calls import CallGate, CallJournal, CallsCancelled, request_digest
from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.dspy._convert import lm15_error, to_completion_request, to_response
from otpy.errors import ConfigurationError
from otpy.pipelines import ProviderDirectory, StepGateway
from otpy.providers import Completion, CompletionRequest
from otpy.telemetry import span

__all__ = ["SCOPE_KEY", "AsyncOtpyEngine", "CallScope", "OtpyEngine", "current_scope"]

SCOPE_KEY = "otpy_call_scope"
"""The DSPy setting (``dspy.context(otpy_call_scope=...)``) holding the CallScope; DSPy
copies settings into the threads of its ParallelExecutor (Evaluate, optimizers)."""


@dataclass(frozen=True)
class CallScope:
    """What applies to the LLM calls of a program: a ``gate`` (pause, cancel, budgets,
    accounting) and a ``journal`` (record and replay), either may be None."""

    gate: CallGate | None = None
    journal: CallJournal | None = None


_NO_SCOPE = CallScope()


def current_scope() -> CallScope:
    """The CallScope of the DSPy context of this thread (an empty one if none is set)."""
    scope = dspy.settings.get(SCOPE_KEY)
    return scope if isinstance(scope, CallScope) else _NO_SCOPE


class OtpyEngine:
    """A DSPy engine on otpy's provider layer (see the module docstring).

    ``providers`` is the runtime's provider view (``rt.providers``); ``provider`` names
    one, else each call selects a provider with ``capabilities``; ``model`` is the
    provider-side model (None: its default); ``failover`` moves a call whose provider
    failed to another capable one. ``complete`` runs in the caller's thread, safe from any
    number of threads at once, and blocks on the provider call (rate-limit waits, retries),
    on a paused gate and on the journal's write.

    A program saved with DSPy (``save``) keeps the engine as its ``dump_state`` (the
    target, no runtime, no secret); loaded back (``allow_unsafe_lm_state=True``) it has no
    providers until ``otpy.dspy.bind(program, rt)`` gives it a runtime's.
    """

    supports_function_calling = False
    supports_reasoning = False

    def __init__(
        self,
        providers: ProviderDirectory | None,
        *,
        provider: str | None = None,
        capabilities: Iterable[str] = (),
        model: str | None = None,
        failover: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.providers = providers
        self.provider = provider
        self.capabilities = tuple(capabilities)
        self.model = model
        self.failover = failover
        self.clock = clock
        wanted = provider if provider is not None else "+".join(self.capabilities) or "any"
        self.target = wanted if model is None else f"{wanted}:{model}"
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def dump_state(self) -> dict[str, Any]:
        """What DSPy saves of this engine: its target (no runtime, no secret)."""
        return {
            "provider": self.provider,
            "capabilities": list(self.capabilities),
            "model": self.model,
            "failover": self.failover,
        }

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> OtpyEngine:
        """An engine of a saved program: unbound until ``bound_to`` a runtime."""
        return cls(
            None,
            provider=state.get("provider"),
            capabilities=state.get("capabilities") or (),
            model=state.get("model"),
            failover=bool(state.get("failover", True)),
        )

    def bound_to(self, providers: ProviderDirectory, clock: Clock) -> OtpyEngine:
        """This engine's target on ``providers`` (a new engine)."""
        state = self.dump_state()
        return OtpyEngine(
            providers,
            provider=state["provider"],
            capabilities=state["capabilities"],
            model=state["model"],
            failover=state["failover"],
            clock=clock,
        )

    @property
    def supports_response_schema(self) -> bool:
        """Whether DSPy's JSONAdapter may ask for structured output: the named provider
        has ``structured_output``, or a call may select one that has it."""
        if self.provider is None or self.providers is None:
            return True
        return "structured_output" in self.providers.table.require(self.provider).capabilities

    @property
    def supported_params(self) -> frozenset[str]:
        params = {"temperature", "max_tokens", "stop"}
        if self.supports_response_schema:
            params.add("response_format")
        return frozenset(params)

    def complete(self, request: lm15.Request) -> lm15.Response:
        """One call for ``request`` (see the class docstring); raises the ``dspy.lm15``
        error matching what the provider layer raised, or CallsStopped from the gate."""
        try:
            completion_request, needs = to_completion_request(
                request, model=self.model, ignored=self._ignored
            )
        except ConfigurationError as exc:
            raise lm15_error(exc, provider=self.provider) from exc
        completion, replayed = self.call(completion_request, needs, current_scope())
        return to_response(completion, replayed=replayed)

    def call(
        self, request: CompletionRequest, needs: tuple[str, ...], scope: CallScope
    ) -> tuple[Completion, bool]:
        """The answer to ``request`` and whether it came from ``scope``'s journal: a held
        answer (after the gate's ``replay``), else a live call between the gate's ``enter``
        and ``leave``, recorded in the journal before it returns."""
        gate, journal = scope.gate, scope.journal
        digest = ""
        if journal is not None:
            digest = request_digest(request, self.target)
            held = journal.take(digest)
            if held is not None:
                if gate is not None:
                    gate.replay()
                return held, True
        if gate is not None:
            gate.enter()
        completion: Completion | None = None
        try:
            completion = self._live(request, needs)
            if journal is not None:
                journal.record(digest, completion)
        finally:
            if gate is not None:
                gate.leave(completion)
        if gate is not None and gate.state == "cancelled":
            raise CallsCancelled("the job was cancelled: no further LLM call")
        return completion, False

    def _live(self, request: CompletionRequest, needs: tuple[str, ...]) -> Completion:
        if self.providers is None:
            unbound = ConfigurationError(
                f"the otpy engine {self.target!r} of a loaded program has no runtime: "
                "call otpy.dspy.bind(program, rt) first"
            )
            raise lm15_error(unbound, provider=self.provider) from unbound
        capabilities = (*self.capabilities, *needs)
        gateway = StepGateway(
            self.providers,
            clock=self.clock,
            capabilities=capabilities,
            failover=self.failover,
            step=f"dspy:{self.target}",
        )
        with span("dspy.lm_call", {"target": self.target}) as call:
            try:
                completion = gateway.complete(
                    request, provider=self.provider, capabilities=capabilities
                )
            except Exception as exc:
                call.set(outcome=type(exc).__name__)
                raise lm15_error(exc, provider=self.provider) from exc
            call.set(
                outcome="ok",
                provider=completion.provider,
                tokens=completion.usage.total_tokens,
                retries=gateway.retries,
                failed_over=list(gateway.failed),
            )
        return completion

    def _ignored(self, setting: str) -> None:
        with self._lock:
            if setting in self._warned:
                return
            self._warned.add(setting)
        warnings.warn(
            f"otpy.dspy ({self.target}): Config.{setting} is not honoured by otpy's provider "
            "layer and is left out of the request",
            stacklevel=4,
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> OtpyEngine:
        """The engine itself: it holds no state of a program, only the runtime's providers
        (which are shared, never copied), so a deep copy of a program, an LM or an
        optimizer (a DSPy job copies its optimizer for every run) shares it."""
        return self

    def stream(self, request: lm15.Request) -> Iterator[Any]:
        """The whole answer as stream events (otpy's providers answer in one piece)."""
        return iter(lm15.response_to_events(self.complete(request)))

    def close(self) -> None:
        """Nothing to release: the providers belong to the runtime."""
        return None

    def __repr__(self) -> str:
        return f"<OtpyEngine {self.target}>"


class AsyncOtpyEngine:
    """The async twin DSPy awaits (``acall``, ``dspy.asyncify``): runs ``engine``'s call in
    a worker thread (``asyncio.to_thread``, which carries the DSPy context along)."""

    def __init__(self, engine: OtpyEngine) -> None:
        self.engine = engine

    async def complete(self, request: lm15.Request) -> lm15.Response:
        return await asyncio.to_thread(self.engine.complete, request)

    async def stream(self, request: lm15.Request) -> AsyncIterator[Any]:
        response = await self.complete(request)
        for event in lm15.response_to_events(response):
            yield event

    async def aclose(self) -> None:
        return None

    def __deepcopy__(self, memo: dict[int, Any]) -> AsyncOtpyEngine:
        """The engine itself (see ``OtpyEngine.__deepcopy__``)."""
        return self

    def dump_state(self) -> dict[str, Any]:
        return self.engine.dump_state()

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> AsyncOtpyEngine:
        return cls(OtpyEngine.load_state(state))

    def __repr__(self) -> str:
        return f"<AsyncOtpyEngine {self.engine.target}>"
