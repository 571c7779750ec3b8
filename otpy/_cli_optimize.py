"""``otpy optimize JOB.yaml``: start an optimization job from a job file and follow it.

The job file (:mod:`otpy.optimize._jobfile`) is read and checked first (exit 2 naming the
file, line and field). The job then runs under the runtime's JobSupervisor and
checkpoints to the job store (``--store``, else the file's ``store:``, else the runtime
config's ``jobs_store``). A progress bar (evaluations, best score, tokens, ETA) goes to
stderr, redrawn in place on a terminal and as a line now and then on a pipe; at the end
the best candidates are printed as a table on stdout (``--json``: one JSON document).

Ctrl-C stops the runtime: the job is left ``interrupted`` with every finished candidate
kept, and ``otpy jobs resume ID`` goes on with it. Exit 0 completed, 1 cancelled, failed
or interrupted, 2 bad input, 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from otpy._cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    Console,
    add_config_option,
    duration,
    runtime_config,
    shorten,
    start_runtime,
    subcommand,
    table,
)
from otpy._cli_dspy import dspy_lines, dspy_progress, spent, start_from_file
from otpy.errors import CallTimeoutError, JobError, StepValidationError, UnknownStepError
from otpy.optimize import (
    DSPyJobFile,
    JobStatus,
    Trial,
    load_job_file,
    load_metric_plugins,
    load_strategy_plugins,
    ranked,
    ranked_evaluations,
)
from otpy.runtime import Runtime

__all__ = [
    "JobProgress",
    "add_follow_options",
    "add_optimize_parser",
    "add_report_options",
    "add_store_option",
    "check_options",
    "follow_job",
    "job_document",
    "job_lines",
    "optimize_command",
    "trial_rows",
]

EXIT_INTERRUPTED: Final = 130
"""Ctrl-C: the job was left ``interrupted`` (resumable)."""
BAR_WIDTH: Final = 20
CELL_WIDTH: Final = 32
"""How much of a configuration value the table shows."""
TICK: Final = 0.2
"""Seconds between progress redraws while waiting for the job to end."""


def add_optimize_parser(commands: Any) -> None:
    """The ``optimize`` subcommand on ``commands`` (an argparse subparsers action)."""
    optimize = subcommand(
        commands,
        "optimize",
        "run an optimization job from a job file",
        "Start an optimization job from a job file (program, space, trainset, "
        "metric, strategy, budgets) and follow it: a progress bar on stderr, then the best "
        "candidates on stdout. Ctrl-C leaves it resumable (otpy jobs resume ID). Exit 0 "
        "completed, 1 cancelled/failed/interrupted, 2 bad input.",
    )
    optimize.add_argument("job", help="the job file (YAML)")
    optimize.add_argument("--job-id", metavar="ID", help="the job's id (default: the file's)")
    add_store_option(optimize, "(default: the job file's store:, else the runtime config's)")
    add_follow_options(optimize)
    add_config_option(optimize)
    optimize.set_defaults(handler=optimize_command)


def add_store_option(parser: argparse.ArgumentParser, default: str) -> None:
    """``--store PATH``: the SQLite file jobs checkpoint to."""
    parser.add_argument(
        "--store", metavar="PATH", help=f"the job store (an SQLite file) {default}".strip()
    )


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """``--json`` and ``--top``: how a job's outcome is printed."""
    parser.add_argument("--json", action="store_true", help="print it as one JSON document")
    parser.add_argument(
        "--top", type=int, default=5, metavar="N", help="how many candidates the table shows"
    )


def add_follow_options(parser: argparse.ArgumentParser) -> None:
    """The report options, ``-q`` and ``--progress-interval``: how a followed job reports."""
    add_report_options(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="when stderr is not a terminal, write a progress line at most this often "
        "(default 2; 0: at every change)",
    )


def optimize_command(args: argparse.Namespace) -> int:
    """``otpy optimize``: read the job file, start the job, follow it to the end."""
    check_options(args)
    config = runtime_config(args.config)
    if config.plugins:  # the file may name a plugin's metric or strategy
        load_strategy_plugins()
        load_metric_plugins()
    job = load_job_file(Path(args.job))
    store = args.store if args.store is not None else job.store
    with start_runtime(config, jobs_store=None if store is None else str(store)) as rt:
        job_id = args.job_id if args.job_id is not None else job.job_id
        if isinstance(job, DSPyJobFile):
            out = Console(sys.stdout)
            # DSPy prints its progress to stdout: to stderr here
            with _unless_taken(rt, job_id), contextlib.redirect_stdout(sys.stderr):
                handle = start_from_file(rt, job, args.job_id)
            return follow_job(rt, handle.id, args, out=out)
        arguments = job.start_arguments()
        if args.job_id is not None:
            arguments["job_id"] = args.job_id
        try:
            with _unless_taken(rt, job_id):
                handle = rt.jobs.start(**arguments)
        except (StepValidationError, UnknownStepError) as exc:
            if isinstance(job.program, Path):
                raise  # it names the pipeline file
            raise CliError(f"{job.position('program')}: program: {exc}") from None
        return follow_job(rt, handle.id, args)


