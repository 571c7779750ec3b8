"""Pipelines: the YAML schema, safe loading with precise errors, and look-up-only templates.

::

    pipeline = load_pipeline("examples/qa.yaml")        # or YAML text, or a dict
    inputs = pipeline.resolve_inputs({"question": "2+2?"})
    config = pipeline.step_config("answer")             # defaults applied
    render("Q: {{ inputs.question }}", {"inputs": inputs})
"""

from otpy.pipelines._check import check_references
from otpy.pipelines._load import PipelineSource, load_pipeline
from otpy.pipelines._schema import (
    NAME_PATTERN,
    Defaults,
    Fallback,
    InputSpec,
    InputType,
    OnError,
    Pipeline,
    PipelineStep,
)
from otpy.pipelines._templates import (
    RESULT_FIELDS,
    ROOTS,
    references,
    render,
    render_value,
    step_record,
)

__all__ = [
    "NAME_PATTERN",
    "RESULT_FIELDS",
    "ROOTS",
    "Defaults",
    "Fallback",
    "InputSpec",
    "InputType",
    "OnError",
    "Pipeline",
    "PipelineSource",
    "PipelineStep",
    "check_references",
    "load_pipeline",
    "references",
    "render",
    "render_value",
    "step_record",
]
