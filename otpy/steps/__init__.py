"""Steps: the behaviour every pipeline step type implements, and its results."""

from otpy.steps._base import COMMON_FIELDS, Step, StepContext, StepMetadata, StepResult

__all__ = ["COMMON_FIELDS", "Step", "StepContext", "StepMetadata", "StepResult"]
