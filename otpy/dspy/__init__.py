"""otpy for DSPy (the ``otpy[dspy]`` extra, DSPy 3.4): DSPy programs on otpy's providers.

::

    import dspy, otpy, otpy.dspy

    rt = otpy.start()
    dspy.configure(lm=otpy.dspy.lm(rt))                 # or lm(rt, "anthropic", model=...)
    qa = dspy.ChainOfThought("question -> answer")
    qa(question="2+2?")    # through rt's limiter, breaker, retries, failover, telemetry

    with otpy.dspy.call_scope(gate=CallGate(CallBudget(max_cost=1.0)), journal=journal):
        optimizer.compile(qa, trainset=examples)        # held, stopped, journaled, replayed

    module = otpy.dspy.PipelineModule("pipeline.yaml", runtime=rt)   # a YAML pipeline's
    tuned = dspy.BootstrapFewShot(metric=m).compile(module, trainset=examples)
    otpy.dspy.save_pipeline(tuned, "tuned.yaml")        # ... that `otpy run` runs

    job = rt.jobs.start_dspy(qa, "MIPROv2", trainset, metric=m, max_cost=2.0)  # a job:
    job.pause(); job.resume(); job.status().lm_calls; job.wait(); job.program()

On the ``simulated`` provider every DSPy adapter prompt (ChatAdapter, JSONAdapter,
XMLAdapter) is answered in its format with every output field filled, so all of this
runs offline. ``import otpy`` never imports DSPy; importing this module without it raises
ImportError naming the extra.
"""

from __future__ import annotations

try:
    import dspy as _dspy  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - the extra is part of dev
    raise ImportError(
        "otpy.dspy needs DSPy 3.4: install the extra, pip install 'otpy[dspy]'"
    ) from exc

from packaging.version import Version

if Version(_dspy.__version__) < Version("3.4"):  # pragma: no cover
    raise ImportError(
        f"otpy.dspy needs DSPy >= 3.4 (engines), found {_dspy.__version__}: "
        "pip install 'otpy[dspy]'"
    )

from otpy.dspy._engine import SCOPE_KEY, AsyncOtpyEngine, CallScope, OtpyEngine, current_scope
from otpy.dspy._job_parts import (
    EVALUATE,
    DSPyParts,
    load_reference,
    optimizer_class,
    program_from_json,
    program_json,
)
from otpy.dspy._job_progress import CompileProgress
from otpy.dspy._job_run import CompileOutcome, CompileRun
from otpy.dspy._job_spec import dspy_job, dspy_parts, job_lm, program_template
from otpy.dspy._lm import HasProviders, bind, call_scope, lm
from otpy.dspy._pipeline_module import PipelineModule, PipelineRuntime
from otpy.dspy._pipeline_steps import PREDICT_TYPE, InputField, TunedStep
from otpy.dspy._save import save_pipeline

__all__ = [
    "EVALUATE",
    "PREDICT_TYPE",
    "SCOPE_KEY",
    "AsyncOtpyEngine",
    "CallScope",
    "CompileOutcome",
    "CompileProgress",
    "CompileRun",
    "DSPyParts",
    "HasProviders",
    "InputField",
    "OtpyEngine",
    "PipelineModule",
    "PipelineRuntime",
    "TunedStep",
    "bind",
    "call_scope",
    "current_scope",
    "dspy_job",
    "dspy_parts",
    "job_lm",
    "lm",
    "load_reference",
    "optimizer_class",
    "program_from_json",
    "program_json",
    "program_template",
    "save_pipeline",
]
