"""What ``rt.jobs`` makes a job of: the options from keywords, the program as stored, the
executors by name, and the runner class of each kind of job."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic

from otpy.actors._optimization_runner import OptimizationRunner
from otpy.documents import validation_problems
from otpy.errors import ConfigurationError
from otpy.optimize import EXECUTORS, Executor, JobOptions
from otpy.pipelines import Pipeline

__all__ = ["base_dir_of", "job_options", "make_executor", "program_of", "runner_type"]


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


def make_executor(name: str, settings: Mapping[str, Any]) -> Executor:
    factory = EXECUTORS.get(name)
    if factory is None:
        raise ConfigurationError(
            f"unknown executor {name!r} (registered: {', '.join(sorted(EXECUTORS))})"
        )
    return factory(settings)


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
