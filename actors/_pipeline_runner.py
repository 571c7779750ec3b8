"""Pipeline runs as supervised workers: one :class:`PipelineRunner` per run, a temporary
child of the runtime's runs DynamicSupervisor, and the :class:`PipelineRun` handle the
caller keeps.

A run is not restarted (a half-run pipeline may have spent tokens and had effects; the
caller decides whether to run it again). A step that crashes crashes its runner only:
the caller gets the result with the crash recorded, and the supervisor reports the exit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

from otpy.agent import ToolRegistry
from otpy.clock import Clock
from otpy.errors import CallTimeoutError, NoProcessError, OtpyError, PipelineError
from otpy.pipelines import (
    PipelineResult,
    Plan,
    ProviderDirectory,
    RunProgress,
    StepEvent,
    StepOutcome,
    run_plan,
)
from otpy.supervision import (
    ChildSpec,
    Down,
    DynamicSupervisorRef,
    GenServer,
    ServerRef,
    whereis,
)
from otpy.telemetry import TraceContext, current_context, use_context
from otpy.workspace import Workspace

__all__ = ["PipelineRun", "PipelineRunner", "start_run"]

logger = logging.getLogger("otpy.pipelines")


class PipelineRun:
    """A pipeline run in progress (from ``Runtime.start_pipeline``): ``run_id`` (its
    correlation id), ``wait(timeout)`` for its :class:`PipelineResult`, ``done()``,
    ``cancel()`` (no further step starts; the step running finishes) and ``outcomes``
    (the steps finished so far)."""

    def __init__(self, plan: Plan, progress: RunProgress) -> None:
        self.plan = plan
        self.progress = progress
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._result: PipelineResult | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[PipelineRun], None]] = []
        self._runner: ServerRef[Any] | None = None

    def __otpy_ref__(self) -> ServerRef[Any]:
        """For ``otpy.sys``: the run's worker; NoProcessError once the run has ended."""
        runner = self._runner
        if runner is None or not runner.is_alive():
            state = "done" if self.done() else "not started yet"
            raise NoProcessError(f"pipeline run {self.run_id}", f"it is {state}: no worker")
        return runner

    @property
    def run_id(self) -> str:
        return self.progress.run_id

    @property
    def pipeline(self) -> str:
        return self.plan.name

    @property
    def outcomes(self) -> list[StepOutcome]:
        return list(self.progress.outcomes)

    def done(self) -> bool:
        return self._done.is_set()

    def cancel(self) -> None:
        """Start no further step; the run ends ``cancelled`` after the current one."""
        self.progress.cancel.set()

    def wait(self, timeout: float | None = None) -> PipelineResult:
        """The run's result (whatever its status). Raises CallTimeoutError if it is not
        done within ``timeout`` seconds, or what the run raised before its first step
        (bad inputs: ConfigurationError / StepValidationError; a lost worker:
        PipelineError with the steps done so far)."""
        if not self._done.wait(timeout):
            target = (
                f"pipeline {self.pipeline!r} run {self.run_id} "
                f"({len(self.progress.outcomes)} step(s) done)"
            )
            raise CallTimeoutError(target, timeout)
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def add_done_callback(self, callback: Callable[[PipelineRun], None]) -> None:
        """Call ``callback(run)`` once the run is done: at once (in this thread) if it is,
        else in the thread that finishes it (the run's worker): keep it short, e.g. send a
        message. A callback that raises is logged and the others still run."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        self._call(callback)

    def _call(self, callback: Callable[[PipelineRun], None]) -> None:
        try:
            callback(self)
        except Exception:
            logger.exception(
                "pipeline %r run %s: a done callback failed", self.pipeline, self.run_id
            )

    def _finish(self, result: PipelineResult | None, error: BaseException | None) -> bool:
        with self._lock:
            if self._done.is_set():
                return False
            self._result, self._error = result, error
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            self._call(callback)
        return True

    def _lost(self, down: Down) -> None:
        """The runner exited before it delivered (killed, or shut down mid-run): no
        further step of it may start."""
        self.progress.cancel.set()
        error = PipelineError(
            f"pipeline {self.pipeline!r} run {self.run_id}: its worker exited "
            f"({down.reason!r}) after {len(self.progress.outcomes)} step(s)",
            result=list(self.progress.outcomes),
        )
        self._finish(None, error)

    def __repr__(self) -> str:
        state = "done" if self.done() else "running"
        return f"<PipelineRun {self.pipeline!r} {self.run_id} {state}>"


class PipelineRunner(GenServer):
    """Runs one plan when it gets ``"run"``, hands the result to its :class:`PipelineRun`,
    then exits ``normal``; re-raises a step's crash so that it exits with it."""

    def __init__(
        self,
        run: PipelineRun,
        inputs: Mapping[str, Any],
        variables: Mapping[str, Any] | None,
        providers: ProviderDirectory | None,
        clock: Clock,
        trace: TraceContext,
        tools: ToolRegistry | None = None,
        workspace: Workspace | None = None,
    ) -> None:
        super().__init__()
        self.tools = tools
        self.workspace = workspace
        self.run = run
        self.inputs = inputs
        self.variables = variables
        self.providers = providers
        self.clock = clock
        self.trace = trace

    def on_receive(self, message: Any) -> Any:
        if message != "run":
            return super().on_receive(message)
        run = self.run
        try:
            with use_context(self.trace):
                result = run_plan(
                    run.plan,
                    self.inputs,
                    providers=self.providers,
                    variables=self.variables,
                    clock=self.clock,
                    progress=run.progress,
                    tools=self.tools,
                    workspace=self.workspace,
                )
        except OtpyError as exc:  # refused before any step ran
            run._finish(None, exc)
            self.stop_after("normal")
            return None
        run._finish(result, None)
        crash = run.progress.crash
        if crash is not None:
            raise crash  # let it crash: the supervisor hears of it, the caller has the result
        self.stop_after("normal")
        return None


def start_run(
    supervisor: str,
    plan: Plan,
    inputs: Mapping[str, Any] | None,
    *,
    variables: Mapping[str, Any] | None = None,
    providers: ProviderDirectory | None,
    clock: Clock,
    on_step: Callable[[StepEvent], None] | None = None,
    tools: ToolRegistry | None = None,
    workspace: Workspace | None = None,
    resume: bool = False,
) -> PipelineRun:
    """Start a runner for ``plan`` under the DynamicSupervisor named ``supervisor`` and
    return its handle. The run joins the caller's trace context as its parent; its agent
    steps use ``tools`` and its steps' files are in ``workspace`` (see ``run_plan``); with
    ``resume`` it continues from the pipeline's checkpoint."""
    ref = whereis(supervisor)
    if ref is None:
        raise PipelineError(f"no runs supervisor {supervisor!r} is running (is the runtime up?)")
    progress = RunProgress(on_step=on_step, resume=resume)
    run = PipelineRun(plan, progress)
    trace = current_context()
    given = dict(inputs or {})
    spec = ChildSpec(
        id=f"run:{progress.run_id}",
        start=lambda: PipelineRunner.start(
            run, given, variables, providers, clock, trace, tools, workspace
        ),
        restart="temporary",
        shutdown=5.0,
    )
    worker = cast(DynamicSupervisorRef, ref).start_child(spec)
    run._runner = worker
    worker.monitor(run._lost)
    worker.cast("run")
    return run
