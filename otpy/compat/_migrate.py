"""``migrate_pipeline``: a pipeline_ex workflow document (or an otpy pipeline) made ready for
otpy's schema, with a report of everything it changed and every field it ignores.

A pipeline_ex document has ``workflow:`` at its root. Its fields become the pipeline's:

- honoured as they are: name, description, version (a number becomes text), steps,
  defaults, workspace_dir, output_dir, checkpoint_enabled, checkpoint_dir, environment,
  metadata, global_vars, variables, inputs, gemini_functions;
- renamed: ``input:`` (name -> default value) becomes ``inputs`` with those defaults;
  a workflow-level ``continue_on_error`` becomes ``defaults.continue_on_error``;
  ``defaults.claude_model``/``claude_fallback_model``/``claude_output_format`` move into
  ``defaults.claude_options``;
- ignored with a note saying what otpy does instead: the features otpy lacks
  (:mod:`otpy.compat._fields`) and, in a pipeline_ex document, fields unknown to both
  formats (with the closest known field). A document is never refused for one of those.

Then every step goes through :func:`otpy.compat._rules.migrate_step`. An otpy pipeline
(no ``workflow:``) only gets the step rules. Pure and idempotent: the input is never
changed, and migrating the result again changes nothing.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from typing import Any

from otpy.compat._fields import DEFAULTS, DEFAULTS_MOVED, ENVIRONMENT, WORKFLOW, WORKFLOW_HONOURED
from otpy.compat._report import MigrationResult, Recorder
from otpy.compat._rules import migrate_step
from otpy.workspace import DEFAULT_WORKSPACE_DIR

__all__ = ["migrate_pipeline"]

_DEFAULTS_HONOURED = frozenset({
    "provider", "model", "options", "failover", "claude_options", "claude_preset",
    "gemini_model", "gemini_token_budget", "output_dir", "continue_on_error",
})  # fmt: skip


def _unwrap(config: dict[str, Any], record: Recorder) -> dict[str, Any]:
    workflow = config.pop("workflow")
    if not isinstance(workflow, Mapping):
        raise record.invalid(None, "workflow", f"must be a mapping, got {workflow!r}")
    for key, value in config.items():
        record.note(None, str(key), value, "ignored: outside the workflow mapping", "warning")
    return copy.deepcopy(dict(workflow))


def _document(flat: dict[str, Any], record: Recorder) -> None:
    version = flat.get("version")
    if isinstance(version, int | float) and not isinstance(version, bool):
        flat["version"] = str(version)
        record.change(None, "version", version, flat["version"], "a number became text")
    if "input" in flat and "inputs" not in flat and isinstance(flat["input"], Mapping):
        given = flat.pop("input")
        flat["inputs"] = {name: {"default": value} for name, value in given.items()}
        record.change(None, "input", given, flat["inputs"], "became inputs with these defaults")
    if isinstance(flat.get("continue_on_error"), bool):
        value = flat.pop("continue_on_error")
        defaults = flat.setdefault("defaults", {})
        if isinstance(defaults, dict):
            defaults.setdefault("continue_on_error", value)
            record.change(
                None, "continue_on_error", value, value, "became defaults.continue_on_error"
            )
    for key in list(flat):
        if key in WORKFLOW_HONOURED:
            continue
        value = flat.pop(key)
        why = WORKFLOW.get(str(key))
        if why is None:
            close = difflib.get_close_matches(str(key), sorted(WORKFLOW_HONOURED), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            why = f"not a field of pipeline_ex's workflow format{hint}"
        record.note(None, str(key), value, f"ignored: {why}", "warning")
    environment = flat.get("environment")
    if isinstance(environment, dict):
        for key in [k for k in environment if k != "mode"]:
            why = ENVIRONMENT.get(str(key), "only environment.mode is read")
            record.note(
                None, f"environment.{key}", environment.pop(key), f"ignored: {why}", "warning"
            )
    _defaults(flat.get("defaults"), record)


def _defaults(defaults: Any, record: Recorder) -> None:
    if not isinstance(defaults, dict):
        return
    for old, new in DEFAULTS_MOVED.items():
        if old in defaults:
            value = defaults.pop(old)
            options = defaults.setdefault("claude_options", {})
            if isinstance(options, dict):
                options.setdefault(new, value)
                record.change(
                    None, f"defaults.{old}", value, value, f"moved to defaults.claude_options.{new}"
                )
    for key in [k for k in defaults if k not in _DEFAULTS_HONOURED]:
        value = defaults.pop(key)
        why = DEFAULTS.get(str(key))
        if why is None:
            close = difflib.get_close_matches(str(key), sorted(_DEFAULTS_HONOURED), n=1)
            why = "not a defaults field" + (f"; did you mean {close[0]!r}?" if close else "")
        record.note(None, f"defaults.{key}", value, f"ignored: {why}", "warning")


def migrate_pipeline(config: Mapping[str, Any]) -> MigrationResult:
    """Make a pipeline_ex document or an otpy pipeline ready for otpy's schema; see the
    module docstring.

    Runs in the caller's thread, touches no file and no actor. Raises StepValidationError
    (naming the step by name or ``steps[<index>]``, and the field) when the input is not a
    pipeline: not a mapping, ``workflow`` not a mapping, ``steps`` missing or not a list, a
    step not a mapping.
    """
    record = Recorder()
    if not isinstance(config, Mapping):
        raise record.invalid(None, None, f"a pipeline config must be a mapping, got {config!r}")
    pipeline_ex = "workflow" in config
    migrated = copy.deepcopy(dict(config))
    if pipeline_ex:
        migrated = _unwrap(migrated, record)
        _document(migrated, record)
    workspace = None
    if pipeline_ex:
        written = migrated.get("workspace_dir")
        workspace = written if isinstance(written, str) and written else DEFAULT_WORKSPACE_DIR
    steps = migrated.get("steps")
    if not isinstance(steps, list):
        raise record.invalid(None, "steps", f"must be a list of step mappings, got {steps!r}")
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            raise record.invalid(f"steps[{index}]", None, f"a step must be a mapping, got {step!r}")
        name = step.get("name")
        label = name if isinstance(name, str) and name else f"steps[{index}]"
        migrate_step(step, label, record, pipeline_ex=pipeline_ex, workspace=workspace)
    return MigrationResult(migrated, record.changes, record.notes, pipeline_ex=pipeline_ex)
