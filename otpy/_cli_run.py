"""``otpy run`` and ``otpy validate``: run a pipeline file with live progress, check files.

``run`` compiles the pipeline first (every problem reported before anything runs, exit
2), runs it in a supervised worker with one progress line per step event and per loop
item on stderr, then prints the result table and the outputs on stdout (or, with
``--json``, the PipelineResult as one JSON document); ``--resume`` continues a pipeline
with ``checkpoint_enabled`` from its last completed step. Exit 0 completed, 1 failed or
cancelled. ``validate`` lists, for each valid file, the fields that have no effect in otpy
and why (a pipeline_ex document's ``hooks``, ``claude_options.allowed_tools``...).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from otpy._cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Console,
    add_config_option,
    assignment,
    duration,
    read_mapping,
    shorten,
    start_runtime,
    subcommand,
    table,
    yaml_value,
)
from otpy.errors import CallTimeoutError, OtpyError
from otpy.pipelines import PipelineResult, Plan, StepEvent, StepOutcome, check_tools

__all__ = [
    "Progress",
    "add_run_parser",
    "add_validate_parser",
    "parse_inputs",
    "result_lines",
    "run_command",
    "validate_command",
]

ERROR_WIDTH = 60
"""How much of a step's error the result table shows (the whole one follows it)."""


def add_run_parser(commands: Any) -> None:
    """The ``run`` subcommand on ``commands`` (an argparse subparsers action)."""
    run = subcommand(
        commands,
        "run",
        "run a pipeline file",
        "Run a pipeline: live progress on stderr, then the result table and "
        "the outputs on stdout. Exit 0 completed, 1 failed or cancelled, 2 bad input.",
    )
    run.add_argument("pipeline", help="the pipeline file (YAML or JSON)")
    run.add_argument(
        "-i",
        "--input",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an input; the value is read as YAML (3 is a number, true a boolean, [a, b] "
        "a list, '\"3\"' a string), except for inputs of type string, which take the text "
        "as it is unless it is quoted (repeatable)",
    )
    run.add_argument(
        "--inputs", metavar="FILE", help="a YAML or JSON file with a mapping of inputs (-i wins)"
    )
    run.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a starting run variable ({{ vars.KEY }}), value read as YAML (repeatable)",
    )
    run.add_argument("--json", action="store_true", help="print the result as one JSON document")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue from the pipeline's checkpoint (it needs checkpoint_enabled: true): "
        "the steps that completed are not run again",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    run.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="cancel the run after this long"
    )
    add_config_option(run)
    run.set_defaults(handler=run_command)


def add_validate_parser(commands: Any) -> None:
    """The ``validate`` subcommand on ``commands``."""
    validate = subcommand(
        commands,
        "validate",
        "check pipeline files against the registered step types",
        "Check pipeline files without running them. Exit 2 if any is invalid.",
    )
    validate.add_argument("pipelines", nargs="+", metavar="PIPELINE", help="pipeline files")
    add_config_option(validate)
    validate.set_defaults(handler=validate_command)


class Progress:
    """The ``on_step`` callback of ``run``: one line per step event on ``console``.

    ``▶ step 2/4 summary (claude)`` when a step starts, then ``✓ summary 0.12s 134 tok
    simulated``, ``✗ summary 0.01s ServerError: ...`` or (after an en dash) ``summary
    skipped``. Called in the run's worker thread; it only writes lines.
    """

    def __init__(self, plan: Plan, console: Console) -> None:
        self.types = {step.name: step.spec.type for step in plan.steps}
        self.console = console

    def __call__(self, event: StepEvent) -> None:
        self.console.line(self.describe(event))

    def describe(self, event: StepEvent) -> str:
        symbol = self.console.symbol
        if event.item is not None:
            of = f"/{event.items}" if event.items is not None else ""
            noun = "item" if event.items is not None else "iteration"
            return f"  {symbol('loop')} {event.step} {noun} {event.item}{of}"
        outcome = event.outcome
        if outcome is None:
            kind = self.types.get(event.step, "?")
            return f"{symbol('start')} step {event.index + 1}/{event.total} {event.step} ({kind})"
        if outcome.status == "skipped":
            return f"{symbol('skipped')} {outcome.name} skipped"
        parts = [outcome.name, duration(outcome.duration)]
        if outcome.status == "ok":
            if outcome.provider is not None or outcome.tokens:
                parts += [f"{outcome.tokens} tok", outcome.provider or "-"]
            if outcome.retries:
                parts.append(f"{outcome.retries} retr{'y' if outcome.retries == 1 else 'ies'}")
            if outcome.fallback is not None:
                parts.append(f"(fallback {outcome.fallback} after {_error(outcome)})")
            return f"{symbol('ok')} " + " ".join(parts)
        parts.append(_error(outcome))
        return f"{symbol('failed')} " + " ".join(parts)


def _error(outcome: StepOutcome) -> str:
    return "" if outcome.error is None else str(outcome.error)


def _inputs(args: argparse.Namespace, plan: Plan) -> dict[str, Any]:
    """``--inputs`` then each ``-i`` (typed by the pipeline's declared inputs)."""
    inputs = read_mapping(args.inputs, "--inputs") if args.inputs else {}
    declared = {name: spec.type for name, spec in plan.pipeline.inputs.items()}
    inputs.update(parse_inputs(args.input, declared))
    return inputs


def _variables(args: argparse.Namespace) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    for text in args.var:
        key, raw = assignment(text, "--var")
        variables[key] = yaml_value(raw, f"--var {key}")
    return variables


