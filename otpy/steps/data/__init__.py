"""Step types that work on data and files, with no provider call: ``data_transform``,
``file_ops``, ``codebase_query`` (both confined to the pipeline's workspace) and
``test_echo``; see each module's docstring."""

from __future__ import annotations

from otpy.steps._base import Step
from otpy.steps.data._codebase import QUERY_TYPES, CodebaseQueryStep, scan
from otpy.steps.data._echo import TestEchoStep
from otpy.steps.data._files import CONVERSIONS, FILE_OPERATIONS, FileOpsStep
from otpy.steps.data._transform import AGGREGATES, OPERATIONS, DataTransformStep, apply_operations

__all__ = [
    "AGGREGATES",
    "CONVERSIONS",
    "DATA_STEPS",
    "FILE_OPERATIONS",
    "OPERATIONS",
    "QUERY_TYPES",
    "CodebaseQueryStep",
    "DataTransformStep",
    "FileOpsStep",
    "TestEchoStep",
    "apply_operations",
    "scan",
]

DATA_STEPS: dict[str, type[Step]] = {
    "data_transform": DataTransformStep,
    "file_ops": FileOpsStep,
    "codebase_query": CodebaseQueryStep,
    "test_echo": TestEchoStep,
}
"""The data and file step types by name."""
