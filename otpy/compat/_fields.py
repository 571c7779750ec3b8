"""What otpy does with each field of pipeline_ex's format that it does not honour (one table).

Every entry maps a field to why it has no effect in otpy and what happens instead; the
migration names each one found in a document (``otpy validate`` lists them, a run warns
once). A field in none of these tables and unknown to the step type is reported as
unknown (and ignored) in a pipeline_ex document, refused in an otpy one.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CLAUDE_CODE_TOOLS",
    "CLAUDE_OPTIONS",
    "DEFAULTS",
    "DEFAULTS_MOVED",
    "ENVIRONMENT",
    "PART_OPTIONS",
    "STEP_FIELDS",
    "TYPE_FIELDS",
    "WORKFLOW",
    "WORKFLOW_HONOURED",
]

WORKFLOW_HONOURED: Final = frozenset({
    "name", "description", "version", "steps", "defaults", "workspace_dir", "output_dir",
    "checkpoint_enabled", "checkpoint_dir", "environment", "metadata", "global_vars",
    "variables", "inputs", "gemini_functions", "requires", "outputs",
})  # fmt: skip
"""Workflow fields with a meaning in otpy (schema fields of ``Pipeline``)."""

_AGENT: Final = "a Claude Agent SDK feature otpy's agent loop does not have"
_OPS: Final = "configure it in the runtime (otpy.toml / OTPY_* settings), not per pipeline"
_TELEMETRY: Final = "otpy's telemetry and logs cover every run; configure them in the runtime"
WORKFLOW: Final = {
    "claude_auth": "providers and their keys are configured in the runtime, not per pipeline",
    "gemini_auth": "providers and their keys are configured in the runtime, not per pipeline",
    "providers": "providers are configured in the runtime; steps name one with provider:",
    "models": "set model: on a step or defaults.model",
    "resource_limits": "nothing enforces it; a run is bounded by its steps, loops' "
    "max_iterations and the --timeout of otpy run",
    "safety": "file steps are always confined to the workspace; nothing else of it applies",
    "performance": _OPS,
    "token_management": "provider rate limits and budgets are configured in the runtime",
    "telemetry": _TELEMETRY,
    "monitoring": _TELEMETRY,
    "cache_config": "otpy caches no responses",
    "directories": "use workspace_dir, output_dir and checkpoint_dir",
    "workspace_config": "the workspace is created when a step needs it and never cleaned up",
    "output_config": "output_to_file writes each file where it says",
    "checkpoint_config": "one checkpoint per pipeline, replaced after every step",
    "extends": "documents are not merged; copy the shared fields",
    "include": "documents are not merged; copy the shared fields",
    "hooks": _AGENT,
    "mcp_servers": _AGENT,
    "enable_skills": _AGENT,
    "agents": _AGENT,
    "setting_sources": _AGENT,
    "enable_context_management": _AGENT,
    "memory_config": _AGENT,
    "author": "informational; put it under metadata",
    "tags": "informational; put it under metadata",
    "max_execution_time": "use otpy run --timeout",
    "retry_on_failure": "the provider guard retries failed calls; claude_robust adds retries",
    "retry_attempts": "the provider guard retries failed calls; claude_robust adds retries",
}
"""Workflow fields of features otpy does not have, and what it does instead."""

ENVIRONMENT: Final = {
    "debug_level": _TELEMETRY,
    "cost_alerts": "every result carries its token usage; nothing alerts on cost",
    "cost_tracking": "every result carries its token usage",
    "cost_limits": "nothing enforces a cost limit in a pipeline run",
    "debug_config": _TELEMETRY,
    "development": "only environment.mode is read (claude_smart's environment_aware)",
    "production": "only environment.mode is read (claude_smart's environment_aware)",
    "test": "only environment.mode is read (claude_smart's environment_aware)",
}
"""``environment`` keys other than ``mode`` (which claude_smart reads)."""

DEFAULTS_MOVED: Final = {
    "claude_model": "model",
    "claude_fallback_model": "fallback_model",
    "claude_output_format": "output_format",
}
"""pipeline_ex defaults that are claude_options defaults (moved under claude_options)."""

DEFAULTS: Final = {
    "timeout_seconds": "the provider guard applies its timeouts; use otpy run --timeout",
    "retry_on_error": "the provider guard retries failed calls",
    "cache_results": "otpy caches no responses",
    "cache_ttl": "otpy caches no responses",
}
"""``defaults`` entries otpy does not honour."""

CLAUDE_CODE_TOOLS: Final = frozenset({
    "Task", "ExitPlanMode", "NotebookRead", "NotebookEdit", "WebFetch", "WebSearch",
    "TodoRead", "TodoWrite", "BashOutput", "KillBash", "KillShell", "SlashCommand", "Skill",
})  # fmt: skip
"""Claude Code's tools that otpy's agent does not have (its own: ``otpy.agent.BUILTIN_TOOLS``)."""
CLAUDE_OPTIONS: Final = {
    "permission_mode": "tools run without asking, confined to the workspace; Bash only "
    "when the runtime config enables it",
    "output_format": "answers are text; claude_extract and gemini_instructor give structure",
    "verbose": _TELEMETRY,
    "debug_mode": _TELEMETRY,
    "telemetry_enabled": _TELEMETRY,
    "cost_tracking": "every step result carries its token usage",
    "timeout_ms": "the provider guard applies its timeouts",
    "timeout_seconds": "the provider guard applies its timeouts",
    "retry_config": "the provider guard retries; claude_robust has its own retry_config",
    "fallback_model": "the provider's failover picks another provider; claude_robust "
    "has fallback_provider",
    "session_id": "claude_session steps keep sessions (session_config.session_name)",
    "resume_session": "claude_session steps resume their session by themselves",
    "async_streaming": "answers arrive whole; nothing streams",
    "stream_handler": "answers arrive whole; nothing streams",
    "stream_buffer_size": "answers arrive whole; nothing streams",
    "stream_handler_opts": "answers arrive whole; nothing streams",
    "pass_through_streaming": "answers arrive whole; nothing streams",
    "print": "answers arrive whole; nothing streams",
}
"""``claude_options`` keys that change nothing (``system_prompt``, ``append_system_prompt``,
``model``, ``temperature``, ``max_tokens`` and the agent settings ``allowed_tools``,
``disallowed_tools``, ``max_turns``, ``max_total_tokens``, ``cwd`` are honoured)."""

STEP_FIELDS: Final = {
    "role": "informational (brain/muscle): every step type calls its provider the same way",
    "timeout_ms": "the provider guard applies its timeouts",
    "timeout_seconds": "the provider guard applies its timeouts",
    "streaming": "results arrive whole; nothing streams",
    "cache": "otpy caches no responses",
    "error_output": "a failed step's error is in the result (steps.<name> has no output)",
    "error_handler": "use on_error: fallback with a fallback step",
    "retry_on": "the provider guard retries failed calls",
    "max_retries": "the provider guard retries failed calls",
}
"""Fields any pipeline_ex step may carry that otpy does not honour."""

TYPE_FIELDS: Final = {
    "claude_smart": {
        "options": "not a claude_smart field (pipeline_ex ignores it too); use claude_options"
    },
    "claude_session": {
        "session_config.persist": "sessions live in the runtime's session store while it runs",
        "session_config.continue_on_restart": "sessions live in the runtime's session store",
        "session_config.checkpoint_frequency": "the session store saves every turn",
        "session_config.description": "informational",
        "session_config.continue_session": "a session with the same name always continues",
    },
    "claude_extract": {
        "extraction_config.use_content_extractor": "pipeline_ex's live mode leaves the text as "
        "it is too; format and post_processing apply",
    },
    "claude_batch": {
        "batch_config.timeout_per_task": "the provider guard applies its timeouts",
    },
    "gemini": {
        "token_budget.top_p": "otpy requests carry no top_p",
        "token_budget.top_k": "otpy requests carry no top_k",
    },
    "gemini_instructor": {
        "functions": "gemini_instructor answers with its schema; declare the function's "
        "parameters as the schema",
        "validation_mode": "answers are always validated strictly against the schema",
    },
    "for_loop": {
        "batch_size": "items run one after the other (or max_parallel at once); no batching",
        "ordered_results": "iterations are always listed in item order",
        "continue_condition": "has no effect: it is checked after the iteration's steps ran",
    },
    "data_transform": {
        "lazy": "data is transformed in memory",
        "stream_mode": "data is transformed in memory",
        "chunk_size": "data is transformed in memory",
    },
    "file_ops": {"options": "file operations take no options"},
    "pipeline": {
        "config.inherit_providers": "providers are the runtime's, for every pipeline",
        "config.inherit_functions": "a nested pipeline declares its own gemini_functions",
        "config.checkpoint_enabled": "only the top pipeline checkpoints",
        "config.timeout_seconds": "use otpy run --timeout for the whole run",
        "config.max_retries": "the provider guard retries failed calls",
        "config.continue_on_error": "use on_error: continue on the pipeline step",
        "config.memory_limit_mb": "nothing enforces a memory limit",
        "config.max_total_steps": "nothing counts steps across pipelines; max_depth bounds nesting",
        "config.enable_tracing": "every run is traced (one correlation id)",
        "config.cleanup_on_success": "the workspace is never cleaned up",
        "config.cleanup_on_error": "the workspace is never cleaned up",
        "config.workspace_enabled": "every pipeline has a workspace",
    },
}
"""Per step type: fields (dotted inside a mapping) that have no effect in otpy."""

PART_OPTIONS: Final = {
    "extract_with": "the value is inserted as it is (no content extractor)",
    "summary": "the value is inserted whole (no summarising)",
    "post_processing": "the value is inserted as it is",
    "format": "the value is inserted as it is",
    "inject_as": "parts are joined in order; name the value where it belongs with a template",
    "include_metadata": "the value is inserted as it is",
    "component": "a file part reads the whole file",
    "transform": "the value is inserted as it is",
}
"""Prompt part options that have no effect (``max_length`` cuts, ``variables`` fill
``{NAME}`` in a file, ``condition`` includes the part or not: those are honoured)."""
