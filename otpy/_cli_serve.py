"""``otpy serve [CONFIG]``: start a runtime and serve its HTTP API and dashboard until
Ctrl-C.

The address comes from ``--host`` / ``--port``, else the config's ``web:`` section
(default 127.0.0.1:8765). The token comes from the config's ``web.token`` or the
environment variable ``OTPY_WEB__TOKEN``; with neither, a random one is made and printed
in the dashboard's address (in its ``#token=`` fragment). Serving on an address other than
loopback without a token is refused (exit 2). ``--job FILE`` starts jobs from job files
once the server is up, so the page has something live to show.
"""

from __future__ import annotations

import argparse
import os
import threading
from typing import Any, Final

from otpy._cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    Console,
    runtime_config,
    start_runtime,
    subcommand,
)
from otpy.errors import ConfigurationError, OtpyError
from otpy.optimize import load_job_file

__all__ = ["TOKEN_ENV", "add_serve_parser", "serve_command"]

TOKEN_ENV: Final = "OTPY_WEB__TOKEN"
"""The environment variable the token is read from when the config has none."""


def add_serve_parser(commands: Any) -> None:
    """The ``serve`` subcommand on ``commands`` (an argparse subparsers action)."""
    serve = subcommand(
        commands,
        "serve",
        "serve the HTTP API and the live dashboard",
        "Start the runtime (from CONFIG, else the OTPY_* environment over the embedded "
        "defaults) and serve its JSON API (/openapi.json), event stream and dashboard "
        f"until Ctrl-C. The token: the config's web.token or ${TOKEN_ENV}, else a new "
        "one, printed in the dashboard's address.",
        handler=serve_command,
    )
    serve.add_argument("config", nargs="?", help="a runtime config YAML")
    serve.add_argument("--host", help="the address to bind (default: web.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="the port (default: web.port, 8765; 0: any free)")
    serve.add_argument(
        "--job",
        action="append",
        default=[],
        metavar="FILE",
        help="start a job from this job file once serving (repeatable)",
    )
    serve.add_argument("--store", metavar="PATH", help="the job store (default: the config's)")


def serve_command(args: argparse.Namespace, *, stop: threading.Event | None = None) -> int:
    """``otpy serve``: serve until Ctrl-C (or until ``stop`` is set, or the runtime fails)."""
    out, err = Console(), Console(error=True)
    config = runtime_config(args.config)
    web = config.web
    host = args.host if args.host is not None else web.host
    port = args.port if args.port is not None else web.port
    given = web.token.get_secret_value() if web.token is not None else os.environ.get(TOKEN_ENV)
    jobs = [load_job_file(path) for path in args.job]  # bad files fail before anything starts
    with start_runtime(config, jobs_store=args.store) as rt:
        try:
            server = rt.serve(host=host, port=port, token=given or None)
        except ConfigurationError as exc:
            raise CliError(str(exc)) from None
        for job in jobs:
            try:
                handle = rt.jobs.start(**job.start_arguments())
            except OtpyError as exc:
                raise CliError(f"{job.path}: {exc}") from None
            out.line(f"started job {handle.id} from {job.path}")
        out.line(f"otpy serve: runtime {rt.name!r} on {server.url}")
        shown = server.url + "/" if given else server.dashboard_url
        out.line(f"  dashboard: {shown}")
        if given:
            out.line(f"  (the token is the config's web.token or ${TOKEN_ENV})")
        out.line(f"  API: {server.url}/openapi.json  -  Ctrl-C stops")
        stop = stop or threading.Event()
        try:
            while not stop.wait(0.5):
                if rt.state != "running" or not server.running:
                    err.line(f"otpy serve: the runtime is {rt.state}; stopping")
                    return EXIT_FAILED
        except KeyboardInterrupt:
            err.line("otpy serve: stopping")
    return EXIT_OK