@contextlib.contextmanager
def _unless_taken(rt: Runtime, job_id: str | None) -> Iterator[None]:
    """A JobError starting job ``job_id`` when the store already holds it: CliError saying
    why and what to do instead."""
    try:
        yield
    except JobError:
        if not job_id or not rt.jobs.store.holds(job_id):
            raise
        raise CliError(_taken(rt, job_id)) from None


def _taken(rt: Runtime, job_id: str) -> str:
    """Why a job id that the store holds cannot be started again, and what to do."""
    status = rt.jobs.get(job_id).status()
    state, where = status.state, f"--store {rt.jobs.store.path}"
    if status.owner is not None:
        return (
            f"job {job_id!r} already exists in {rt.jobs.store.path} and is {state} in "
            f"{status.owner}; see it with: otpy jobs status {job_id} {where}"
        )
    if state in ("completed", "cancelled", "failed"):
        return (
            f"job {job_id!r} already exists in {rt.jobs.store.path} ({state}); give another "
            f"--job-id, or see it with: otpy jobs status {job_id} {where}"
        )
    return (
        f"job {job_id!r} already exists in {rt.jobs.store.path} ({state}); go on with it: "
        f"otpy jobs resume {job_id} {where}"
    )


def check_options(args: argparse.Namespace) -> None:
    """``--top`` is a count, ``--progress-interval`` seconds (CliError otherwise)."""
    if args.top < 0:
        raise CliError(f"--top must be 0 or more, got {args.top}")
    interval = getattr(args, "progress_interval", 0.0)
    if not interval >= 0:
        raise CliError(f"--progress-interval must be 0 or more seconds, got {interval}")


def follow_job(
    rt: Runtime, job_id: str, args: argparse.Namespace, *, out: Console | None = None
) -> int:
    """Wait for job ``job_id`` with progress on stderr (unless ``args.quiet``), then print
    its outcome on ``out`` (stdout); the exit status. While it waits, what the job's code
    prints (DSPy's progress) goes to stderr, so that stdout holds only the outcome. Ctrl-C
    stops the runtime (the job is left ``interrupted``) and says how to resume it."""
    out, err = out or Console(sys.stdout), Console(error=True)
    handle = rt.jobs.get(job_id)
    progress = None if args.quiet else JobProgress(err, interval=args.progress_interval)
    if handle.status().kind == "dspy":
        logging.getLogger("dspy").setLevel(logging.WARNING)  # the progress line says it
    try:
        with contextlib.redirect_stdout(sys.stderr):
            while True:
                try:
                    status = handle.wait(TICK)
                    break
                except CallTimeoutError:
                    if progress is not None:
                        progress.update(handle.status())
    except KeyboardInterrupt:
        rt.stop()  # the runner saves the job as interrupted
        status = handle.status()
        if progress is not None:
            progress.update(status, final=True)
        kept = (
            f"{status.lm_calls} LLM calls journaled"
            if status.kind == "dspy"
            else f"{status.evaluations_done} evaluations kept"
        )
        err.line(
            f"otpy: interrupted: job {job_id} is checkpointed ({kept}); go on with: "
            f"otpy jobs resume {job_id} --store {rt.jobs.store.path}"
        )
        return EXIT_INTERRUPTED
    if progress is not None:
        progress.update(status, final=True)
    trials = rt.jobs.trials(job_id)
    if args.json:
        out.line(json.dumps(job_document(status, trials, args.top), indent=2))
    else:
        out.lines(job_lines(status, trials, args.top, store=rt.jobs.store.path))
    if status.state != "completed":
        why = f": {status.error}" if status.error else ""
        err.line(f"otpy: job {job_id} ended {status.state}{why}")
        return EXIT_FAILED
    return EXIT_OK


