"""Provider gateways for step tests: what a StepContext calls instead of the registry."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from otpy.errors import NoProviderAvailable, UnknownProviderError
from otpy.providers import Completion, CompletionRequest, Provider
from otpy.steps import StepContext
from otpy.telemetry import current_context


class Gateway:
    """Dispatches to providers by name, or to the first (in the order given) that has
    every capability asked for. ``calls`` records ``(provider, capabilities, trace id)``
    of every call, in the order they arrived."""

    def __init__(self, *providers: Provider) -> None:
        self.providers = {p.name: p for p in providers}
        self.calls: list[tuple[str | None, tuple[str, ...], str | None]] = []
        self._lock = threading.Lock()

    def choose(self, provider: str | None, capabilities: Sequence[str]) -> Provider:
        if provider is not None:
            if provider not in self.providers:
                raise UnknownProviderError(provider, list(self.providers))
            return self.providers[provider]
        for candidate in self.providers.values():
            if set(capabilities) <= candidate.capabilities:
                return candidate
        raise NoProviderAvailable(capabilities)

    def complete(
        self,
        request: CompletionRequest,
        *,
        provider: str | None = None,
        capabilities: Sequence[str] = (),
    ) -> Completion:
        with self._lock:
            self.calls.append((provider, tuple(capabilities), current_context().correlation_id))
        return self.choose(provider, capabilities).complete(request)

    def context(self, **kwargs: Any) -> StepContext:
        """A fresh step context on this gateway."""
        return StepContext(providers=self, **kwargs)


class GatedGateway(Gateway):
    """Every call waits at a gate until the test lets it through (``release``), counting
    the calls in flight: ``wait_in_flight(n)`` returns once ``n`` are waiting; the
    highest count ever seen is ``max_in_flight``. ``threads`` holds the id of every thread
    that made a call: a thread makes one call at a time, so no more calls than that many
    can ever have run at once (whatever the timing of this test)."""

    def __init__(self, *providers: Provider) -> None:
        super().__init__(*providers)
        self._cond = threading.Condition()
        self._permits = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.threads: set[int] = set()

    def complete(
        self,
        request: CompletionRequest,
        *,
        provider: str | None = None,
        capabilities: Sequence[str] = (),
    ) -> Completion:
        with self._cond:
            self.threads.add(threading.get_ident())
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: self._permits > 0, timeout=10):
                self.in_flight -= 1
                raise AssertionError("GatedGateway: the test never released this call")
            self._permits -= 1
            self.in_flight -= 1
            self._cond.notify_all()
        return super().complete(request, provider=provider, capabilities=capabilities)

    def wait_in_flight(self, count: int, timeout: float = 5.0) -> int:
        with self._cond:
            ok = self._cond.wait_for(lambda: self.in_flight >= count, timeout)
            assert ok, f"only {self.in_flight} calls in flight, waited for {count}"
            return self.in_flight

    def release(self, count: int = 1) -> None:
        with self._cond:
            self._permits += count
            self._cond.notify_all()
