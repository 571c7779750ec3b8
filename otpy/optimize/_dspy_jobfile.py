"""Job files of ``kind: dspy``: a DSPy optimizer's compile, as ``otpy optimize JOB.yaml`` runs it.

::

    kind: dspy
    job_id: qa-mipro                 # optional (default: a new id per start)
    program: qa_program:program      # module:attr (a dspy.Module, a class or a factory)
    optimizer:                       # or just its name: optimizer: evaluate
      name: MIPROv2                  # a DSPy teleprompter, or evaluate
      options: {auto: light}         # its constructor's arguments
      compile: {max_bootstrapped_demos: 2}   # more arguments of compile (optional)
    trainset: train.jsonl            # one example a line (.jsonl), or a .json/.yaml list
    valset: dev.jsonl                # optional
    inputs: [question]               # the examples' input fields
    metric: qa_program:exact         # module:attr
    lm: {provider: claude, temperature: 0.7}   # optional: otpy.dspy.lm's arguments
    seed: 0
    threads: 8
    max_calls: 500                   # and max_tokens, max_cost (with prices), max_seconds
    prices: {claude: [3.0, 15.0]}    # dollars per million input, output tokens
    jobs_store: jobs.sqlite          # optional: where it checkpoints (relative to this file)

References are imported when the job starts (the modules are found beside the job file
first): that is user code the user named. Nothing in the file is evaluated. Every problem
is a ConfigurationError naming the file, line and column, and the field.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from otpy.documents import describe, more_problems, shown, yaml_position
from otpy.errors import ConfigurationError
from otpy.optimize._dspy_spec import reference

__all__ = ["DSPyJobFile", "OptimizerChoice", "parse_dspy_job_file"]


class OptimizerChoice(BaseModel):
    """``optimizer:``: a DSPy teleprompter's ``name`` (or ``evaluate``), its constructor's
    ``options`` and more arguments of its ``compile``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    compile: dict[str, Any] = Field(default_factory=dict)


class LMChoice(BaseModel):
    """``lm:``: what ``otpy.dspy.lm`` is given (a provider by name, else the capability a
    call selects by; the provider-side model; ``dspy.LM`` settings)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str | None = None
    capability: str | list[str] | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, ge=1)


class DSPyJobFile(BaseModel):
    """A DSPy job file, read (see the module docstring): ``trainset``/``valset`` are the
    examples themselves, ``store`` a resolved path or None. :meth:`start_arguments` gives
    the arguments of ``rt.jobs.start_dspy`` (but the LM, made from ``lm``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    path: Path
    kind: Literal["dspy"] = "dspy"
    job_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.\-]{1,128}$")
    program: str
    optimizer: OptimizerChoice
    trainset: list[dict[str, Any]] = Field(min_length=1)
    valset: list[dict[str, Any]] | None = None
    inputs: list[str] = Field(min_length=1)
    metric: str
    lm: LMChoice | None = None
    seed: int = 0
    threads: int | None = Field(default=None, ge=1, le=1024)
    max_calls: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost: float | None = Field(default=None, gt=0)
    max_seconds: float | None = Field(default=None, gt=0)
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    max_restarts: int = Field(default=3, ge=0)
    restart_window: float = Field(default=60.0, gt=0)
    store: Path | None = None
    _text: str = PrivateAttr(default="")
    _references = field_validator("program", "metric")(reference)

    @model_validator(mode="before")
    @classmethod
    def _named_optimizer(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("optimizer"), str):
            return {**data, "optimizer": {"name": data["optimizer"]}}
        return data

    def position(self, *path: str | int) -> str:
        """``file:line:column`` of the field at ``path`` (the file alone if not there)."""
        return yaml_position(self._text, str(self.path), path)

    def lm_arguments(self) -> dict[str, Any] | None:
        """``otpy.dspy.lm``'s keyword arguments for ``lm:`` (None: the default LM)."""
        if self.lm is None:
            return None
        return self.lm.model_dump(exclude_none=True)

    def start_arguments(self) -> dict[str, Any]:
        """The arguments of ``rt.jobs.start_dspy`` this file asks for (``lm`` aside)."""
        arguments: dict[str, Any] = {
            "program": self.program,
            "optimizer": self.optimizer.name,
            "trainset": self.trainset,
            "valset": self.valset,
            "inputs": self.inputs,
            "metric": self.metric,
            "seed": self.seed,
            "threads": self.threads,
            "max_calls": self.max_calls,
            "max_tokens": self.max_tokens,
            "max_cost": self.max_cost,
            "max_seconds": self.max_seconds,
            "prices": self.prices,
            "max_restarts": self.max_restarts,
            "restart_window": self.restart_window,
            "optimizer_options": self.optimizer.options,
            "compile_options": self.optimizer.compile,
            "base_dir": self.path.resolve().parent,
        }
        if self.job_id is not None:
            arguments["job_id"] = self.job_id
        return arguments


def parse_dspy_job_file(
    data: dict[str, Any],
    text: str,
    path: Path,
    read_examples: Any,
) -> DSPyJobFile:
    """The DSPy job file ``data`` (parsed from ``text``, the file at ``path``);
    ``read_examples(path, where)`` reads a trainset file."""
    label = str(path)
    fields = dict(data)
    if "jobs_store" in fields:
        if "store" in fields:
            where = yaml_position(text, label, ["jobs_store"])
            raise ConfigurationError(f"{where}: give jobs_store or store, not both")
        fields["store"] = fields.pop("jobs_store")
    if isinstance(fields.get("store"), str):
        fields["store"] = path.parent / fields["store"]
    for name in ("trainset", "valset"):
        value = fields.get(name)
        if isinstance(value, str):
            fields[name] = read_examples(path.parent / value, yaml_position(text, label, [name]))
    try:
        job = DSPyJobFile.model_validate({**fields, "path": path})
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        loc = list(error["loc"])
        where = yaml_position(text, label, loc)
        field = ".".join(str(part) for part in loc) or "(top level)"
        message = describe(error, _unknown_field)
        raise ConfigurationError(f"{where}: {field}: {message}{more_problems(exc)}") from None
    job._text = text
    for name in ("trainset", "valset"):
        for index, example in enumerate(getattr(job, name) or ()):
            missing = [field for field in job.inputs if field not in example]
            if missing:
                where = yaml_position(text, label, [name])
                raise ConfigurationError(
                    f"{where}: {name} example {index + 1} lacks the input fields {missing} "
                    f"(inputs: {job.inputs}): {shown(example)}"
                )
    return job


def _unknown_field(loc: tuple[Any, ...]) -> str:
    choices: dict[str, type[BaseModel]] = {"optimizer": OptimizerChoice, "lm": LMChoice}
    nested = choices.get(str(loc[0]))
    if nested is not None and len(loc) > 1:
        fields = sorted(nested.model_fields)
        close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"not a field of {loc[0]}{hint} (fields: {', '.join(fields)})"
    fields = sorted(set(DSPyJobFile.model_fields) - {"path"} | {"jobs_store"})
    close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"not a field of a DSPy job file{hint} (fields: {', '.join(fields)})"
