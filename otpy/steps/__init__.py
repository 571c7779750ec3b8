"""Steps: the behaviour every pipeline step type implements, and its results."""

from otpy.steps._base import (
    COMMON_FIELDS,
    Step,
    StepContext,
    StepMetadata,
    StepResult,
    check_choice,
)
from otpy.steps._host import BodyRun, StepHost
from otpy.steps._plugins import STEP_PLUGIN_GROUP, load_step_plugins
from otpy.steps._table import StepEntry, StepTable, StepValidator, make_entry, validate_step

__all__ = [
    "COMMON_FIELDS",
    "BodyRun",
    "STEP_PLUGIN_GROUP",
    "Step",
    "StepContext",
    "StepEntry",
    "StepHost",
    "StepMetadata",
    "StepResult",
    "StepTable",
    "check_choice",
    "StepValidator",
    "load_step_plugins",
    "make_entry",
    "validate_step",
]
