"""What the ``otpy`` commands share: exit codes, safe console output, plain-text tables,
``key=value`` arguments read as YAML scalars, and starting the runtime.

No third-party terminal library: lines go out as they are, to a TTY or a pipe alike.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TextIO

import yaml

from otpy.config import RuntimeConfig
from otpy.errors import ConfigurationError
from otpy.runtime import Runtime, start

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "Console",
    "add_config_option",
    "assignment",
    "duration",
    "read_mapping",
    "runtime_config",
    "shorten",
    "start_runtime",
    "table",
    "yaml_value",
]

EXIT_OK: Final = 0
"""The command did what was asked (a run completed, every pipeline is valid)."""
EXIT_FAILED: Final = 1
"""A pipeline run failed or was cancelled."""
EXIT_USAGE: Final = 2
"""Bad input: usage, an unreadable or malformed file, a validation error."""


class CliError(Exception):
    """Bad input for a command: the message is printed (no traceback), exit status 2."""


class Console:
    """Writes whole lines to ``stream`` (None: ``sys.stdout``, or ``sys.stderr`` with
    ``error``, looked up at each write), each flushed at once and written in one
    ``write`` call (progress lines come from the run's worker thread). Characters the
    stream's encoding cannot show are escaped instead of raising; ``fancy`` says whether
    the progress symbols (▶ ✓ ✗ and an en dash) can be shown, else ASCII stand-ins are."""

    SYMBOLS: Final = {
        "start": "\u25b6",
        "ok": "\u2713",
        "failed": "\u2717",
        "skipped": "\u2013",
        "bar": "\u2588",
        "gap": "\u2591",
        "loop": "\u21bb",
    }
    ASCII: Final = {"start": ">", "ok": "+", "failed": "x", "skipped": "-", "bar": "#", "gap": "-",
                    "loop": "~"}  # fmt: skip

    def __init__(self, stream: TextIO | None = None, *, error: bool = False) -> None:
        self._stream = stream
        self._error = error

    @property
    def stream(self) -> TextIO:
        if self._stream is not None:
            return self._stream
        return sys.stderr if self._error else sys.stdout

    @property
    def fancy(self) -> bool:
        encoding = getattr(self.stream, "encoding", None) or "ascii"
        try:
            "".join(self.SYMBOLS.values()).encode(encoding)
        except (UnicodeEncodeError, LookupError):
            return False
        return True

    def symbol(self, name: str) -> str:
        return (self.SYMBOLS if self.fancy else self.ASCII)[name]

    def line(self, text: str = "") -> None:
        self.write(text + "\n")

    def write(self, text: str) -> None:
        """Write ``text`` in one call and flush (unshowable characters escaped)."""
        stream = self.stream
        try:
            stream.write(text)
        except UnicodeEncodeError:
            encoding = getattr(stream, "encoding", None) or "ascii"
            stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
        stream.flush()

    def redraw(self, text: str, *, end: bool = False) -> None:
        """Replace the current terminal line with ``text`` (a live progress line); ``end``
        finishes the line."""
        self.write("\r" + text + "\x1b[K" + ("\n" if end else ""))

    def lines(self, texts: Sequence[str]) -> None:
        for text in texts:
            self.line(text)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A plain-text table: one line per row, columns padded to their widest cell and
    separated by two spaces, the header first (trailing spaces stripped)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    return [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in [list(headers), *rows]
    ]


def shorten(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with ``...``."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(0, width - 3)] + "..."


def duration(seconds: float) -> str:
    """``0.12s``, ``3.4ms``, ``1m05s``: a short, readable duration."""
    if not math.isfinite(seconds) or seconds < 0:
        return "-"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def yaml_value(text: str, what: str = "value") -> Any:
    """``text`` read as a YAML value: ``3`` an int, ``0.2`` a float, ``true`` a bool,
    ``null`` None, ``"3"`` (quoted) the string ``3``, ``[a, b]`` / ``{k: v}`` a list / a
    mapping. Anything else stays the text as it is: plain words, the empty text, text
    that would read as a date or as a ``key: value`` mapping without braces
    (``Think: then answer`` is a string). A ``[`` or ``{`` that YAML cannot read is a
    CliError naming ``what`` and the problem."""
    stripped = text.strip()
    if not stripped:
        return text
    flow = stripped[0] in "[{"
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        if not flow:
            return text
        problem = getattr(exc, "problem", None) or str(exc)
        raise CliError(
            f"{what}: {text!r} is not a YAML list or mapping ({problem}); quote items "
            "holding ':', '?', ',' or '#', e.g. [\"What is OTP?\", \"Why?\"]"
        ) from None
    if isinstance(value, list | dict) and not flow:
        return text
    return value if _plain(value) else text


def _plain(value: Any) -> bool:
    """Whether ``value`` is JSON data (YAML also makes dates and binary data)."""
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return value is None or isinstance(value, str | int | float | bool)


def assignment(text: str, option: str) -> tuple[str, str]:
    """``key=value`` split at the first ``=``; CliError naming ``option`` otherwise."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise CliError(f"{option} takes key=value, got {text!r}")
    return key, value


def read_mapping(path: str, option: str) -> dict[str, Any]:
    """The mapping in a YAML or JSON file (JSON by a ``.json`` suffix, else safe YAML);
    CliError naming ``option``, the file and the problem."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CliError(f"{option}: cannot read {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{option}: {path!r} is not UTF-8 text ({exc.reason})") from None
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{option}: {path}:{exc.lineno}:{exc.colno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
        problem = getattr(exc, "problem", None) or str(exc)
        raise CliError(f"{option}: {where}: malformed YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise CliError(
            f"{option}: {path!r} must hold a mapping of names to values, got {type(data).__name__}"
        )
    return data


def runtime_config(config: str | None) -> RuntimeConfig:
    """The runtime config in the file ``config`` (None: the environment over the embedded
    defaults); CliError if it is unreadable or invalid."""
    try:
        return RuntimeConfig.load(config)
    except ConfigurationError as exc:
        raise CliError(f"{_config_label(config)}: {exc}") from None


def start_runtime(config: str | RuntimeConfig | None, *, jobs_store: str | None = None) -> Runtime:
    """``otpy.start`` with ``config`` (a file, a loaded config, or None: the environment
    over the embedded defaults), its ``jobs_store`` replaced by ``jobs_store`` if given;
    CliError if the config is unreadable or invalid."""
    loaded = config if isinstance(config, RuntimeConfig) else runtime_config(config)
    if jobs_store is not None:
        loaded = loaded.model_copy(update={"jobs_store": jobs_store})
    try:
        return start(loaded)
    except ConfigurationError as exc:
        raise CliError(f"{_config_label(config)}: {exc}") from None


def _config_label(config: str | RuntimeConfig | None) -> str:
    return f"--config {config}" if isinstance(config, str) else "runtime config"


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """The ``--config FILE`` option every runtime command takes."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="a runtime config YAML (default: OTPY_* environment over the embedded defaults)",
    )


def subcommand(
    commands: Any,
    name: str,
    summary: str,
    details: str | None = None,
    *,
    handler: Callable[[argparse.Namespace], int] | None = None,
    config: bool = False,
) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` to ``commands`` (an argparse subparsers action):
    ``summary`` in the list of commands, ``details`` (else the summary) on its --help,
    ``--config FILE`` if ``config``, and ``handler`` as what runs it."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=details or summary
    )
    if config:
        add_config_option(parser)
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser
