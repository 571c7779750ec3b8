"""A DSPy job described: :func:`dspy_job` checks what ``rt.jobs.start_dspy`` is given and
makes the stored spec and the live parts; :func:`dspy_parts` makes the parts again from
a stored spec (a resumed job), from references or from objects given again."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dspy  # type: ignore[import-untyped]
import pydantic

from otpy.documents import validation_problems
from otpy.dspy._job_parts import (
    EVALUATE,
    DSPyParts,
    check_lms,
    compile_arguments,
    example_records,
    fresh,
    lm_of,
    load_reference,
    make_optimizer,
    program_of,
    target_of,
)
from otpy.dspy._lm import HasProviders, lm
from otpy.errors import ConfigurationError, JobError
from otpy.optimize import DSPyJob, JobOptions, JobSpec

__all__ = ["dspy_job", "dspy_parts", "job_lm", "program_template"]


def job_lm(rt: HasProviders, given: Any = None) -> Any:
    """The LM a job's calls go to: ``given``, else DSPy's configured LM, else
    ``otpy.dspy.lm(rt)``. ConfigurationError if it is not an ``otpy.dspy.lm``."""
    chosen = given if given is not None else dspy.settings.get("lm")
    if chosen is None:
        return lm(rt)
    target_of(chosen)  # refuses one whose calls would escape the job
    return chosen


def dspy_job(
    rt: HasProviders,
    job_id: str,
    program: Any,
    optimizer: Any,
    trainset: Sequence[Any],
    *,
    valset: Sequence[Any] | None,
    metric: Any,
    seed: int,
    threads: int | None,
    budgets: Mapping[str, Any],
    optimizer_options: Mapping[str, Any] | None,
    compile_options: Mapping[str, Any] | None,
    inputs: Sequence[str] | None,
    given_lm: Any,
    options: Mapping[str, Any],
    base_dir: str | os.PathLike[str] | None,
) -> tuple[JobSpec, DSPyParts]:
    """The spec to store and the parts to run for a new DSPy job (see
    ``JobsHandle.start_dspy``); ConfigurationError naming what is wrong."""
    where = f"job {job_id!r}"
    folder = str(Path(base_dir if base_dir is not None else os.getcwd()).resolve())
    program_ref = program if isinstance(program, str) else None
    if program_ref is not None:
        program = load_reference(program_ref, what=f"{where}: program", base_dir=folder)
    template = fresh(program_of(program, f"{where}: program"))
    metric_ref = metric if isinstance(metric, str) else None
    metric_fn = _metric(metric, where, folder)
    chosen_lm = job_lm(rt, given_lm)
    name_given = isinstance(optimizer, str)
    if name_given:
        made = make_optimizer(
            optimizer,
            dict(optimizer_options or {}),
            metric=metric_fn,
            seed=seed,
            threads=threads,
            job_lm=chosen_lm,
        )
        label = EVALUATE if made is None else type(made).__name__
    else:
        if optimizer_options:
            raise ConfigurationError(
                f"{where}: optimizer_options are for an optimizer given by name"
            )
        if not callable(getattr(optimizer, "compile", None)):
            raise ConfigurationError(
                f"{where}: optimizer must be a DSPy teleprompter, 'evaluate' or a name, got "
                f"{type(optimizer).__name__}"
            )
        made, label = fresh(optimizer), type(optimizer).__name__
    check_lms(template, made)
    records = example_records(trainset, inputs, "trainset")
    if not records:
        raise ConfigurationError(f"{where}: the trainset is empty")
    held_out = example_records(valset, inputs, "valset") if valset is not None else None
    compiling = dict(compile_options or {})
    if made is None and compiling:
        raise ConfigurationError(f"{where}: an evaluation takes no compile_options")
    if made is not None:  # only a check of what compile takes: no example is made for it
        compile_arguments(made, [], [] if held_out is not None else None, compiling)
    try:
        described: dict[str, Any] = {
            "program": program_ref,
            "program_name": _name(program_ref, template),
            "optimizer": label,
            "optimizer_given": not name_given,
            "optimizer_options": dict(optimizer_options or {}),
            "compile_options": compiling,
            "metric": metric_ref,
            "valset": held_out,
            "threads": threads,
            "lm": target_of(chosen_lm),
            "base_dir": folder,
        }
        job = DSPyJob(**described, **budgets)
        spec = JobSpec(
            job_id=job_id,
            kind="dspy",
            dspy=job,
            program={"name": job.program_name},
            space={},
            trainset=records,
            options=JobOptions(strategy=label, seed=seed, concurrency=threads or 1, **options),
        )
    except pydantic.ValidationError as exc:
        raise ConfigurationError(f"{where}: {validation_problems(exc)}") from None
    return spec, DSPyParts(template, made, metric_fn, chosen_lm)


def dspy_parts(
    rt: HasProviders,
    spec: JobSpec,
    *,
    program: Any = None,
    optimizer: Any = None,
    metric: Any = None,
    previous: DSPyParts | None = None,
) -> DSPyParts:
    """The parts of stored job ``spec``, to resume it: each from what is given here, else
    its reference, else ``previous`` (this process's). JobError naming what must be given
    again (an object given to ``start_dspy`` that another process cannot import)."""
    job = spec.dspy
    if job is None:
        raise JobError(f"job {spec.job_id!r} is not a DSPy job")
    where, folder = f"job {spec.job_id!r}", job.base_dir
    if program is None and job.program is not None:
        program = load_reference(job.program, what=f"{where}: program", base_dir=folder)
    if program is not None:
        program = fresh(program_of(program, f"{where}: program"))
    if metric is None and job.metric is not None:
        metric = job.metric
    metric_fn = _metric(metric, where, folder) if metric is not None else None
    chosen_lm = previous.lm if previous is not None else lm_of(rt, job.lm)
    made = fresh(optimizer) if optimizer is not None else None
    if made is None and not job.optimizer_given and metric_fn is not None:
        made = make_optimizer(
            job.optimizer,
            job.optimizer_options,
            metric=metric_fn,
            seed=spec.options.seed,
            threads=job.threads,
            job_lm=chosen_lm,
        )
    if previous is not None:
        program = program if program is not None else previous.program
        metric_fn = metric_fn if metric_fn is not None else previous.metric
        made = made if made is not None or job.optimizer == EVALUATE else previous.optimizer
    missing = [
        name for name, value in (("program", program), ("metric", metric_fn)) if value is None
    ]
    if made is None and job.optimizer != EVALUATE:
        missing.append("optimizer")
    if missing:
        given = ", ".join(f"{name}=" for name in missing)
        raise JobError(
            f"{where} was started with objects another process cannot import "
            f"({', '.join(missing)}); pass {given} to resume it (or start jobs with "
            "'module:attr' references)"
        )
    check_lms(program, made)
    return DSPyParts(program, made, metric_fn, chosen_lm)  # type: ignore[arg-type]


def program_template(spec: JobSpec) -> Any:
    """The program of stored job ``spec``, imported from its reference (JobError if it was
    given as an object: another process cannot make it)."""
    job = spec.dspy
    if job is None or job.program is None:
        raise JobError(
            f"job {spec.job_id!r} was started with a program object: load its saved program "
            f"into that object (otpy jobs export {spec.job_id} FILE; program.load(FILE))"
        )
    found = load_reference(job.program, what=f"job {spec.job_id!r}: program", base_dir=job.base_dir)
    return program_of(found, f"job {spec.job_id!r}: program")


def _metric(metric: Any, where: str, folder: str | None) -> Callable[..., Any]:
    found = (
        load_reference(metric, what=f"{where}: metric", base_dir=folder)
        if isinstance(metric, str)
        else metric
    )
    if not callable(found):
        raise ConfigurationError(
            f"{where}: metric must be a callable (example, prediction, trace=None) or a "
            f"'module:attr' naming one, got {type(found).__name__}"
        )
    return found  # type: ignore[no-any-return]


def _name(reference: str | None, program: Any) -> str:
    if reference is not None:
        return reference.rpartition(":")[2]
    return type(program).__name__
