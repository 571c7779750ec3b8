"""Step types and plugin objects the StepRegistry tests load through fake entry points."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otpy.steps import Step, StepContext, StepMetadata, StepResult


class Echo(Step):
    """Echoes ``prompt`` (upper-cased with ``upper``); records it in the run's variables."""

    metadata = StepMetadata(
        description="echoes its prompt",
        required_fields=("prompt",),
        optional_fields=("upper",),
        capabilities=("text",),
        version="1.2.0",
    )

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        text = str(step["prompt"])
        if step.get("upper"):
            text = text.upper()
        context.variables["last"] = text
        return StepResult(output=text, text=text)


class Count(Step):
    """Counts the words of ``text``."""

    metadata = StepMetadata(
        description="counts words",
        required_fields=("text",),
        capabilities=("text", "analysis"),
    )

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        return StepResult(output=len(str(step["text"]).split()))


class Shout(Echo):
    """A plugin class registered under its entry point's name."""


class Whisper(Echo):
    """Registered by :func:`register_many`."""


def register_many(registry: Any) -> None:
    """A plugin function: registers two step types itself."""
    registry.register_step("plugin.whisper", Whisper)
    registry.register_step("plugin.count", Count, metadata={"capabilities": ["analysis"]})


def register_broken(registry: Any) -> None:
    """A plugin whose registration raises."""
    raise RuntimeError("plugin bug")


class NotAStep:
    """A class of the wrong kind."""


NOT_CALLABLE = 42
