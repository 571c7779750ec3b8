"""The command line's DSPy jobs: starting one from a ``kind: dspy`` job file, its progress
line, its table of evaluations (the candidates), and ``otpy jobs export``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from otpy._cli_common import EXIT_OK, CliError, Console, duration, shorten, start_runtime, table
from otpy.actors import JobHandle
from otpy.errors import ConfigurationError
from otpy.optimize import DSPyJobFile, JobStatus, Trial, ranked_evaluations
from otpy.runtime import Runtime

__all__ = ["dspy_lines", "dspy_progress", "jobs_export", "spent", "start_from_file"]

CELL_WIDTH = 40
"""How much of a predictor's instructions the table shows."""


def start_from_file(rt: Runtime, job: DSPyJobFile, job_id: str | None) -> JobHandle:
    """Start the DSPy job ``job`` describes on ``rt`` (its references imported now)."""
    import otpy.dspy

    arguments = job.start_arguments()
    if job_id is not None:
        arguments["job_id"] = job_id
    try:
        lm_arguments = job.lm_arguments()
        if lm_arguments is not None:
            arguments["lm"] = otpy.dspy.lm(rt, **lm_arguments)
        return rt.jobs.start_dspy(**arguments)
    except ConfigurationError as exc:
        raise CliError(f"{job.path}: {exc}") from None


def dspy_progress(status: JobStatus) -> list[str]:
    """The parts of a DSPy job's progress line: the phase, evaluations, best, LLM calls
    (replayed ones), tokens, cost, calls in flight."""
    parts = [] if status.phase is None else [shorten(status.phase, 48)]
    done = status.evaluations_done
    parts.append(f"{done} eval{'s' if done != 1 else ''}")
    if status.best_score is not None:
        parts.append(f"best {status.best_score:.4g} (#{status.best_index})")
    calls = f"{status.lm_calls:,} calls"
    if status.replayed_calls:
        calls += f" ({status.replayed_calls:,} replayed)"
    parts += [calls, f"{status.tokens:,} tok"]
    if status.cost:
        parts.append(f"${status.cost:.4f}")
    if status.in_flight:
        parts.append(f"{status.in_flight} in flight")
    return parts


def dspy_lines(status: JobStatus, trials: Sequence[Trial], top: int, *, store: str) -> list[str]:
    """A DSPy job's best ``top`` evaluations (most examples first, then score) as a table,
    then a summary line."""
    best = ranked_evaluations(trials)[:top]
    names = sorted({key for trial in best for key in trial.configuration})
    lines: list[str] = []
    if best:
        headers = ("rank", "evaluation", "score", "examples", *names)
        rows = [
            [
                str(rank),
                f"#{trial.index}",
                f"{trial.score:.4g}" if trial.score is not None else "-",
                str(len(trial.examples)),
                *(_cell(trial.configuration.get(name)) for name in names),
            ]
            for rank, trial in enumerate(best, start=1)
        ]
        lines += [*table(headers, rows), ""]
    summary = (
        f"{status.job_id} ({status.name}, {status.strategy}): {status.state} in "
        f"{duration(status.elapsed)}, {status.evaluations_done} evaluations, "
        f"{status.lm_calls:,} LLM calls, {status.tokens:,} tokens"
    )
    summary = spent(status, summary)
    if status.stop_reason and status.stop_reason not in ("cancelled", "error"):
        summary += f"; stopped by {status.stop_reason}"
    lines.append(summary)
    if status.error:
        lines.append(f"  error: {status.error}")
    lines.append(f"store: {store}")
    return lines


def spent(status: JobStatus, summary: str) -> str:
    """``summary`` with the job's cost (if any) and best score (if any)."""
    if status.cost:
        summary += f", ${status.cost:.4f}"
    if status.best_score is not None:
        summary += f", best {status.best_score:.4g} (#{status.best_index})"
    return summary


def _cell(value: Any) -> str:
    return "" if value is None else shorten(str(value), CELL_WIDTH)


def jobs_export(args: argparse.Namespace) -> int:
    """``otpy jobs export ID FILE``: write a DSPy job's program as DSPy saves it."""
    path = Path(args.file)
    if path.suffix != ".json":
        raise CliError(
            f"{path}: a DSPy program is exported to a .json file (program.load reads it)"
        )
    with start_runtime(args.config, jobs_store=args.store) as rt:
        text = rt.jobs.saved_program(args.job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    Console().line(f"wrote {path}: load it with program.load({str(path)!r})")
    return EXIT_OK
