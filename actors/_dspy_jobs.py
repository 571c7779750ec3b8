"""The DSPy side of ``rt.jobs`` (``JobsHandle.start_dspy``, resuming, the program): what it
needs of ``otpy.dspy`` is imported on first use, so ``otpy.actors`` never needs DSPy."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from otpy.actors._job_handle import JobHandle
from otpy.actors._job_record import Gift, JobEnv, JobRecord
from otpy.clock import Clock
from otpy.errors import JobError
from otpy.optimize import BEST_RESULT, PROGRAM_RESULT, Checkpoint, JobSpec
from otpy.pipelines import ProviderDirectory

__all__ = [
    "DSPyJobs",
    "Providers",
    "job_program",
    "quiet_runs",
    "resumed_parts",
    "saved_program",
]

logger = logging.getLogger("otpy.jobs")


@dataclass(frozen=True)
class Providers:
    """What ``otpy.dspy.lm`` needs of a runtime: its providers and clock."""

    providers: ProviderDirectory
    clock: Clock


def providers_of(env: JobEnv) -> Providers:
    if env.providers is None:
        raise JobError("this runtime has no providers: a DSPy job needs them")
    return Providers(env.providers, env.clock)


def resumed_parts(
    env: JobEnv, spec: JobSpec, previous: JobRecord | None, given: dict[str, Any]
) -> Any:
    """The live parts of stored DSPy job ``spec`` (see ``otpy.dspy.dspy_parts``)."""
    from otpy.dspy import dspy_parts

    earlier = previous.work if previous is not None else None
    return dspy_parts(providers_of(env), spec, previous=earlier, **given)


def saved_program(env: JobEnv, job_id: str) -> str:
    """DSPy's saved JSON of job ``job_id``'s program (as ``program.save("x.json")``
    writes it). JobError if the job is not a DSPy job or has no program yet."""
    return _program_text(env.store.load(job_id), job_id)


def _program_text(checkpoint: Checkpoint, job_id: str) -> str:
    if checkpoint.spec.kind != "dspy":
        raise JobError(
            f"job {job_id!r} tunes a pipeline: it has no DSPy program (its best "
            "configuration is in its status)"
        )
    text = checkpoint.results.get(PROGRAM_RESULT)
    if text is None:
        best = " (the best so far is kept)" if BEST_RESULT in checkpoint.results else ""
        why = f"{checkpoint.state}{best}"
        if checkpoint.error:
            why += f": {checkpoint.error}"
        raise JobError(f"job {job_id!r} has no program: it has not compiled one ({why})")
    return text


def job_program(env: JobEnv, job_id: str, record: JobRecord | None) -> Any:
    """Job ``job_id``'s program: the one compiled in this process, else loaded from its
    saved state into a copy of the job's program (imported from its reference if the job
    is not one of this runtime's)."""
    from otpy.dspy import program_from_json, program_template

    parts = record.work if record is not None else None
    if parts is not None and parts.compiled is not None:
        return parts.compiled
    checkpoint = env.store.load(job_id)
    text = _program_text(checkpoint, job_id)
    template = parts.program if parts is not None else program_template(checkpoint.spec)
    return program_from_json(template, text, providers_of(env))


def quiet_runs(records: Iterable[JobRecord], timeout: float) -> None:
    """Wait (at most ``timeout`` seconds in all) until no DSPy run of ``records`` has a
    call in flight: what they are answered is journaled before the journals close."""
    deadline = time.monotonic() + timeout
    for record in records:
        run = record.run
        if run is None:
            continue
        run.stop()
        if not run.gate.wait_quiet(max(0.0, deadline - time.monotonic())):
            logger.warning("job %s: an LLM call still in flight is not journaled", record.job_id)


