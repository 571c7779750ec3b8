"""Providers for the provider registry and health monitor tests, and the objects the fake
``otpy.providers`` entry points point at (good and broken plugins)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from otpy.errors import ServerError
from otpy.providers import Completion, CompletionRequest, Provider, Usage
from otpy.testing import FakeClock


class ScriptedProvider(Provider):
    """A provider that answers from a script, and misbehaves on demand.

    Each call takes the next ``script`` item (an exception instance to raise, or None to
    answer); with the script empty it answers, unless ``failing`` holds an exception
    (raised on every call). ``latency`` seconds (a number, or one per call, then 0) are
    added to ``clock`` inside the call (single-threaded tests only). With ``gate`` set,
    calls block until it is set; ``wait_calls(n)`` waits until n calls have begun.
    """

    def __init__(
        self,
        name: str = "scripted",
        *,
        capabilities: Iterable[str] = ("text",),
        script: Iterable[BaseException | None] = (),
        clock: FakeClock | None = None,
        latency: float | Iterable[float] = 0.0,
        gate: threading.Event | None = None,
        tokens: tuple[int, int] = (10, 5),
    ) -> None:
        self.name = name
        self.capabilities = frozenset(capabilities)  # type: ignore[misc]
        self.script = list(script)
        self.clock = clock
        scalar = isinstance(latency, int | float)
        self.latency = float(latency) if isinstance(latency, int | float) else 0.0
        self.latencies: list[float] = [] if scalar else list(latency)  # type: ignore[arg-type]
        self.gate = gate
        self.tokens = tokens
        self.failing: BaseException | None = None
        self.calls = 0
        self.entered = threading.Condition()
        self.requests: list[CompletionRequest] = []

    def complete(self, request: CompletionRequest) -> Completion:
        with self.entered:
            self.calls += 1
            self.requests.append(request)
            step = self.script.pop(0) if self.script else None
            latency = self.latencies.pop(0) if self.latencies else self.latency
            self.entered.notify_all()
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        if latency and self.clock is not None:
            self.clock.advance(latency)
        if step is not None:
            raise step
        if self.failing is not None:
            raise self.failing
        return Completion(
            text=f"{self.name}: {request.prompt}",
            model=request.model or f"{self.name}-model",
            provider=self.name,
            usage=Usage(input_tokens=self.tokens[0], output_tokens=self.tokens[1]),
        )

    def wait_calls(self, n: int, timeout: float = 5.0) -> None:
        with self.entered:
            if not self.entered.wait_for(lambda: self.calls >= n, timeout):
                raise TimeoutError(f"{self.calls} of {n} calls began")


class CheckedProvider(ScriptedProvider):
    """A ScriptedProvider with a ``health_check``: returns ``check`` (or raises it, if it
    is an exception)."""

    def __init__(self, name: str = "checked", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.check: bool | BaseException | None = True
        self.checks = 0

    def health_check(self) -> bool | None:
        self.checks += 1
        if isinstance(self.check, BaseException):
            raise self.check
        return self.check


# -- what the fake entry points load ---------------------------------------------------------


class EchoProvider(ScriptedProvider):
    """A plugin provider class, made with no arguments."""

    capabilities = frozenset({"text", "echo"})

    def __init__(self) -> None:
        super().__init__("echo", capabilities=("text", "echo"))


ECHO = EchoProvider()
"""A plugin provider instance."""


def register_pair(handle: Any) -> None:
    """A plugin function: registers two providers itself."""
    handle.register_provider("pair.a", ScriptedProvider("pair.a"), priority=1)
    handle.register_provider("pair.b", ScriptedProvider("pair.b"))


def broken_plugin(handle: Any) -> None:
    """A plugin function that fails."""
    raise ServerError("plugin backend unreachable", provider="broken")


class NeedsArgs(ScriptedProvider):
    """A Provider subclass that cannot be made with no arguments."""

    def __init__(self, api_key: str) -> None:
        super().__init__("needs_args")
        self.api_key = api_key


NOT_A_PROVIDER = 42
"""A plugin of the wrong kind."""


class NotAProviderClass:
    """A class that is not a Provider."""
