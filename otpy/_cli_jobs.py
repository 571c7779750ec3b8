"""``otpy jobs list|status|resume|pause|cancel|export``: the jobs in a job store.

The store is ``--store PATH``, else the runtime config's ``jobs_store`` (``--config``),
else the default (``$OTPY_STATE_DIR/jobs.sqlite``). ``list`` shows every job in it,
``status ID`` one job with its best candidates (a DSPy job: its evaluations), ``resume
ID`` goes on with a job that stopped (its process was stopped or killed) and follows it
as ``otpy optimize`` does. ``pause ID`` and ``cancel ID`` act on a job that runs in this
command's runtime; a job that runs in another process is steered there (the command says
which process holds it), an interrupted one resumed. ``export ID FILE`` writes a DSPy
job's program as DSPy saves it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from otpy._cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    Console,
    add_config_option,
    duration,
    start_runtime,
    subcommand,
    table,
)
from otpy._cli_dspy import jobs_export
from otpy._cli_optimize import (
    add_follow_options,
    add_report_options,
    add_store_option,
    check_options,
    follow_job,
    job_document,
    job_lines,
)
from otpy.errors import JobError
from otpy.optimize import JobStatus

__all__ = [
    "add_jobs_parser",
    "jobs_list",
    "jobs_resume",
    "jobs_status",
    "jobs_steer",
    "status_rows",
]


def add_jobs_parser(commands: Any) -> None:
    """The ``jobs`` subcommand (``list``, ``status``, ``resume``) on ``commands``."""
    jobs = subcommand(
        commands,
        "jobs",
        "list, inspect and resume optimization jobs in a job store",
        "The optimization jobs in a job store (--store, else the runtime "
        "config's jobs_store, else $OTPY_STATE_DIR/jobs.sqlite).",
    )
    actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every job in the store")
    listing.add_argument("--json", action="store_true", help="one JSON list of job statuses")
    status = actions.add_parser("status", help="one job: its status and best candidates")
    status.add_argument("job_id", metavar="ID")
    add_report_options(status)
    resume = subcommand(
        actions,
        "resume",
        "go on with a stopped job and follow it",
        "Go on with a job whose process stopped or was killed: finished "
        "candidates are kept, the rest run. Exit as otpy optimize does.",
    )
    resume.add_argument("job_id", metavar="ID")
    resume.add_argument(
        "--metric", metavar="NAME", help="the metric, for a job started with a metric function"
    )
    resume.add_argument(
        "--force",
        action="store_true",
        help="resume even though the store says another process runs it (it is gone)",
    )
    add_follow_options(resume)
    handlers = [(listing, jobs_list), (status, jobs_status), (resume, jobs_resume)]
    for action, what in (("pause", "hold a job's work"), ("cancel", "end a job for good")):
        steer = actions.add_parser(action, help=f"{what} (one that runs in this runtime)")
        steer.add_argument("job_id", metavar="ID")
        handlers.append((steer, jobs_steer))
    export = actions.add_parser("export", help="write a DSPy job's program (DSPy's .json)")
    export.add_argument("job_id", metavar="ID")
    export.add_argument("file", metavar="FILE", help="the .json file to write")
    handlers.append((export, jobs_export))
    for parser, handler in handlers:
        add_store_option(parser, "(default: the runtime config's jobs_store)")
        add_config_option(parser)
        parser.set_defaults(handler=handler)


def jobs_list(args: argparse.Namespace) -> int:
    """``otpy jobs list``: one row per job (or ``no jobs in PATH``)."""
    out = Console()
    with start_runtime(args.config, jobs_store=args.store) as rt:
        statuses = rt.jobs.list()
        path = rt.jobs.store.path
    if args.json:
        out.line(json.dumps([status.model_dump(mode="json") for status in statuses], indent=2))
    elif not statuses:
        out.line(f"no jobs in {path}")
    else:
        headers = ("job", "name", "state", "strategy", "evaluations", "best", "tokens", "elapsed")
        out.lines(table(headers, status_rows(statuses)))
    return EXIT_OK


def status_rows(statuses: list[JobStatus]) -> list[list[str]]:
    """A row per job for ``jobs list``."""
    rows = []
    for status in statuses:
        total = f"/{status.evaluations_total}" if status.evaluations_total else ""
        best = "-" if status.best_score is None else f"{status.best_score:.4g}"
        state = status.state if status.owner is None else f"{status.state} ({status.owner})"
        rows.append(
            [
                status.job_id,
                status.name,
                state,
                status.strategy,
                f"{status.evaluations_done}{total}",
                best,
                f"{status.tokens:,}",
                duration(status.elapsed),
            ]
        )
    return rows


def jobs_status(args: argparse.Namespace) -> int:
    """``otpy jobs status ID``: the job's status and best candidates."""
    check_options(args)
    out = Console()
    with start_runtime(args.config, jobs_store=args.store) as rt:
        status = rt.jobs.get(args.job_id).status()
        trials = rt.jobs.trials(args.job_id)
        path = rt.jobs.store.path
    if args.json:
        out.line(json.dumps(job_document(status, trials, args.top), indent=2))
        return EXIT_OK
    lines = job_lines(status, trials, args.top, store=path)
    if status.owner is not None:
        lines.insert(-1, f"runs in: {status.owner}")
    out.lines(lines)
    return EXIT_OK


def jobs_resume(args: argparse.Namespace) -> int:
    """``otpy jobs resume ID``: go on with the job and follow it to the end."""
    check_options(args)
    with start_runtime(args.config, jobs_store=args.store) as rt:
        handle = rt.jobs.resume(args.job_id, metric=args.metric, force=args.force)
        return follow_job(rt, handle.id, args)


def jobs_steer(args: argparse.Namespace) -> int:
    """``otpy jobs pause|cancel ID``: steer a job this command's runtime runs, or say where
    it runs (exit 1)."""
    with start_runtime(args.config, jobs_store=args.store) as rt:
        handle = rt.jobs.get(args.job_id)
        status = handle.status()
        try:
            status = getattr(handle, args.action)()
        except JobError:
            where = rt.jobs.store.path
            if status.owner is not None:
                why = f"it runs in {status.owner}: {args.action} it there"
            elif status.state == "interrupted":
                why = (
                    f"no process runs it (interrupted); go on with: otpy jobs resume "
                    f"{args.job_id} --store {where}"
                )
            else:
                why = f"it is {status.state}"
            Console(error=True).line(f"otpy: job {args.job_id} cannot {args.action}: {why}")
            return EXIT_FAILED
    Console().line(f"{args.job_id}: {status.state}")
    return EXIT_OK
