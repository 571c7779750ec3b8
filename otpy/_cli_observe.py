"""``otpy observe``: the supervision tree of a runtime, printed live (``otpy.observer``).

The runtime runs in this process, started from ``--config`` (or the environment over the
embedded defaults); a runtime in another process is observed through the HTTP API once
it exists. ``--count N`` prints N snapshots and exits (0: until Ctrl-C, which exits 0);
``--json`` prints one JSON document per line.
"""

from __future__ import annotations

import argparse
import json
import threading
from typing import Any

from otpy._cli_common import EXIT_OK, CliError, Console, add_config_option, start_runtime
from otpy.observer import tree

__all__ = ["add_observe_parser", "observe_command"]

CLEAR = "\x1b[H\x1b[2J"


def add_observe_parser(commands: Any) -> None:
    """The ``observe`` subcommand on ``commands``."""
    observe = commands.add_parser(
        "observe",
        help="print the runtime's supervision tree, live",
        description="Start the runtime and print its supervision tree every --interval "
        "seconds: each supervisor's strategy and restart intensity used, each child's "
        "state, restarts, mailbox and suspended flag.",
    )
    observe.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="seconds between snapshots"
    )
    observe.add_argument(
        "--count", type=int, default=0, metavar="N", help="snapshots to print (0: until Ctrl-C)"
    )
    observe.add_argument("--json", action="store_true", help="one JSON document per snapshot")
    add_config_option(observe)
    observe.set_defaults(handler=observe_command)


def observe_command(args: argparse.Namespace) -> int:
    """``otpy observe``: print snapshots until ``--count`` is reached or Ctrl-C."""
    if args.interval <= 0 or args.count < 0:
        raise CliError("--interval must be > 0 and --count >= 0")
    out = Console()
    live = not args.json and out.stream.isatty()
    pause = threading.Event()  # never set: waits out the interval, Ctrl-C still interrupts
    frames = 0
    with start_runtime(args.config) as rt:
        try:
            while True:
                snapshot = tree(rt)
                if args.json:
                    out.line(json.dumps(snapshot.to_dict(), default=str))
                else:
                    text = "\n".join(snapshot.render())
                    out.write((CLEAR if live else "\n" if frames else "") + text + "\n")
                frames += 1
                if args.count and frames >= args.count:
                    break
                pause.wait(args.interval)
        except KeyboardInterrupt:
            pass
    return EXIT_OK
