"""Job files: an optimization job described in YAML, as ``otpy optimize JOB.yaml`` runs it.

::

    job_id: qa-tuning              # optional (default: a new id per start)
    program: qa.yaml               # a pipeline file (relative to this file) or one inline
    space:
      tone: ["Be brief.", "Think step by step, then answer."]
      temperature: {low: 0.0, high: 1.0, step: 0.5}
    trainset: qa_train.jsonl       # a list inline, or a .yaml/.yml/.json list or .jsonl file
    metric: contains               # a registered metric (plugins: group otpy.metrics)
    strategy: grid                 # random_search, grid, bootstrap_fewshot, tpe, or a plugin
    seed: 7
    concurrency: 4
    max_evaluations: 20            # and max_tokens, max_seconds, target_score, patience, ...
    store: jobs.sqlite             # optional: where it checkpoints (relative to this file)

The file is safe-loaded (duplicate keys and object tags refused), and every problem is a
ConfigurationError naming the file, line and column, and the field. Nothing in it is
imported or evaluated: a metric or strategy is only ever a registered name. A file with
``kind: dspy`` describes a DSPy job instead (:mod:`otpy.optimize._dspy_jobfile`).
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pydantic
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from otpy.documents import describe, more_problems, parse_yaml, read_text, shown, yaml_position
from otpy.errors import ConfigurationError
from otpy.optimize._dspy_jobfile import DSPyJobFile, parse_dspy_job_file
from otpy.optimize._job import OPTION_NAMES, JobOptions, resolve_metric
from otpy.optimize._space import SearchSpace
from otpy.optimize._strategy import make_strategy

__all__ = ["JobFile", "load_job_file", "parse_job_file"]

_TRAINSET_SUFFIXES: Final = (".yaml", ".yml", ".json", ".jsonl")


class JobFile(BaseModel):
    """A job file, read: ``program`` is a Path (resolved against the file's folder) or a
    pipeline mapping, ``trainset`` the examples themselves, ``store`` a resolved path or
    None, and ``options`` the :class:`JobOptions` its other fields give (they sit beside
    the rest in the file). :meth:`start_arguments` gives the arguments of
    ``rt.jobs.start``."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    path: Path
    job_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.\-]{1,128}$")
    program: Path | dict[str, Any]
    space: dict[str, Any]
    trainset: list[dict[str, Any]] = Field(min_length=1)
    metric: str = Field(min_length=1)
    store: Path | None = None
    options: JobOptions = Field(default_factory=JobOptions)
    _text: str = PrivateAttr(default="")

    def position(self, *path: str | int) -> str:
        """``file:line:column`` of the field at ``path`` in the file (the file alone if
        it is not there)."""
        return yaml_position(self._text, str(self.path), path)

    def start_arguments(self) -> dict[str, Any]:
        """The arguments of ``rt.jobs.start`` this file asks for: the program, space,
        trainset, metric, ``options`` (the one JobOptions) and the job id if it gives one
        (an inline program's sub-pipeline paths are relative to the file's folder)."""
        arguments: dict[str, Any] = {
            "program": self.program,
            "space": self.space,
            "trainset": self.trainset,
            "metric": self.metric,
            "options": self.options,
        }
        if self.job_id is not None:
            arguments["job_id"] = self.job_id
        if not isinstance(self.program, Path):
            arguments["base_dir"] = self.path.resolve().parent
        return arguments


def load_job_file(path: str | os.PathLike[str]) -> JobFile | DSPyJobFile:
    """Read the job file at ``path`` (see the module docstring). ConfigurationError names
    the file, the field and its line and column for anything wrong: an unknown or missing
    field, a bad value, a program or trainset file that cannot be read."""
    path = Path(path)
    return parse_job_file(read_text(path, "job file"), path)


