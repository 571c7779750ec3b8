"""The built-in LLM step types (pipeline_ex's names), each a real step on the provider gateway.

``BUILTIN_STEPS`` maps each type name to its class; the CompatibilityManager registers
them at start (:func:`builtin_step_types` binds ``claude_session`` to a given store)::

    claude, gemini, claude_smart, claude_session, claude_extract, claude_batch,
    claude_robust, parallel_claude, gemini_instructor, set_variable
"""

from __future__ import annotations

from otpy.state import StateProvider
from otpy.steps._base import Step
from otpy.steps.llm._agentic import (
    CLAUDE_OPTIONS,
    IGNORED_CLAUDE_OPTIONS,
    requested_tools,
    tool_requests,
)
from otpy.steps.llm._extract import (
    EXTRACT_KINDS,
    LANGUAGE_ALIASES,
    ClaudeExtractStep,
    CodeBlock,
    extract_code_blocks,
    extract_fields,
    extract_json,
)
from otpy.steps.llm._fanout import ClaudeBatchStep, FanOutResult, Outcome, fan_out
from otpy.steps.llm._instructor import GeminiInstructorStep, schema_problems
from otpy.steps.llm._parallel import MERGES, ParallelClaudeStep, merge_texts
from otpy.steps.llm._prompting import (
    PRESETS,
    ClaudeSmartStep,
    ClaudeStep,
    GeminiStep,
    Preset,
    PromptStep,
)
from otpy.steps.llm._robust import ACTIONS as ROBUST_ACTIONS
from otpy.steps.llm._robust import ClaudeRobustStep
from otpy.steps.llm._session import ClaudeSessionStep, default_session_store, session_variable
from otpy.steps.llm._variables import SetVariableStep

__all__ = [
    "CLAUDE_OPTIONS",
    "IGNORED_CLAUDE_OPTIONS",
    "EXTRACT_KINDS",
    "LANGUAGE_ALIASES",
    "BUILTIN_STEPS",
    "MERGES",
    "PRESETS",
    "ROBUST_ACTIONS",
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
    "builtin_step_types",
    "merge_texts",
    "requested_tools",
    "tool_requests",
    "schema_problems",
    "session_variable",
]

BUILTIN_STEPS: dict[str, type[Step]] = {
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
"""Every built-in step type by name (``claude_session`` on the process-wide store)."""


def builtin_step_types(session_store: StateProvider | None = None) -> dict[str, type[Step]]:
    """A copy of :data:`BUILTIN_STEPS`, with ``claude_session`` keeping its sessions in
    ``session_store`` when one is given."""
    types = dict(BUILTIN_STEPS)
    if session_store is not None:
        types["claude_session"] = ClaudeSessionStep.using(session_store)
    return types
