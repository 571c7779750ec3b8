"""``otpy`` / ``python -m otpy``: the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the otpy command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="otpy", description="otpy: supervised actors for Python")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="a supervision tree that crashes and recovers")
    demo.add_argument("--quiet", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from otpy.demo import run_demo

        return run_demo(verbose=not args.quiet)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