def parse_job_file(text: str, path: str | os.PathLike[str]) -> JobFile | DSPyJobFile:
    """The job file ``text``, read as if it were the file at ``path`` (which need not
    exist: relative paths in it resolve against its folder, errors name it); see
    :func:`load_job_file`."""
    path = Path(path)
    label = str(path)
    data = parse_yaml(text, label)
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{label}: a job file is a mapping (program, space, trainset, metric, ...), "
            f"got {type(data).__name__}"
        )
    kind = data.get("kind", "pipeline")
    if kind == "dspy":
        return parse_dspy_job_file(data, text, path, _read_trainset)
    if kind != "pipeline":
        where = yaml_position(text, label, ["kind"])
        raise ConfigurationError(f"{where}: kind: {kind!r} is not a kind of job (pipeline, dspy)")
    base = path.parent
    fields = {key: value for key, value in data.items() if key != "kind"}
    for name in ("program", "trainset", "store"):
        if isinstance(fields.get(name), str):
            fields[name] = base / fields[name]
    program = fields.get("program")
    if isinstance(program, Path) and not program.is_file():
        where = yaml_position(text, label, ["program"])
        problem = "does not exist" if _names_file(program) else "is not a pipeline file"
        raise ConfigurationError(
            f"{where}: program: {str(program)!r} {problem}; give a pipeline file (.yaml, "
            ".yml, .json; relative to the job file) or the pipeline inline as a mapping"
        )
    trainset = fields.get("trainset")
    if isinstance(trainset, Path):
        where = yaml_position(text, label, ["trainset"])
        fields["trainset"] = _read_trainset(trainset, where)
        _check_examples(fields["trainset"], lambda index: f"{trainset}: example {index + 1}")
    elif isinstance(trainset, list):
        _check_examples(
            trainset,
            lambda index: yaml_position(text, label, ["trainset", index]) + f": trainset[{index}]",
        )
    options = {name: fields.pop(name) for name in list(fields) if name in OPTION_NAMES}
    try:
        job = JobFile.model_validate({**fields, "options": options, "path": path})
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        loc = list(error["loc"])
        if loc[:1] == ["options"]:  # an option sits beside the other fields in the file
            loc = loc[1:]
        where = yaml_position(text, label, loc)
        field = ".".join(str(part) for part in loc) or "(top level)"
        message = describe(error, _unknown_field)
        raise ConfigurationError(f"{where}: {field}: {message}{more_problems(exc)}") from None
    job._text = text
    _check_names(job, text, label)
    return job


def _check_names(job: JobFile, text: str, label: str) -> None:
    """The space parses, and the metric and strategy are registered (with their options)."""
    options = job.options
    try:
        space = SearchSpace.parse(job.space)
    except ConfigurationError as exc:
        bad = next((name for name in job.space if repr(name) in str(exc)), None)
        where = yaml_position(text, label, ["space", bad] if bad is not None else ["space"])
        raise ConfigurationError(f"{where}: {exc}") from None
    for field, check in (
        ("metric", lambda: resolve_metric(job.metric)),
        ("strategy", lambda: make_strategy(options.strategy, space, **options.strategy_options)),
    ):
        try:
            check()
        except ConfigurationError as exc:
            where = yaml_position(text, label, [field])
            raise ConfigurationError(f"{where}: {field}: {exc}") from None


def _names_file(path: Path) -> bool:
    return path.suffix in (".yaml", ".yml", ".json")


def _check_examples(examples: list[Any], where: Callable[[int], str]) -> None:
    """Each example a mapping with ``inputs`` (a mapping); ConfigurationError at
    ``where(index)`` for the first that is not."""
    for index, example in enumerate(examples):
        if not isinstance(example, dict) or not isinstance(example.get("inputs"), dict):
            raise ConfigurationError(
                f"{where(index)}: an example is a mapping with inputs (a mapping of the "
                f"program's inputs) and optionally expected, got {shown(example)}"
            )


def _unknown_field(loc: tuple[Any, ...]) -> str:
    fields = sorted((set(JobFile.model_fields) - {"path", "options"}) | OPTION_NAMES)
    close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"not a job file field{hint} (fields: {', '.join(fields)})"


def _read_trainset(path: Path, where: str) -> list[Any]:
    """The examples in a trainset file: a YAML or JSON list, or JSON Lines (one example
    per non-blank line). ConfigurationError naming the file (and line) otherwise."""
    if not path.name.endswith(_TRAINSET_SUFFIXES):
        raise ConfigurationError(
            f"{where}: trainset: {str(path)!r} is not a .yaml, .yml, .json or .jsonl file"
        )
    text = read_text(path, "trainset file")
    label = str(path)
    if path.suffix == ".jsonl":
        examples = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    examples.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ConfigurationError(f"{label}:{number}:{exc.colno}: {exc.msg}") from None
        return examples
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{label}:{exc.lineno}:{exc.colno}: {exc.msg}") from None
    else:
        data = parse_yaml(text, label)
    if not isinstance(data, list):
        raise ConfigurationError(
            f"{label}: a trainset file holds a list of examples ({{inputs: {{...}}, "
            f"expected: ...}}), got {type(data).__name__}"
        )
    return data
