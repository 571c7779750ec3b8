"""The legacy step types (pipeline_ex's), each a real step on the provider gateway.

``LEGACY_STEPS`` maps each type name to its class; the CompatibilityManager registers
them at start (:func:`legacy_step_types` binds ``claude_session`` to a given store)::

    claude, gemini, claude_smart, claude_session, claude_extract, claude_batch,
    claude_robust, parallel_claude, gemini_instructor, set_variable
"""

from __future__ import annotations

from otpy.state import StateProvider
from otpy.steps._base import Step
from otpy.steps.legacy._extract import (
    EXTRACT_KINDS,
    LANGUAGE_ALIASES,
    ClaudeExtractStep,
    CodeBlock,
    extract_code_blocks,
    extract_fields,
    extract_json,
)
from otpy.steps.legacy._fanout import (
    MERGES,
    ClaudeBatchStep,
    FanOutResult,
    Outcome,
    ParallelClaudeStep,
    fan_out,
    merge_texts,
)
from otpy.steps.legacy._instructor import GeminiInstructorStep, schema_problems
from otpy.steps.legacy._prompting import (
    PRESETS,
    ClaudeSmartStep,
    ClaudeStep,
    GeminiStep,
    Preset,
    PromptStep,
)
from otpy.steps.legacy._robust import ClaudeRobustStep
from otpy.steps.legacy._session import ClaudeSessionStep, default_session_store, session_variable
from otpy.steps.legacy._variables import SetVariableStep

__all__ = [
    "EXTRACT_KINDS",
    "LANGUAGE_ALIASES",
    "LEGACY_STEPS",
    "MERGES",
    "PRESETS",
    "ClaudeBatchStep",
    "ClaudeExtractStep",
    "ClaudeRobustStep",
    "ClaudeSessionStep",
    "ClaudeSmartStep",
    "ClaudeStep",
    "CodeBlock",
    "FanOutResult",
    "GeminiInstructorStep",
    "GeminiStep",
    "Outcome",
    "ParallelClaudeStep",
    "Preset",
    "PromptStep",
    "SetVariableStep",
    "default_session_store",
    "extract_code_blocks",
    "extract_fields",
    "extract_json",
    "fan_out",
    "legacy_step_types",
    "merge_texts",
    "schema_problems",
    "session_variable",
]

LEGACY_STEPS: dict[str, type[Step]] = {
    "claude": ClaudeStep,
    "gemini": GeminiStep,
    "claude_smart": ClaudeSmartStep,
    "claude_session": ClaudeSessionStep,
    "claude_extract": ClaudeExtractStep,
    "claude_batch": ClaudeBatchStep,
    "claude_robust": ClaudeRobustStep,
    "parallel_claude": ParallelClaudeStep,
    "gemini_instructor": GeminiInstructorStep,
    "set_variable": SetVariableStep,
}
"""Every legacy step type by name (``claude_session`` on the process-wide store)."""


def legacy_step_types(session_store: StateProvider | None = None) -> dict[str, type[Step]]:
    """A copy of :data:`LEGACY_STEPS`, with ``claude_session`` keeping its sessions in
    ``session_store`` when one is given."""
    types = dict(LEGACY_STEPS)
    if session_store is not None:
        types["claude_session"] = ClaudeSessionStep.using(session_store)
    return types