class DSPyJobs:
    """The DSPy methods of ``rt.jobs`` (``JobsHandle`` has them)."""

    _env: JobEnv
    store: Any

    def _check_running(self, job_id: str) -> None:
        raise NotImplementedError

    def _open(self, gift: Gift, metric: Any, *, run: bool = False, work: Any = None) -> Any:
        raise NotImplementedError

    def start_dspy(
        self,
        program: Any,
        optimizer: Any,
        trainset: Sequence[Any],
        *,
        valset: Sequence[Any] | None = None,
        metric: Any,
        seed: int = 0,
        job_id: str | None = None,
        threads: int | None = None,
        max_calls: int | None = None,
        max_tokens: int | None = None,
        max_cost: float | None = None,
        max_seconds: float | None = None,
        optimizer_options: Mapping[str, Any] | None = None,
        compile_options: Mapping[str, Any] | None = None,
        inputs: Sequence[str] | None = None,
        lm: Any = None,
        prices: Mapping[str, tuple[float, float]] | None = None,
        max_restarts: int = 3,
        restart_window: float = 60.0,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> JobHandle:
        """Start a DSPy job: ``optimizer.compile(program, trainset=..., valset=...)`` (or an
        evaluation) under a supervised runner, and return its handle at once.

        ``program``: a ``dspy.Module`` or ``"module:attr"`` (a module, a class or a
        factory; a reference lets another process resume the job); ``optimizer``: a DSPy
        teleprompter, ``"evaluate"`` (``dspy.Evaluate`` of the program on ``valset`` or
        the trainset), or a teleprompter's name (``"MIPROv2"``, ``"mipro_v2"``) made with
        ``optimizer_options`` and, where it takes them, the job's ``metric``, ``seed``,
        ``threads`` and LM; ``compile_options``: more arguments of ``compile``;
        ``trainset``/``valset``: ``dspy.Example`` with their inputs, or mappings whose
        input fields ``inputs`` names; ``metric``: a callable or ``"module:attr"``;
        ``threads``: DSPy's ``num_threads``; ``lm``: an ``otpy.dspy.lm`` (default: DSPy's
        configured LM if it is one, else ``otpy.dspy.lm(rt)``) — every LM the program or
        optimizer holds must be one. Budgets (``max_calls`` never overshot; ``max_tokens``,
        ``max_cost`` by ``prices`` per provider, ``max_seconds`` of running time: by at
        most the calls in flight) are checked before each LLM call; a spent one ends the
        job with ``stop_reason`` naming it. Every answer is journaled beside the job store
        before the compile goes on: a resumed job re-runs from the start with the same
        seed and pays for no call twice. ``max_restarts``/``restart_window``: the
        runner's restart budget. ConfigurationError (checked before anything is stored),
        JobError if ``job_id`` is taken, ImportError without the ``otpy[dspy]`` extra."""
        from otpy.dspy import dspy_job

        job_id = job_id or uuid.uuid4().hex[:12]
        self._check_running(job_id)
        if self._env.default_executor != "threads":
            logger.warning(
                "job %s: a DSPy job runs its compile in this process, on DSPy's own threads; "
                "jobs.executor %r applies to pipeline jobs only",
                job_id,
                self._env.default_executor,
            )
        budgets = {
            "max_calls": max_calls,
            "max_tokens": max_tokens,
            "max_cost": max_cost,
            "max_seconds": max_seconds,
        }
        options = {
            "prices": dict(prices or {}),
            "max_restarts": max_restarts,
            "restart_window": restart_window,
        }
        spec, parts = dspy_job(
            providers_of(self._env), job_id, program, optimizer, trainset,
            valset=valset, metric=metric, seed=seed, threads=threads, budgets=budgets,
            optimizer_options=optimizer_options, compile_options=compile_options,
            inputs=inputs, given_lm=lm, options=options, base_dir=base_dir,
        )  # fmt: skip
        lease = self.store.create(spec)  # JobError if the id is taken
        return cast(JobHandle, self._open(Gift(lease, spec, fresh=True), None, work=parts))

    def saved_program(self, job_id: str) -> str:
        """DSPy job ``job_id``'s program as DSPy saves it (the JSON ``program.save`` writes;
        ``program.load`` reads it): compiled, or the best evaluated when a budget stopped
        it. JobError if it is not a DSPy job or has none yet."""
        return saved_program(self._env, job_id)
