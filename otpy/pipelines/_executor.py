"""Running a compiled pipeline in the calling thread: :func:`run_plan`.

Everything is checked before the first step runs (the inputs, and every step config as far
as the inputs and variables make it known). Then each step in order: its ``when`` and
``condition`` decide whether it runs, its templates and prompt parts are filled from the
run so far, its config is validated again with the real values, and its type's
``execute`` runs with a :class:`StepGateway` that accounts for tokens and retries and
fails over between providers; its ``output_schema`` is checked and ``output_to_file``
written. A failure (an ``OtpyError``) is handled as the step's ``on_error`` says; a crash
(any other exception) ends the run at once, is recorded, and is left in
``progress.crash`` for the caller (a supervised worker re-raises it, so its supervisor
sees the crash). Loops run their steps through :class:`otpy.pipelines._host.LoopHost`,
nested pipelines through :func:`_subrun`; with ``checkpoint_enabled`` every completed
top-level step is checkpointed and ``progress.resume`` continues from the last one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otpy.agent import ToolRegistry
from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.errors import ConfigurationError, OtpyError, PipelineError
from otpy.pipelines._checkpoint import Checkpoint
from otpy.pipelines._gateway import ProviderDirectory
from otpy.pipelines._lookup import Missing, lookup, step_span
from otpy.pipelines._plan import Plan, PlannedStep
from otpy.pipelines._progress import RunProgress, StepEvent
from otpy.pipelines._result import PipelineResult, StepError, StepOutcome
from otpy.pipelines._run import Run, RunEnv, empty_record, error_of
from otpy.pipelines._templates import render
from otpy.steps.flow import DEFAULT_MAX_DEPTH
from otpy.telemetry import Telemetry, correlation, current_context, get_telemetry
from otpy.workspace import Workspace, absolute_dir, resolve_dir

__all__ = ["MAX_DEPTH", "RunProgress", "StepEvent", "run_plan"]

logger = logging.getLogger("otpy.pipelines")

MAX_DEPTH = DEFAULT_MAX_DEPTH
"""How deep pipelines may nest below the top one unless a pipeline step's
``config.max_depth`` says (pipeline_ex's default, 10)."""

_session_variables: dict[str, dict[str, Any]] = {}
"""Each pipeline's ``scope: session`` variables, kept for the life of the process."""


def _env(
    plan: Plan, workdir: Path | None, tools: ToolRegistry | None, workspace: Workspace | None
) -> RunEnv:
    """The top run's places: ``workspace`` if given, else the document's ``workspace_dir``,
    else the runtime's ``tools.workspace``, else ``./workspace`` (relative ones under
    ``workdir``, default the current directory)."""
    pipeline = plan.pipeline
    base = Path(absolute_dir(workdir if workdir is not None else ".", None))  # resolved when used
    written, output, _ = pipeline.directories()
    home = None  # a workspace given by the caller is the only place file parts are read
    if workspace is None:
        if not pipeline.workspace_dir and tools is not None:
            written = tools.limits.workspace
        workspace = Workspace(written, base=base)
        home = Workspace(base)
    return RunEnv(
        workdir=base,
        workspace=workspace,
        home=home,
        output_dir=Workspace(output, base=base),
        global_vars=dict(pipeline.global_vars),
        chain=(pipeline.name,),
        session=_session_variables.setdefault(pipeline.name, {}),
        tools=tools,
    )


def run_plan(
    plan: Plan,
    inputs: Mapping[str, Any] | None = None,
    *,
    providers: ProviderDirectory | None = None,
    variables: Mapping[str, Any] | None = None,
    clock: Clock = SYSTEM_CLOCK,
    telemetry: Telemetry | None = None,
    progress: RunProgress | None = None,
    depth: int = 0,
    workdir: str | Path | None = None,
    tools: ToolRegistry | None = None,
    workspace: Workspace | None = None,
    env: RunEnv | None = None,
) -> PipelineResult:
    """Run ``plan`` in this thread and return its :class:`PipelineResult` (also when a
    step failed or crashed: see ``status``, ``error`` and ``progress.crash``).

    ``variables`` are the run's starting ``vars`` (over the pipeline's own ``variables``;
    an optimization job's configuration). ``workdir``: where relative workspace, output
    and checkpoint directories start (default: the current directory). ``tools``: the
    tools agent steps may use (None: the built-in ones, Bash off); ``workspace``: where
    the steps' files are (None: the document's ``workspace_dir``, else the tools'
    ``workspace``, else ``./workspace``). Raises before any
    step runs: ConfigurationError for inputs that do not fit the declared ones, or a
    resume that cannot (no ``checkpoint_enabled``, a checkpoint of another version or
    other inputs), StepValidationError for a step config that the inputs make invalid.
    The run is one trace: correlation id = ``run_id`` (a nested run joins its parent's).
    """
    progress = progress if progress is not None else RunProgress()
    telemetry = telemetry if telemetry is not None else get_telemetry()
    pipeline = plan.pipeline
    resolved = pipeline.resolve_inputs(inputs or {})
    start_vars = {**pipeline.variables, **(variables or {})}
    plan.check({"inputs": resolved, "vars": start_vars})
    if env is None:
        env = _env(plan, Path(workdir) if workdir is not None else None, tools, workspace)
    run = Run(plan, resolved, providers, start_vars, clock, telemetry, progress, depth, env)
    run.subrun = lambda source, given, outputs=None, config=None: _subrun(
        run, source, given, outputs, config
    )
    if "claude_session" in {entry.name for entry in plan.table.list(None)}:
        run.sessions = plan.table.require("claude_session").step_cls.history  # type: ignore[attr-defined]
    checkpoint = _checkpoint(run)
    _warn_once(run)
    parent = current_context().correlation_id
    if depth:
        return _traced(run, parent, checkpoint)
    with correlation(progress.run_id):
        return _traced(run, parent, checkpoint)


def _warn_once(run: Run) -> None:
    """The one warning a document gives about its ignored fields, once per run tree."""
    pipeline = run.plan.pipeline
    migration = pipeline.migration
    source = pipeline.source
    label = source[0] if source is not None else pipeline.name
    if migration is None or label in run.env.warned:
        return
    run.env.warned.add(label)
    warning = migration.warning(f"pipeline {pipeline.name!r} ({label})")
    if warning is not None:
        logger.warning("%s", warning)


def _checkpoint(run: Run) -> tuple[Checkpoint | None, int]:
    """The run's checkpoint (top level, checkpoint_enabled) and the step to start at."""
    pipeline = run.plan.pipeline
    if not pipeline.checkpoint_enabled or run.depth:
        if run.progress.resume and not run.depth:
            raise ConfigurationError(
                f"pipeline {pipeline.name!r} cannot resume: it has no checkpoint_enabled: true"
            )
        return None, 0
    _, _, directory = pipeline.directories()
    checkpoint = Checkpoint(resolve_dir(directory, run.env.workdir), pipeline)
    state = checkpoint.load(run.inputs) if run.progress.resume else None
    if state is None:
        return checkpoint, 0
    root = run.root
    root.records.update(state["records"])
    root.status.update(state["status"])
    root.outputs.update({name: record.get("output") for name, record in state["records"].items()})
    root.variables.update(state["variables"])
    root.previous = state.get("previous")
    run.progress.outcomes[:] = [
        StepOutcome.model_validate(
            {**o, "metadata": {**o.get("metadata", {}), "from_checkpoint": True}}
        )
        for o in state["outcomes"]
    ]
    logger.info("pipeline %r resumes after step %d", pipeline.name, state["completed"])
    return checkpoint, int(state["completed"])


def _traced(
    run: Run, parent: str | None, checkpoint: tuple[Checkpoint | None, int]
) -> PipelineResult:
    meta = {"pipeline": run.plan.name, "run_id": run.progress.run_id, "depth": run.depth}
    if parent is not None and run.depth == 0:
        meta["parent_correlation_id"] = parent
    with run.telemetry.span("pipeline.run", meta) as span:
        result = _steps(run, *checkpoint)
        span.set(status=result.status, tokens=result.tokens, failed_step=result.failed_step)
        return result


def _save(run: Run, checkpoint: Checkpoint, completed: int) -> None:
    root = run.root
    try:
        checkpoint.save({
            "completed": completed, "inputs": run.inputs, "records": dict(root.records),
            "status": dict(root.status), "variables": dict(root.variables),
            "previous": root.previous,
            "outcomes": [o.model_dump(mode="json") for o in run.progress.outcomes],
        })  # fmt: skip
    except OSError as exc:
        logger.error("pipeline %r: cannot save its checkpoint: %s", run.plan.name, exc)


def _steps(run: Run, checkpoint: Checkpoint | None, start: int) -> PipelineResult:
    plan, progress = run.plan, run.progress
    total = len(plan.steps)
    status: str = "completed"
    error: StepError | None = None
    failed: str | None = None
    for index, planned in enumerate(plan.steps):
        if index < start:
            continue
        if status != "completed" or progress.cancel.is_set():
            if status == "completed":
                status = "cancelled"
            progress.outcomes.append(run.outcome(planned, "not_run"))
            continue
        progress.current = index
        if progress.on_step is not None:
            progress.notify(StepEvent(progress.run_id, plan.name, planned.name, index, total))
        with run.telemetry.span(
            "pipeline.step",
            {"pipeline": plan.name, "step": planned.name, "type": planned.spec.type},
        ) as span:
            outcome = _one(run, planned)
            span.set(status=outcome.status, provider=outcome.provider, tokens=outcome.tokens)
        progress.outcomes.append(outcome)
        if progress.on_step is not None:
            event = StepEvent(progress.run_id, plan.name, planned.name, index, total, outcome)
            progress.notify(event)
        if outcome.status == "failed" and (
            planned.on_error != "continue" or (outcome.error and outcome.error.crash)
        ):
            status, error, failed = "failed", outcome.error, planned.name
        elif checkpoint is not None:
            _save(run, checkpoint, index + 1)
    outputs: dict[str, Any] = {}
    if status == "completed":
        try:
            outputs = _outputs(run)
        except OtpyError as exc:
            status, error = "failed", error_of(exc)
    if status == "completed" and checkpoint is not None:
        checkpoint.clear()
    return PipelineResult(
        pipeline=plan.name,
        run_id=progress.run_id,
        status=status,  # type: ignore[arg-type]
        inputs=run.inputs,
        outputs=outputs,
        variables=dict(run.root.variables),
        steps=tuple(progress.outcomes),
        error=error,
        failed_step=failed,
        duration=max(0.0, run.clock.monotonic() - run.started),
    )


def _one(run: Run, planned: PlannedStep) -> StepOutcome:
    """The step's outcome (its record goes into the run): skipped, run, or crashed."""
    try:
        return run.run_step(planned, run.root)[0]
    except Exception as exc:  # a bug in the step type: the run ends, the caller is told
        run.progress.crash = exc
        logger.error("pipeline %r step %r crashed: %r", run.plan.name, planned.name, exc)
        run.root.records[planned.name] = empty_record()
        run.root.status[planned.name] = "failed"
        return run.outcome(planned, "failed", error=error_of(exc, crash=True))


def _outputs(run: Run) -> dict[str, Any]:
    scope = run.scope(run.root)
    wanted = run.env.outputs
    if wanted:
        return dict(_extract(item, scope, run.plan.name) for item in wanted)
    declared = run.plan.pipeline.outputs
    if not declared:
        return {o.name: o.output for o in run.progress.outcomes if o.status == "ok"}
    return {
        name: render(template, scope, field=f"outputs.{name}")
        for name, template in declared.items()
    }


def _extract(item: Any, scope: Mapping[str, Any], pipeline: str) -> tuple[str, Any]:
    """One of a pipeline step's ``outputs``: a step name (its output) or ``{path, as}``."""
    path = item if isinstance(item, str) else str(item["path"])
    parts = path.split(".")
    records = scope.get("steps") or {}
    if step_span(parts, records) == len(parts):
        parts.append("result")
    try:
        value = lookup(("steps", *parts), scope)
    except Missing as missing:
        raise PipelineError(f"output {path!r} of nested pipeline {pipeline!r}: {missing}") from None
    return (path if isinstance(item, str) else str(item.get("as") or path)), value


def _source(run: Run, source: Any) -> Any:
    """A nested pipeline's source: a path relative to this pipeline's file (else to where
    the run works), or an inline pipeline (in a pipeline_ex document, a workflow)."""
    if isinstance(source, Mapping):
        if run.plan.pipeline.pipeline_ex and "workflow" not in source:
            return {"workflow": dict(source)}
        return source
    if isinstance(source, str) and "\n" not in source and not Path(source).is_absolute():
        for base in (run.plan.base_dir, run.env.workdir):
            if base is not None and (base / source).exists():
                return base / source
        return (run.plan.base_dir or run.env.workdir) / source
    return source


def _subrun(
    run: Run, source: Any, inputs: Mapping[str, Any], outputs: Any, config: Mapping[str, Any] | None
) -> PipelineResult:
    """Run another pipeline inside this run's step (same thread, same trace), isolated:
    it sees only ``inputs`` (and this run's global_vars with ``inherit_context``)."""
    options = dict(config or {})
    limit = options.get("max_depth") or DEFAULT_MAX_DEPTH
    if run.depth + 1 > limit:
        names = run.env.chain
        shown = names if len(names) <= 6 else (*names[:3], "...", *names[-2:])
        raise PipelineError(
            f"pipelines nest deeper than {limit} levels ({' -> '.join(shown)} -> "
            f"{source if isinstance(source, str) else 'an inline pipeline'}); raise "
            "config.max_depth on the pipeline step if that is meant"
        )
    from otpy.pipelines._plan import compile_pipeline

    plan = compile_pipeline(_source(run, source), run.plan.table)
    child = plan.pipeline
    inherit = options.get("inherit_context") is True
    given = dict(inputs) if inputs or not inherit else dict(run.inputs)
    workdir = run.env.workdir
    workspace = run.env.workspace
    if options.get("workspace_dir"):
        workspace = Workspace(str(options["workspace_dir"]), base=workdir)
    elif child.workspace_dir:
        workspace = Workspace(child.workspace_dir, base=workdir)
    output_dir = (
        Workspace(child.output_dir, base=workdir) if child.output_dir else run.env.output_dir
    )
    env = RunEnv(
        workdir=workdir,
        workspace=workspace,
        output_dir=output_dir,
        global_vars={**child.global_vars, **(run.env.global_vars if inherit else {})},
        chain=(*run.env.chain, child.name),
        outputs=list(outputs) if outputs else None,
        session=_session_variables.setdefault(child.name, {}),
        home=run.env.home,
        warned=run.env.warned,
        tools=run.env.tools,
    )
    progress = RunProgress(run_id=run.progress.run_id, cancel=run.progress.cancel)
    result = run_plan(
        plan, given, providers=run.providers, clock=run.clock, telemetry=run.telemetry,
        progress=progress, depth=run.depth + 1, env=env,
    )  # fmt: skip
    if progress.crash is not None:
        raise progress.crash  # a crash inside stays a crash of this run
    return result
