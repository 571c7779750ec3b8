"""``migrate_pipeline``: legacy (pipeline_ex-style) pipeline configs to the current schema.

What it rewrites (every rewrite is a :class:`Change` in the result):

- a top-level ``workflow: {name, steps, ...}`` wrapper is flattened to ``{name, steps, ...}``;
- pipeline_ex's environment keys (``checkpoint_enabled``, ``checkpoint_dir``,
  ``workspace_dir``, ``output_dir``, ``environment``) and ``defaults`` entries otpy has no
  use for (``gemini_model``, ``claude_output_format``, ...) are removed with a warning;
- per step: ``claude_options`` flattened (``system_prompt`` -> ``system``,
  ``append_system_prompt`` appended to it, ``model``, ``session_id``, ...); its agent
  settings (``allowed_tools``, ``disallowed_tools``, ``max_turns``, ``cwd``,
  ``max_total_tokens``) stay in ``claude_options`` for the step types that run tools
  (a ``cwd`` under ``./workspace`` made relative to the run's workspace), and are
  removed with a warning for the others;
  ``token_budget: {max_output_tokens, temperature}`` -> ``max_tokens``, ``temperature``;
  ``condition`` -> ``when``; a ``prompt`` given as a list of parts -> one template string
  (see :mod:`otpy.compat._prompts`; ``file`` parts are never read: error-level change);
  ``output_to_file`` removed; per type: ``session_config`` (claude_session),
  ``extraction_config`` (claude_extract), ``tasks``/``batch_config`` (claude_batch),
  ``parallel_tasks`` (parallel_claude), ``retry_config`` (claude_robust);
- left as they are, with a note: ``tools`` of ``gemini`` steps (``functions`` is theirs), fields a
  legacy step type does not know, pipeline_ex step types otpy lacks.

Pure and idempotent: the input is never changed, and migrating the result again gives the
same config with no changes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from otpy.compat._report import MigrationResult, Recorder
from otpy.compat._rules import migrate_step

__all__ = ["migrate_pipeline"]


def _flatten(config: dict[str, Any], record: Recorder) -> dict[str, Any]:
    if "workflow" not in config:
        return config
    workflow = config.pop("workflow")
    if not isinstance(workflow, Mapping):
        raise record.invalid(None, "workflow", f"must be a mapping, got {workflow!r}")
    for key in workflow:
        if key in config:
            raise record.invalid(
                None, str(key), "given both at the top level and inside workflow; keep one"
            )
    flat = {**config, **workflow}
    record.change(
        None,
        "workflow",
        sorted(map(str, workflow)),
        None,
        "flattened the workflow wrapper: its fields are now top-level",
    )
    return flat


ENVIRONMENT_KEYS: Final = {
    "checkpoint_enabled": "jobs checkpoint to their state store after every evaluation",
    "checkpoint_dir": "jobs checkpoint to their state store after every evaluation",
    "workspace_dir": "steps get no workspace directory (nothing reads or writes files)",
    "output_dir": "results are returned (PipelineResult), not written to files",
    "environment": "no per-pipeline environment; configure the runtime instead",
}
"""pipeline_ex workflow keys about where it ran, removed: why otpy needs none of them."""

LEGACY_DEFAULTS: Final = frozenset(
    {
        "gemini_model",
        "gemini_token_budget",
        "claude_model",
        "claude_output_format",
        "claude_preset",
        "output_dir",
        "workspace_dir",
        "checkpoint_dir",
    }
)
"""pipeline_ex ``defaults`` entries (removed with a warning; anything else unknown is left
for the schema to refuse)."""


def _drop_environment(config: dict[str, Any], record: Recorder) -> None:
    """Remove pipeline_ex's execution-environment keys and legacy ``defaults`` entries
    (``gemini_model``, ``claude_output_format``, ...), each with a warning."""
    for key, why in ENVIRONMENT_KEYS.items():
        if key in config:
            value = config.pop(key)
            record.change(None, key, value, None, f"removed: {why}", level="warning")
    defaults = config.get("defaults")
    if not isinstance(defaults, dict):
        return
    for key in sorted(LEGACY_DEFAULTS.intersection(defaults)):
        value = defaults.pop(key)
        where = "provider" if str(key).endswith("_model") else "runtime"
        record.change(
            None,
            f"defaults.{key}",
            value,
            None,
            f"removed: pipeline defaults are provider, model, options and failover (set a "
            f"{where} model in the step or the runtime config instead)",
            level="warning",
        )


def migrate_pipeline(config: Mapping[str, Any]) -> MigrationResult:
    """Rewrite a legacy pipeline config to the current schema; see the module docstring.

    Runs in the caller's thread, touches no file and no actor. Raises StepValidationError
    (naming the step by name or ``steps[<index>]``, and the field) when the input is not a
    pipeline: not a mapping, ``steps`` missing or not a list, a step not a mapping, a
    legacy block of the wrong shape, a malformed prompt part.
    """
    record = Recorder()
    if not isinstance(config, Mapping):
        raise record.invalid(None, None, f"a pipeline config must be a mapping, got {config!r}")
    migrated = _flatten(copy.deepcopy(dict(config)), record)
    _drop_environment(migrated, record)
    steps = migrated.get("steps")
    if not isinstance(steps, list):
        raise record.invalid(None, "steps", f"must be a list of step mappings, got {steps!r}")
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            raise record.invalid(f"steps[{index}]", None, f"a step must be a mapping, got {step!r}")
        name = step.get("name")
        label = name if isinstance(name, str) and name else f"steps[{index}]"
        migrate_step(step, label, record)
    return MigrationResult(migrated, record.changes, record.notes)
