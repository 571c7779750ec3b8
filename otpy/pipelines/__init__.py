"""Pipelines: the YAML schema, safe loading with precise errors, and look-up-only templates.

::

    pipeline = load_pipeline("examples/qa.yaml")        # or YAML text, or a dict
    inputs = pipeline.resolve_inputs({"question": "2+2?"})
    config = pipeline.step_config("answer")             # defaults applied
    render("Q: {{ inputs.question }}", {"inputs": inputs})
    plan = compile_pipeline("examples/qa.yaml", rt.steps.table)   # every step checked
    result = run_plan(plan, {"question": "2+2?"}, providers=rt.providers)

``Runtime.run_pipeline`` does the last two in a supervised worker.
"""

from otpy.pipelines._check import check_references
from otpy.pipelines._executor import MAX_DEPTH, run_plan
from otpy.pipelines._gateway import FAILOVER_ERRORS, ProviderDirectory, StepGateway
from otpy.pipelines._inputs import InputSpec, InputType
from otpy.pipelines._load import PipelineSource, load_pipeline
from otpy.pipelines._plan import Plan, PlannedStep, check_providers, compile_pipeline
from otpy.pipelines._progress import RunProgress, StepEvent
from otpy.pipelines._result import PipelineResult, RunStatus, StepError, StepOutcome, StepStatus
from otpy.pipelines._schema import Defaults, Pipeline
from otpy.pipelines._step_schema import NAME_PATTERN, Fallback, OnError, PipelineStep
from otpy.pipelines._templates import (
    RESULT_FIELDS,
    ROOTS,
    Ref,
    parse,
    references,
    render,
    render_value,
    step_record,
)
from otpy.pipelines._tools import StepTools, check_tools
from otpy.steps.flow import PipelineStepType

__all__ = [
    "FAILOVER_ERRORS",
    "MAX_DEPTH",
    "NAME_PATTERN",
    "RESULT_FIELDS",
    "ROOTS",
    "Defaults",
    "Fallback",
    "InputSpec",
    "InputType",
    "OnError",
    "Pipeline",
    "PipelineResult",
    "PipelineSource",
    "PipelineStep",
    "PipelineStepType",
    "Plan",
    "PlannedStep",
    "Ref",
    "ProviderDirectory",
    "RunProgress",
    "RunStatus",
    "StepError",
    "StepEvent",
    "StepGateway",
    "StepOutcome",
    "StepStatus",
    "StepTools",
    "check_providers",
    "check_references",
    "check_tools",
    "compile_pipeline",
    "load_pipeline",
    "parse",
    "references",
    "render",
    "render_value",
    "run_plan",
    "step_record",
]
