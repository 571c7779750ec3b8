"""What the executor offers the control-flow step types (loops) through ``context.host``.

A loop's steps are compiled with the pipeline and run by the executor; a loop step type
only decides what to iterate and when to stop, through :class:`StepHost`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from otpy.providers import Usage

__all__ = ["BodyRun", "StepHost"]


@dataclass(frozen=True, slots=True)
class BodyRun:
    """One run of a loop's steps: each step's ``results`` (name -> output, for those that
    ran), the tokens they spent (``usage``), and the ``error`` that stopped them (with the
    ``failed_step``), or None."""

    results: dict[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    failed_step: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class StepHost(Protocol):
    """The executor side of a running control-flow step (one per step execution)."""

    def resolve(self, source: Any, *, field: str) -> Any:
        """A data source in the run's scope: a list as it is, or a path (``steps.scan.files``,
        ``previous_response:field``, ``name:field``, a variable name); an OtpyError naming
        ``field`` when it leads nowhere."""
        ...

    def holds(self, condition: Any, *, field: str, frame: Mapping[str, Any] | None = None) -> bool:
        """Whether ``condition`` holds in the run's scope (with ``frame`` as ``loop``)."""
        ...

    def run_body(self, frame: Mapping[str, Any], *, isolated: bool = False) -> BodyRun:
        """Run the step's ``steps`` once with ``frame`` as ``loop``; ``isolated`` (parallel
        iterations): their results and variables stay in this iteration."""
        ...

    def progress(self, item: int, items: int | None) -> None:
        """Report that iteration ``item`` (1-based) of ``items`` (None: unknown) starts."""
        ...

    def elapsed(self) -> float:
        """Seconds since the step started (on the run's clock)."""
        ...

    def cancelled(self) -> bool:
        """Whether the run was asked to stop."""
        ...