class JobProgress:
    """The progress of a job on ``console``: on a terminal one line redrawn in place, on
    a pipe a line when something changed, at most every ``interval`` seconds (and the
    last one always)."""

    def __init__(self, console: Console, *, interval: float = 2.0) -> None:
        self.console = console
        self.live = bool(getattr(console.stream, "isatty", lambda: False)())
        self.interval = interval
        self._last: tuple[Any, ...] | None = None
        self._shown_at = -float("inf")

    def update(self, status: JobStatus, *, final: bool = False) -> None:
        key = (status.state, status.evaluations_done, status.in_flight, status.tokens,
               status.lm_calls, status.replayed_calls)  # fmt: skip
        if key == self._last and not final:
            return
        now = time.monotonic()
        if not self.live and not final and now - self._shown_at < self.interval:
            return
        self._last, self._shown_at = key, now
        text = self.render(status)
        if self.live:
            self.console.redraw(text, end=final)
        else:
            self.console.line(text)

    def render(self, status: JobStatus) -> str:
        """``[####----] 12/27 evals  best 0.8333 (#4)  1,234 tok  3 running  5.20s  ETA 6.10s``."""
        parts: list[str] = [] if status.state == "running" else [status.state]
        parts += dspy_progress(status) if status.kind == "dspy" else self._evaluations(status)
        parts.append(duration(status.elapsed))
        if status.eta is not None:
            parts.append(f"ETA {duration(status.eta)}")
        return "  ".join(parts)

    def _evaluations(self, status: JobStatus) -> list[str]:
        """A pipeline job's part: the bar, the best, tokens, errors, examples running."""
        done, total = status.evaluations_done, status.evaluations_total
        parts: list[str] = []
        if total:
            filled = min(BAR_WIDTH, round(BAR_WIDTH * done / total))
            bar = self.console.symbol("bar") * filled + self.console.symbol("gap") * (
                BAR_WIDTH - filled
            )
            parts.append(f"[{bar}] {done}/{total} evals")
        else:
            parts.append(f"{done} evals")
        if status.best_score is not None:
            parts.append(f"best {status.best_score:.4g} (#{status.best_index})")
        parts.append(f"{status.tokens:,} tok")
        if status.errors:
            parts.append(f"{status.errors} error{'s' if status.errors != 1 else ''}")
        if status.in_flight:
            parts.append(f"{status.in_flight} running")
        return parts


def trial_rows(trials: Sequence[Trial], names: Sequence[str]) -> list[list[str]]:
    """One table row per trial (rank, candidate, score, examples ok, errors, tokens, then
    each variable of ``names``)."""
    rows = []
    for rank, trial in enumerate(trials, start=1):
        ok = sum(1 for example in trial.examples if example.error is None)
        score = "aborted" if trial.score is None else f"{trial.score:.4g}"
        rows.append(
            [
                str(rank),
                f"#{trial.index}",
                score,
                f"{ok}/{len(trial.examples)}",
                str(trial.errors),
                f"{trial.tokens:,}",
                *(_cell(trial.configuration.get(name)) for name in names),
            ]
        )
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return f"{len(value)} demo{'s' if len(value) != 1 else ''}"
    if isinstance(value, float):
        return f"{value:g}"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return shorten(text, CELL_WIDTH)


def job_lines(status: JobStatus, trials: Sequence[Trial], top: int, *, store: str) -> list[str]:
    """The best ``top`` candidates as a table, a summary line and the best configuration
    (a DSPy job's: its evaluations, see ``dspy_lines``)."""
    if status.kind == "dspy":
        return dspy_lines(status, trials, top, store=store)
    best = ranked(trials)[:top]
    names = list(status.best_configuration or (best[0].configuration if best else {}))
    lines: list[str] = []
    if best:
        headers = ("rank", "candidate", "score", "ok", "errors", "tokens", *names)
        lines += table(headers, trial_rows(best, names))
        lines.append("")
    total = f"/{status.evaluations_total}" if status.evaluations_total else ""
    summary = (
        f"{status.job_id} ({status.name}): {status.state} in {duration(status.elapsed)}, "
        f"{status.evaluations_done}{total} evaluations, {status.errors} failed examples, "
        f"{status.tokens:,} tokens"
    )
    lines.append(spent(status, summary))
    if status.error:
        lines.append(f"  error: {status.error}")
    if status.best_configuration:
        lines.append("best configuration:")
        for name, value in status.best_configuration.items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            lines.append(f"  {name}: {text}")
    lines.append(f"store: {store}")
    return lines


def job_document(status: JobStatus, trials: Sequence[Trial], top: int) -> dict[str, Any]:
    """``--json``: the status and the best ``top`` trials (without per-example results),
    in the table's order (a DSPy job's evaluations: the most examples first)."""
    best = (ranked_evaluations if status.kind == "dspy" else ranked)(trials)[:top]
    return {
        "status": status.model_dump(mode="json"),
        "top": [trial.model_dump(mode="json", exclude={"examples"}) for trial in best],
    }
