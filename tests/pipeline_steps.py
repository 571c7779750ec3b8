"""Test-only step types for the pipeline executor tests, and the runtime set-up they share.

``register(rt)`` adds them to a runtime: ``const`` (gives back its ``value``/``text``,
with ``tokens`` as usage), ``fail`` (an expected failure: a :class:`StepFailure`),
``flaky`` (fails ``failures`` times per ``key``, then answers), ``crash`` (a plain
RuntimeError: a bug), ``block`` (waits on a :class:`Gate`) and ``read_vars`` (the run's
variables as ``context.variables`` holds them). Every execution is appended to
:data:`EXECUTED` as ``(run_id, step name)``.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from provider_plugins import ScriptedProvider

import otpy
from otpy import Runtime
from otpy.errors import OtpyError
from otpy.providers import Usage
from otpy.steps import Step, StepContext, StepMetadata, StepResult
from otpy.testing import FakeClock

NO_TIMEOUT = {"timeout": None, "max_attempts": 1}
"""Provider limits for the tests: one attempt, no timeout thread."""

EXECUTED: list[tuple[str, str]] = []
_lock = threading.Lock()
_attempts: Counter[str] = Counter()


class StepFailure(OtpyError):
    """The expected failure of a test step (``on_error`` applies to it)."""


def _ran(step: Mapping[str, Any], context: StepContext) -> None:
    with _lock:
        EXECUTED.append((context.run_id, str(step.get("name"))))


def reset() -> None:
    """Forget what ran and every ``flaky`` count (each test starts afresh)."""
    with _lock:
        EXECUTED.clear()
        _attempts.clear()
        GATES.clear()


def executed(run_id: str) -> list[str]:
    """The steps of run ``run_id`` that executed, in order."""
    with _lock:
        return [name for run, name in EXECUTED if run == run_id]


class Const(Step):
    """Answers ``value`` as its output, ``text`` as its text, ``tokens`` input tokens."""

    metadata = StepMetadata(
        description="a constant", optional_fields=("value", "text", "tokens"), version="1.0.0"
    )

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        _ran(step, context)
        return StepResult(
            output=step.get("value"),
            text=step.get("text"),
            usage=Usage(input_tokens=int(step.get("tokens") or 0)),
        )


class Fail(Step):
    """Fails with a StepFailure saying ``message``."""

    metadata = StepMetadata(description="fails", optional_fields=("message",))

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        _ran(step, context)
        raise StepFailure(str(step.get("message") or "it failed"))


class Flaky(Step):
    """Fails ``failures`` (default 1) times for its ``key``, then answers the attempt number
    and the ``provider`` it was given."""

    metadata = StepMetadata(
        description="fails, then works", required_fields=("key",), optional_fields=("failures",)
    )

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        _ran(step, context)
        key = str(step["key"])
        with _lock:
            _attempts[key] += 1
            attempt = _attempts[key]
        if attempt <= int(step.get("failures", 1)):
            raise StepFailure(f"attempt {attempt} of {key} failed")
        return StepResult(output={"attempt": attempt, "provider": step.get("provider")})


class Crash(Step):
    """Raises a plain RuntimeError: a bug in the step type."""

    metadata = StepMetadata(description="crashes", optional_fields=("message",))

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        _ran(step, context)
        raise RuntimeError(str(step.get("message") or "step bug"))


@dataclass
class Gate:
    """Where a ``block`` step waits: ``entered`` is set when it starts waiting; it goes on
    when ``release`` is set (a StepFailure after 10 s: a test that forgot it). ``count``:
    how many steps entered it; ``thread``: the thread of the last one."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    count: int = 0
    thread: threading.Thread | None = None


GATES: dict[str, Gate] = {}


def gate() -> tuple[str, Gate]:
    """A new gate and its key (what a ``block`` step's ``gate`` field names)."""
    key = uuid.uuid4().hex[:8]
    GATES[key] = Gate()
    return key, GATES[key]


class Block(Step):
    """Waits on the :class:`Gate` named ``gate``; answers the gate's key."""

    metadata = StepMetadata(description="blocks", required_fields=("gate",))

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        _ran(step, context)
        waiting = GATES[str(step["gate"])]
        with _lock:
            waiting.count += 1
            waiting.thread = threading.current_thread()
        waiting.entered.set()
        if not waiting.release.wait(10):
            raise StepFailure("the test never released the gate")
        return StepResult(output=step["gate"])


class ReadVars(Step):
    """Answers ``context.variables`` (a copy; only ``names`` when given)."""

    metadata = StepMetadata(description="reads variables", optional_fields=("names",))

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        _ran(step, context)
        names = step.get("names")
        if names is None:
            return StepResult(output=dict(context.variables))
        return StepResult(output={name: context.variables.get(name) for name in names})


TEST_STEPS: dict[str, type[Step]] = {
    "const": Const,
    "fail": Fail,
    "flaky": Flaky,
    "crash": Crash,
    "block": Block,
    "read_vars": ReadVars,
}


def register(rt: Runtime) -> None:
    """Register the test step types with ``rt``."""
    for name, step_cls in TEST_STEPS.items():
        rt.steps.register_step(name, step_cls)


def start(clock: FakeClock | None = None, **config: Any) -> Runtime:
    """A runtime with no configured provider (tests register their own), no plugins, the
    test step types registered, and a unique name."""
    settings: dict[str, Any] = {"name": f"pl-{uuid.uuid4().hex[:8]}", "plugins": False}
    settings["providers"] = {}
    settings.update(config)
    rt = otpy.start(settings, clock=clock) if clock is not None else otpy.start(settings)
    try:
        register(rt)
    except BaseException:
        rt.stop()
        raise
    return rt


def add_provider(
    rt: Runtime,
    name: str,
    *,
    priority: int = 0,
    limits: Mapping[str, Any] | None = None,
    capabilities: tuple[str, ...] = ("text",),
    **options: Any,
) -> ScriptedProvider:
    """Register a ScriptedProvider ``name`` (no timeout, one attempt unless ``limits``)."""
    provider = ScriptedProvider(name, capabilities=capabilities, **options)
    rt.providers.register_provider(
        name,
        provider,
        capabilities=capabilities,
        priority=priority,
        limits={**NO_TIMEOUT, **(limits or {})},
    )
    return provider