def run_command(args: argparse.Namespace) -> int:
    """``otpy run``: compile, run with progress, print the result; the exit status."""
    out, err = Console(), Console(error=True)
    if args.timeout is not None and not args.timeout > 0:
        raise CliError(f"--timeout must be a number of seconds > 0, got {args.timeout}")
    with start_runtime(args.config) as rt:
        plan = rt.compile_pipeline(Path(args.pipeline))
        inputs, variables = _inputs(args, plan), _variables(args)
        on_step = None if args.quiet else Progress(plan, err)
        run = rt.start_pipeline(
            plan, inputs, variables=variables, on_step=on_step, resume=args.resume
        )
        try:
            result = run.wait(args.timeout)
        except CallTimeoutError:
            err.line(f"otpy: the run took longer than {args.timeout:g}s: cancelling it")
            run.cancel()
            result = run.wait()
        except KeyboardInterrupt:
            err.line("otpy: interrupted: cancelling after the current step (Ctrl-C again to quit)")
            run.cancel()
            result = run.wait()
    if args.json:
        out.line(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        out.lines(result_lines(result))
    if not result.ok:
        err.line(f"otpy: {_verdict(result)}")
        return EXIT_FAILED
    return EXIT_OK


def _verdict(result: PipelineResult) -> str:
    if result.status == "cancelled":
        return f"pipeline {result.pipeline!r} was cancelled (run {result.run_id})"
    where = f" at step {result.failed_step!r}" if result.failed_step else ""
    why = f" ({result.error.type})" if result.error is not None else ""
    return f"pipeline {result.pipeline!r} failed{where}{why} (run {result.run_id})"


def result_lines(result: PipelineResult) -> list[str]:
    """The result table, a summary line and the outputs (for a completed run)."""
    rows = [_row(outcome) for outcome in result.steps]
    headers = ("step", "type", "status", "time", "tokens", "provider", "retries", "error")
    lines = table(headers, rows)
    done = sum(1 for outcome in result.steps if outcome.status == "ok")
    lines.append("")
    lines.append(
        f"{result.pipeline}: {result.status} in {duration(result.duration)}, {done}/"
        f"{len(result.steps)} steps ok, {result.tokens} tokens (run {result.run_id})"
    )
    for outcome in result.steps:
        if outcome.error is not None and len(str(outcome.error)) > ERROR_WIDTH:
            lines.append(f"  {outcome.name}: {outcome.error}")
    if result.error is not None and result.failed_step is None:
        lines.append(f"  error: {result.error}")  # not a step's: the outputs, say
    if result.outputs:
        lines += ["", "outputs:"]
        lines += [_output(name, value) for name, value in result.outputs.items()]
    return lines


def _row(outcome: StepOutcome) -> list[str]:
    ran = outcome.status in ("ok", "failed")
    return [
        outcome.name,
        outcome.type,
        outcome.status + (" (fallback)" if outcome.fallback and outcome.status == "ok" else ""),
        duration(outcome.duration) if ran else "-",
        str(outcome.tokens) if ran else "-",
        outcome.provider or "-",
        str(outcome.retries) if ran else "-",
        shorten(_error(outcome), ERROR_WIDTH) if outcome.error is not None else "",
    ]


def _output(name: str, value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"  {name}: " + text.replace("\n", "\n    ")


def validate_command(args: argparse.Namespace) -> int:
    """``otpy validate``: ``ok <name> (N steps)`` per valid file, then one ``tools`` line
    per step that may use tools (and the ones the runtime does not enable); the error per
    invalid one (an unknown tool name is one) on stderr; exit 2 if any is invalid."""
    out, err = Console(), Console(error=True)
    status = EXIT_OK
    with start_runtime(args.config) as rt:
        for path in args.pipelines:
            try:
                plan = rt.compile_pipeline(Path(path))
            except OtpyError as exc:
                status = EXIT_USAGE
                err.line(f"invalid {path}: {exc}")
                continue
            count = len(plan.steps)
            line = f"ok {plan.name} ({count} step{'' if count == 1 else 's'}) {path}"
            migration = plan.pipeline.migration
            if migration is not None and migration.pipeline_ex:
                line += " (a pipeline_ex workflow)"
            out.line(line)
            inert = migration.inert if migration is not None else []
            if inert:
                verb = "has" if len(inert) == 1 else "have"
                out.line(f"  {len(inert)} field{'s' * (len(inert) != 1)} {verb} no effect in otpy:")
                out.lines([f"    {note.where}: {note.note}" for note in inert])
            for used in check_tools(plan, rt.tools):
                text = f"  tools of {used.step}: {', '.join(used.tools) or 'none'}"
                if used.disabled:
                    text += f" ({', '.join(used.disabled)} off: the config's tools.bash is false)"
                out.line(text)
    return status


def parse_inputs(pairs: Sequence[str], declared: Mapping[str, str]) -> dict[str, Any]:
    """``-i key=value`` pairs as values, given the declared type of each input by name:
    each value read as YAML (:func:`yaml_value`), except that an input declared
    ``string`` takes the text as it is unless it is quoted (``-i code=007`` is ``"007"``,
    ``-i code='"x y"'`` is ``x y``). CliError for a pair without ``=`` or a bad list."""
    inputs: dict[str, Any] = {}
    for text in pairs:
        key, raw = assignment(text, "-i/--input")
        if declared.get(key) == "string":
            quoted = raw.strip()[:1] in ("'", '"')
            inputs[key] = yaml_value(raw, f"-i {key}") if quoted else raw
        else:
            inputs[key] = yaml_value(raw, f"-i {key}")
    return inputs
