"""Watching a run: :class:`StepEvent` (a step starts or ends, a loop item starts) and
:class:`RunProgress` (shared between the thread running a plan and the code watching it)."""

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
    has finished with ``outcome``; for a loop, ``item`` (1-based) of ``items`` (None for
    a while loop) is starting."""

    run_id: str
    pipeline: str
    step: str
    index: int
    total: int
    outcome: StepOutcome | None = None
    item: int | None = None
    items: int | None = None


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
    resume: bool = False
    """Resume from the pipeline's checkpoint (it needs ``checkpoint_enabled``)."""
    current: int = 0
    """The index of the top-level step running now (for loop progress events)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def notify(self, event: StepEvent) -> None:
        """Call ``on_step`` with ``event`` (one call at a time: parallel loop iterations
        report from several threads)."""
        if self.on_step is None:
            return
        try:
            with self._lock:
                self.on_step(event)
        except Exception:
            logger.exception("pipeline run %s: the on_step callback raised", self.run_id)
