"""What ``rt.jobs`` makes a job of: the options from keywords, the plan (compiled once for
many jobs of one program: :class:`Plans`), the executor it runs on (checked and made ready
before the job is stored), the program as stored, and the runner class of each kind of
job."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pydantic

from otpy.actors._job_record import JobEnv
from otpy.actors._optimization_runner import OptimizationRunner
from otpy.documents import validation_problems
from otpy.errors import ConfigurationError
from otpy.optimize import EXECUTORS, JobOptions, JobSpec, JobWork, Metric
from otpy.pipelines import Pipeline, PipelineSource, Plan, compile_pipeline
from otpy.steps import StepTable

__all__ = [
    "Plans",
    "base_dir_of",
    "chosen_executor",
    "job_options",
    "prepare",
    "program_of",
    "runner_type",
]


def job_options(
    job_id: str, options: JobOptions | None, strategy: str | None, settings: Mapping[str, Any]
) -> JobOptions:
    """The job's one JobOptions: ``options``, or built once from the keywords."""
    if options is not None:
        if settings or strategy is not None:
            given = ", ".join(sorted([*settings, *(["strategy"] if strategy else [])]))
            raise ConfigurationError(
                f"job {job_id!r}: give options= or the option keywords ({given}), not both"
            )
        return options
    fields = {**settings, **({"strategy": strategy} if strategy is not None else {})}
    try:
        return JobOptions(**fields)
    except pydantic.ValidationError as exc:
        raise ConfigurationError(f"job {job_id!r}: {validation_problems(exc)}") from None


def runner_type(kind: str) -> Any:
    """The runner class of a job of ``kind`` (DSPy's imported on first use)."""
    if kind == "dspy":
        from otpy.actors._dspy_runner import DSPyRunner

        return DSPyRunner
    return OptimizationRunner


def chosen_executor(job_id: str, options: JobOptions, default: str) -> JobOptions:
    """``options`` naming the executor the job runs on (``default``, the runtime's, if they
    name none); ConfigurationError for a name nobody registered."""
    name = options.executor or default
    if name not in EXECUTORS:
        raise ConfigurationError(
            f"job {job_id!r}: unknown executor {name!r} (registered: "
            f"{', '.join(sorted(EXECUTORS))})"
        )
    return options.model_copy(update={"executor": name})


def prepare(env: JobEnv, spec: JobSpec, plan: Plan, metric: Metric) -> None:
    """Let the job's executor refuse what it cannot run and get ready for it (in the
    caller's thread, before anything is stored): ConfigurationError."""
    work = JobWork(spec, plan, metric, env.providers, env.clock, env.table())
    env.executor(spec.options.executor or env.default_executor).prepare(work)


def program_of(pipeline: Pipeline) -> dict[str, Any]:
    source = pipeline.source
    if source is not None:
        return dict(source[2])
    return pipeline.model_dump(mode="json", exclude_unset=True)


def base_dir_of(pipeline: Pipeline, given: str | os.PathLike[str] | None) -> str | None:
    """Where a job's sub-pipeline paths resolve: the program file's folder, else ``given``."""
    if pipeline.base_dir is not None:
        return str(pipeline.base_dir)
    return None if given is None else str(Path(given).resolve())


class Plans:
    """The plans of the programs a runtime's jobs start with: a program given as YAML text
    is compiled once per step table (a plan is immutable, a snapshot of its table, and
    already shared by every evaluation of a job), so starting many jobs of one program
    compiles it once. A path (its file may change), a mapping or a Pipeline (their caller
    may change them) is compiled every time. Any thread."""

    SIZE: Final = 16
    """Programs kept (the least recently started go first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plans: OrderedDict[tuple[str, str | None], tuple[StepTable, Plan]] = OrderedDict()

    def compile(
        self, source: PipelineSource, table: StepTable, base_dir: str | os.PathLike[str] | None
    ) -> Plan:
        """``compile_pipeline(source, table, base_dir=base_dir)``, or the plan it made
        before for the same text, table and base_dir; raises what it raises."""
        if not isinstance(source, str) or "\n" not in source:  # one line: maybe a path
            return compile_pipeline(source, table, base_dir=base_dir)
        key = (source, None if base_dir is None else os.fspath(base_dir))
        with self._lock:
            found = self._plans.get(key)
            if found is not None and found[0] is table:
                self._plans.move_to_end(key)
                return found[1]
        plan = compile_pipeline(source, table, base_dir=base_dir)
        with self._lock:
            self._plans[key] = (table, plan)
            self._plans.move_to_end(key)
            while len(self._plans) > self.SIZE:
                self._plans.popitem(last=False)
        return plan
