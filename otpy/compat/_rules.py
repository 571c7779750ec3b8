"""How each legacy step field maps to the current schema (one step at a time, in place).

The target schema of a legacy step type is its class's fields (``BUILTIN_STEPS``): a value
moved to a field the type does not have is dropped with a warning rather than left to
fail validation. Unknown step types (plugins) get only the generic rewrites.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from otpy.compat._prompts import prompt_template
from otpy.compat._report import Recorder
from otpy.steps import COMMON_FIELDS
from otpy.steps.llm import BUILTIN_STEPS, CLAUDE_OPTIONS

__all__ = ["migrate_step"]

CLAUDE_OPTION_TARGETS: Final = {
    "system_prompt": "system",
    "max_turns": "max_turns",
    "model": "model",
    "temperature": "temperature",
    "max_tokens": "max_tokens",
    "session_id": "session_id",
}
_TOOLS = "this step type runs no tools (claude, claude_smart, claude_session, ... do)"
_LOGS = "otpy's telemetry and logging cover it"
NO_COUNTERPART: Final = {
    "output_format": "answers are text; claude_extract or gemini_instructor give structure",
    "verbose": _LOGS,
    "debug_mode": _LOGS,
    "telemetry_enabled": "telemetry is configured for the whole runtime",
    "cost_tracking": "every step result carries its token usage",
    "allowed_tools": _TOOLS,
    "disallowed_tools": _TOOLS,
    "permission_mode": _TOOLS,
    "cwd": "otpy steps do not work in a directory",
    "resume_session": "a claude_session step resumes its session by itself",
    "retry_config": "the provider guard retries (claude_robust adds max_attempts)",
    "timeout_ms": "the provider guard applies the timeouts",
    "top_p": "otpy requests have no top_p",
    "top_k": "otpy requests have no top_k",
    "role": "otpy has no step roles",
    "output_schema": "validate structured output with a gemini_instructor step",
    "environment_aware": "pick the preset explicitly",
    "validation_mode": "gemini_instructor always validates strictly",
    "scope": "set_variable writes the run's variables",
    "preset": "only claude_smart has presets",
}
AGENT_OPTIONS: Final = tuple(
    key for key in CLAUDE_OPTIONS if key not in ("system_prompt", "append_system_prompt")
)
"""``claude_options`` keys a step type that takes ``claude_options`` keeps there (its agent
settings); the others are flattened into step fields or dropped as for any step."""
TOKEN_BUDGET_TARGETS: Final = {"max_output_tokens": "max_tokens", "temperature": "temperature"}
PIPELINE_EX_ONLY_TYPES: Final = frozenset(
    {"pipeline", "for_loop", "while_loop", "switch", "data_transform", "file_ops",
     "codebase_query", "checkpoint"}
)  # fmt: skip


class StepMigration:
    """The migration of one step dict (a private copy, changed in place)."""

    def __init__(self, step: dict[str, Any], label: str, record: Recorder) -> None:
        self.step = step
        self.label = label
        self.record = record
        self.kind = step.get("type")
        cls = BUILTIN_STEPS.get(self.kind) if isinstance(self.kind, str) else None
        self.accepted: frozenset[str] | None = (
            None
            if cls is None
            else COMMON_FIELDS.union(cls.metadata.required_fields, cls.metadata.optional_fields)
        )

    # -- primitives ------------------------------------------------------------------------

    def mapping(self, field: str) -> dict[str, Any]:
        """Pop ``field`` (a mapping) off the step; {} if absent."""
        value = self.step.pop(field, None)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.record.invalid(self.label, field, f"must be a mapping, got {value!r}")
        return dict(value)

    def drop(self, source: str, value: Any, why: str) -> None:
        self.record.change(self.label, source, value, None, f"removed: {why}", "warning")

    def place(self, target: str, value: Any, source: str) -> None:
        """Put ``value`` (from legacy field ``source``) in field ``target``."""
        if self.accepted is not None and target not in self.accepted:
            self.drop(source, value, f"a {self.kind} step has no {target}")
        elif self.step.get(target) is not None and self.step[target] != value:
            self.drop(source, value, f"the step's own {target} ({self.step[target]!r}) wins")
        else:
            self.step[target] = value
            self.record.change(self.label, source, value, value, f"moved to {target}")

    def options(self, source: str, values: Mapping[str, Any], targets: Mapping[str, str]) -> None:
        for key, value in values.items():
            path = f"{source}.{key}"
            if key in targets:
                self.place(targets[key], value, path)
            elif key in NO_COUNTERPART:
                self.drop(path, value, NO_COUNTERPART[key])
            else:
                self.drop(path, value, f"no counterpart of {source}.{key} in otpy")

    def append_system(self, append: Any) -> None:
        source = "claude_options.append_system_prompt"
        if self.accepted is not None and "system" not in self.accepted:
            self.drop(source, append, f"a {self.kind} step has no system")
            return
        system = self.step.get("system")
        combined = f"{system}\n\n{append}" if system else append
        self.step["system"] = combined
        self.record.change(self.label, source, append, combined, "appended to system")

    def workspace_cwd(self, kept: dict[str, Any]) -> None:
        """pipeline_ex's ``cwd`` is relative to where the pipeline runs, its workspace being
        ``./workspace``; otpy's is relative to the run's workspace: drop that prefix."""
        cwd = kept["cwd"]
        if not isinstance(cwd, str):
            return
        parts = [part for part in cwd.split("/") if part not in ("", ".")]
        if parts[:1] != ["workspace"]:
            return
        source = "claude_options.cwd"
        if len(parts) == 1:
            del kept["cwd"]
            self.record.change(self.label, source, cwd, None, "removed: the run's workspace "
                               "is where the agent works already")  # fmt: skip
        else:
            kept["cwd"] = "/".join(parts[1:])
            self.record.change(self.label, source, cwd, kept["cwd"], "made relative to the "
                               "run's workspace")  # fmt: skip

    def template(self, value: Any, field: str) -> Any:
        if isinstance(value, str) or value is None:
            return value
        return prompt_template(value, step=self.label, field=field, record=self.record)

    # -- the rules -------------------------------------------------------------------------

    def run(self) -> None:
        if "condition" in self.step:
            condition = self.step.pop("condition")
            if self.step.get("when") is None:
                when = _when_of(condition)
                self.step["when"] = when
                if when != condition:
                    self.record.change(
                        self.label, "condition", condition, when,
                        "moved to when as a look-up of the step's output",
                    )  # fmt: skip
                else:
                    self.record.change(
                        self.label, "condition", condition, condition,
                        "moved to when; check the expression against otpy's when syntax",
                        "warning",
                    )  # fmt: skip
            else:
                self.drop("condition", condition, "the step's own when wins")
        options = self.mapping("claude_options")
        kept: dict[str, Any] = {}
        if self.accepted is not None and "claude_options" in self.accepted:
            kept = {key: options.pop(key) for key in AGENT_OPTIONS if key in options}
        append = options.pop("append_system_prompt", None)
        self.options("claude_options", options, CLAUDE_OPTION_TARGETS)
        if append is not None:
            self.append_system(append)
        if "cwd" in kept:
            self.workspace_cwd(kept)
        if kept:
            self.step["claude_options"] = kept
        self.options("token_budget", self.mapping("token_budget"), TOKEN_BUDGET_TARGETS)
        if "prompt" in self.step:
            self.step["prompt"] = self.template(self.step["prompt"], "prompt")
        if "output_to_file" in self.step:
            self.drop(
                "output_to_file", self.step.pop("output_to_file"),
                "steps write no files; save steps.<name>.output from the pipeline result",
            )  # fmt: skip
        special = _BY_TYPE.get(self.kind) if isinstance(self.kind, str) else None
        if special is not None:
            special(self)
        self.leftovers()

    def leftovers(self) -> None:
        if self.accepted is None:
            if self.kind in PIPELINE_EX_ONLY_TYPES:
                self.record.note(
                    self.label, "type", self.kind,
                    f"otpy has no {self.kind} step type; register one or restructure the "
                    "pipeline",
                    "error",
                )  # fmt: skip
            return
        for field in list(self.step):
            if field in self.accepted:
                continue
            if field in NO_COUNTERPART:
                self.drop(field, self.step.pop(field), NO_COUNTERPART[field])
            elif self.kind == "gemini" and field == "tools":
                self.record.note(
                    self.label, field, self.step[field],
                    "left as it is: a gemini step names its tools in functions (tool "
                    "names), so validation rejects the step until this field is renamed",
                    "warning",
                )  # fmt: skip
            else:
                self.record.note(
                    self.label, field, self.step[field],
                    f"unknown field for a {self.kind} step, left as it is (validation "
                    "will reject it: rename or remove it)",
                    "warning",
                )  # fmt: skip


def _session(m: StepMigration) -> None:
    targets = {"session_name": "session_id", "max_turns": "max_turns"}
    m.options("session_config", m.mapping("session_config"), targets)


def _extract(m: StepMigration) -> None:
    config = m.mapping("extraction_config")
    if "format" in config:
        fmt = config.pop("format")
        if fmt == "json":
            m.place("extract", "json", "extraction_config.format")
        else:
            m.drop("extraction_config.format", fmt, "only json, code and fields are extracted")
    for key, value in config.items():
        m.drop(f"extraction_config.{key}", value, "no counterpart in claude_extract")


def _task_prompt(m: StepMigration, task: Any, where: str) -> Any:
    if not isinstance(task, Mapping) or task.get("prompt") is None:
        raise m.record.invalid(
            m.label, where, f"a task must be a mapping with a prompt, got {task!r}"
        )
    for key, value in task.items():
        if key not in ("prompt", "id"):
            m.drop(f"{where}.{key}", value, "per-task settings are not carried over; the "
                   "step's settings apply to every task")  # fmt: skip
    return m.template(task["prompt"], f"{where}.prompt")


def _batch(m: StepMigration) -> None:
    tasks = m.step.pop("tasks", None)
    if tasks is not None:
        if not isinstance(tasks, list) or m.step.get("prompts") is not None:
            raise m.record.invalid(m.label, "tasks", "must be a list, and not given with prompts")
        prompts = [_task_prompt(m, t, f"tasks[{i}]") for i, t in enumerate(tasks)]
        m.step["prompts"] = prompts
        m.record.change(m.label, "tasks", tasks, prompts, "tasks became the prompts list")
    targets = {"max_parallel": "max_concurrency"}
    m.options("batch_config", m.mapping("batch_config"), targets)


def _parallel(m: StepMigration) -> None:
    tasks = m.step.pop("parallel_tasks", None)
    if tasks is None:
        return
    if not isinstance(tasks, list) or m.step.get("instances") is not None:
        raise m.record.invalid(
            m.label, "parallel_tasks", "must be a list, and not given with instances"
        )
    instances = []
    for index, task in enumerate(tasks):
        where = f"parallel_tasks[{index}]"
        if not isinstance(task, Mapping):
            raise m.record.invalid(m.label, where, f"a task must be a mapping, got {task!r}")
        instance: dict[str, Any] = {}
        if task.get("prompt") is not None:
            instance["prompt"] = m.template(task["prompt"], f"{where}.prompt")
        options = dict(task.get("claude_options") or {})
        kept = {key: options.pop(key) for key in AGENT_OPTIONS if key in options}
        if kept:
            instance["claude_options"] = kept
        for key, target in (("system_prompt", "system"), ("temperature", "temperature")):
            if key in options:
                instance[target] = options.pop(key)
        for key, value in options.items():
            m.drop(f"{where}.claude_options.{key}", value, "instances take prompt, system, "
                   "temperature, provider and claude_options' agent settings only")  # fmt: skip
        for key, value in task.items():
            if key not in ("prompt", "claude_options", "id"):
                m.drop(f"{where}.{key}", value, "no per-instance counterpart")
        instances.append(instance)
    m.step["instances"] = instances
    m.record.change(m.label, "parallel_tasks", tasks, instances, "became instances")


def _robust(m: StepMigration) -> None:
    config = m.mapping("retry_config")
    if "max_retries" in config:
        retries = config.pop("max_retries")
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise m.record.invalid(
                m.label, "retry_config.max_retries", f"must be an integer >= 0, got {retries!r}"
            )
        m.place("max_attempts", retries + 1, "retry_config.max_retries")
    for key, value in config.items():
        m.drop(f"retry_config.{key}", value, "the provider guard decides backoff and conditions")
    if m.step.get("fallback_provider") is None and m.step.get("fallback_capabilities") is None:
        m.record.note(
            m.label, "fallback_provider", None,
            "claude_robust needs fallback_provider (a provider name) or "
            "fallback_capabilities; add one",
            "error",
        )  # fmt: skip


_CONDITION_PATH: Final = re.compile(r"[A-Za-z_][\w\-]*(?:\.[\w\-]+)*")


def _when_of(condition: Any) -> Any:
    """pipeline_ex's ``condition: "analyze.needs_review"`` (or ``steps.analyze...``): a
    step's result field, as ``{{ steps.analyze.output.needs_review }}``; anything else
    (an expression) as it is."""
    if not isinstance(condition, str) or not _CONDITION_PATH.fullmatch(condition.strip()):
        return condition
    parts = condition.strip().split(".")
    if parts[0] == "steps" and len(parts) > 1:
        parts = parts[1:]
    name, rest = parts[0], parts[1:]
    if rest[:1] != ["output"]:
        rest = ["output", *rest]
    return "{{ steps." + ".".join([name, *rest]) + " }}"


_BY_TYPE: Final[dict[str, Callable[[StepMigration], None]]] = {
    "claude_session": _session,
    "claude_extract": _extract,
    "claude_batch": _batch,
    "parallel_claude": _parallel,
    "claude_robust": _robust,
}


def migrate_step(step: dict[str, Any], label: str, record: Recorder) -> None:
    """Rewrite one step dict in place, recording every change on ``record``."""
    StepMigration(step, label, record).run()
