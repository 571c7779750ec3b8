"""``otpy`` / ``python -m otpy``: the command line.

::

    otpy run PIPELINE.yaml -i key=value [--inputs FILE] [--var k=v] [--json]
    otpy validate PIPELINE.yaml...
    otpy steps [--capability C] [--json]
    otpy providers [--json]
    otpy schema
    otpy optimize JOB.yaml [--store PATH] [--job-id ID] [--json] [--top N]
    otpy jobs list|status ID|resume ID [--store PATH]
    otpy observe [--interval S] [--count N] [--json]
    otpy demo

Every command but ``schema`` and ``demo`` starts the runtime (``otpy.start``) from
``--config FILE`` or the embedded defaults. Exit status: 0 done, 1 a run or job failed,
was cancelled or interrupted, 2 bad input (the message, naming file:line:column, step and
field where it can, goes to stderr; no traceback), 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from otpy._cli_common import EXIT_FAILED, EXIT_USAGE, CliError, Console
from otpy._cli_jobs import add_jobs_parser
from otpy._cli_observe import add_observe_parser
from otpy._cli_optimize import add_optimize_parser
from otpy._cli_run import add_run_parser, add_validate_parser
from otpy._cli_show import add_show_parsers
from otpy.errors import OtpyError, PipelineError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``otpy`` command."""
    parser = argparse.ArgumentParser(
        prog="otpy", description="otpy: supervised actors for Python running LLM pipelines"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_parser(commands)
    add_validate_parser(commands)
    add_show_parsers(commands)
    add_optimize_parser(commands)
    add_jobs_parser(commands)
    add_observe_parser(commands)
    demo = commands.add_parser("demo", help="a supervision tree that crashes and recovers")
    demo.add_argument("--quiet", action="store_true", help="print only the summary")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the otpy command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from otpy.demo import run_demo

        return run_demo(verbose=not args.quiet)
    handler: Callable[[argparse.Namespace], int] = args.handler
    err = Console(error=True)
    try:
        return handler(args)
    except PipelineError as exc:  # the run's worker was lost: the run did not complete
        err.line(f"otpy: error: {exc}")
        return EXIT_FAILED
    except (CliError, OtpyError) as exc:  # bad input, found before anything ran
        err.line(f"otpy: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.line("otpy: interrupted")
        return 130
    except BrokenPipeError:  # `otpy schema | head`: the reader left; exit quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit must not fail again
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
