"""The progress of a pipeline run, shared between the thread running it and the code
watching it: :class:`RunProgress` and the :class:`StepEvent` it reports."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from otpy.pipelines._result import StepOutcome
from otpy.telemetry import new_correlation_id

__all__ = ["RunProgress", "StepEvent"]

logger = logging.getLogger("otpy.pipelines")


@dataclass(frozen=True, slots=True)
class StepEvent:
    """Progress of a run: step ``index`` of ``total`` is starting (``outcome`` None) or
    has finished with ``outcome``."""

    run_id: str
    pipeline: str
    step: str
    index: int
    total: int
    outcome: StepOutcome | None = None


@dataclass
class RunProgress:
    """A run in progress, shared between the thread running it and the code watching it:
    ``outcomes`` so far, ``cancel`` (set it to stop before the next step), ``crash`` (the
    exception that crashed a step), ``on_step`` (called with each :class:`StepEvent` in
    the running thread; an exception from it is logged and ignored)."""

    run_id: str = field(default_factory=new_correlation_id)
    cancel: threading.Event = field(default_factory=threading.Event)
    on_step: Callable[[StepEvent], None] | None = None
    outcomes: list[StepOutcome] = field(default_factory=list)
    crash: BaseException | None = None

    def notify(self, event: StepEvent) -> None:
        if self.on_step is None:
            return
        try:
            self.on_step(event)
        except Exception:
            logger.exception("pipeline run %s: the on_step callback raised", self.run_id)
