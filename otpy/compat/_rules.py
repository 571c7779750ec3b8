"""One step of a pipeline_ex document, made ready for otpy (in place, every change recorded).

otpy's step types take pipeline_ex's fields as they are (``prompt`` parts,
``claude_options``, ``token_budget``, ``retry_config``, ``tasks``...); this only:

- renames true aliases: ``continue_on_error: true`` -> ``on_error: continue``;
  set_variable's ``variable``/``value`` -> ``variables``;
- removes the fields otpy does not honour (:mod:`otpy.compat._fields`), each with a note
  saying what happens instead; ``claude_options`` keys are only noted (the step keeps the
  mapping as it is);
- in a pipeline_ex document, removes fields no step type knows (noted, with the closest
  known field); in an otpy document they are left for validation to refuse;
- does the same for the steps of loops and the tasks of batch steps.
"""

from __future__ import annotations

import difflib
import posixpath
from collections.abc import Mapping
from typing import Any

from otpy.agent import BUILTIN_TOOLS
from otpy.compat._fields import (
    CLAUDE_CODE_TOOLS,
    CLAUDE_OPTIONS,
    PART_OPTIONS,
    STEP_FIELDS,
    TYPE_FIELDS,
)
from otpy.compat._report import Recorder
from otpy.steps import COMMON_FIELDS, Step
from otpy.steps.data import DATA_STEPS
from otpy.steps.flow import FLOW_STEPS, LOOP_TYPES
from otpy.steps.llm import BUILTIN_STEPS, ROBUST_ACTIONS

__all__ = ["ALL_STEPS", "migrate_step"]

ALL_STEPS: dict[str, type[Step]] = {**BUILTIN_STEPS, **FLOW_STEPS, **DATA_STEPS}
"""Every built-in step type (what a migration knows the fields of)."""
_TASK_LISTS = {"claude_batch": "tasks", "parallel_claude": "parallel_tasks"}


def _fields(cls: type[Step]) -> frozenset[str]:
    return COMMON_FIELDS.union(cls.metadata.required_fields, cls.metadata.optional_fields)


class StepMigration:
    """The migration of one step dict (a private copy, changed in place)."""

    def __init__(
        self, step: dict[str, Any], label: str, record: Recorder, *, prefix: str,
        pipeline_ex: bool, workspace: str | None = None,
    ) -> None:  # fmt: skip
        self.step = step
        self.workspace = workspace
        self.label = label
        self.record = record
        self.prefix = prefix
        self.pipeline_ex = pipeline_ex
        self.kind = step.get("type") if isinstance(step.get("type"), str) else None
        cls = ALL_STEPS.get(self.kind) if self.kind is not None else None
        self.accepted = _fields(cls) if cls is not None else None

    def at(self, field: str) -> str:
        return f"{self.prefix}{field}"

    def inert(self, field: str, value: Any, why: str) -> None:
        self.record.note(self.label, self.at(field), value, f"ignored: {why}", "warning")
        self.step.pop(field, None)

    def run(self) -> None:
        self.aliases()
        for field, why in STEP_FIELDS.items():
            if field in self.step and (self.accepted is None or field not in self.accepted):
                self.inert(field, self.step[field], why)
        for dotted, why in TYPE_FIELDS.get(self.kind or "", {}).items():
            head, _, key = dotted.partition(".")
            inner = self.step.get(head)
            if key and isinstance(inner, dict) and key in inner:
                self.record.note(
                    self.label, self.at(dotted), inner.pop(key), f"ignored: {why}", "warning"
                )
            elif not key and head in self.step:
                self.inert(head, self.step[head], why)
        self.claude_options(self.step.get("claude_options"), "claude_options")
        retry = self.step.get("retry_config")
        action = retry.get("fallback_action") if isinstance(retry, Mapping) else None
        if (
            self.kind == "claude_robust"
            and isinstance(action, str)
            and action not in ROBUST_ACTIONS
        ):
            self.record.note(
                self.label, self.at("retry_config.fallback_action"), action,
                f"not an action ({', '.join(ROBUST_ACTIONS)}): graceful_degradation is used, "
                "as pipeline_ex does",
                "warning",
            )  # fmt: skip
        self.prompt(self.step.get("prompt"), "prompt")
        tasks_field = _TASK_LISTS.get(self.kind or "")
        tasks = self.step.get(tasks_field) if tasks_field else None
        if isinstance(tasks, list):
            for index, task in enumerate(tasks):
                if isinstance(task, dict):
                    where = f"{tasks_field}[{index}]"
                    self.claude_options(task.get("claude_options"), f"{where}.claude_options")
                    self.prompt(task.get("prompt"), f"{where}.prompt")
        if self.kind in LOOP_TYPES and isinstance(self.step.get("steps"), list):
            for index, body in enumerate(self.step["steps"]):
                if isinstance(body, dict):
                    migrate_step(
                        body, self.label, self.record, prefix=self.at(f"steps[{index}]."),
                        pipeline_ex=self.pipeline_ex, workspace=self.workspace,
                    )  # fmt: skip
        self.unknown()

    def aliases(self) -> None:
        if "continue_on_error" in self.step and (
            self.accepted is None or "continue_on_error" not in self.accepted
        ):
            value = self.step.pop("continue_on_error")
            if not isinstance(value, bool):
                raise self.record.invalid(
                    self.label,
                    self.at("continue_on_error"),
                    f"must be true or false, got {value!r}",
                )
            if value and "on_error" not in self.step:
                self.step["on_error"] = "continue"
                self.record.change(
                    self.label,
                    self.at("continue_on_error"),
                    value,
                    "continue",
                    "became on_error: continue",
                )
            elif not value:
                self.record.change(
                    self.label,
                    self.at("continue_on_error"),
                    value,
                    None,
                    "false is the default (a failure ends the run)",
                )
        if self.kind == "set_variable" and "variable" in self.step and "variables" not in self.step:
            name = self.step.pop("variable")
            value = self.step.pop("value", None)
            self.step["variables"] = {name: value}
            self.record.change(
                self.label,
                self.at("variable"),
                name,
                {name: value},
                "variable and value became variables",
            )

    def claude_options(self, options: Any, field: str) -> None:
        if not isinstance(options, Mapping):
            return
        if self.workspace is not None and isinstance(options.get("cwd"), str):
            self.cwd(options, field)
        if self.pipeline_ex and isinstance(options, dict):
            for key in ("allowed_tools", "disallowed_tools"):
                if isinstance(options.get(key), list):
                    self.tools(options, key, f"{field}.{key}")
        for key, why in CLAUDE_OPTIONS.items():
            if key in options:
                self.record.note(
                    self.label,
                    self.at(f"{field}.{key}"),
                    options[key],
                    f"kept, no effect: {why}",
                    "warning",
                )

    def tools(self, options: dict[str, Any], key: str, field: str) -> None:
        """Claude Code ignores tool names it does not have; otpy's agent has only its own
        tools: the others leave a pipeline_ex document's list, each named."""
        names = options[key]
        kept = [n for n in names if not isinstance(n, str) or n in BUILTIN_TOOLS]
        for name in names:
            if name not in kept:
                why = (
                    "a Claude Code tool otpy's agent lacks"
                    if name in CLAUDE_CODE_TOOLS
                    else ("no tool of otpy's agent")
                )
                self.record.note(
                    self.label, self.at(f"{field}[{names.index(name)}]"), name,
                    f"ignored: {why} (its tools: {', '.join(BUILTIN_TOOLS)}); the step runs "
                    "without it",
                    "warning",
                )  # fmt: skip
        options[key] = kept

    def cwd(self, options: Any, field: str) -> None:
        """pipeline_ex's ``cwd`` is relative to where the pipeline runs, otpy's to the run's
        workspace: a cwd under the document's workspace_dir loses that prefix."""
        cwd = options["cwd"]
        parts = [p for p in posixpath.normpath(cwd).split("/") if p not in ("", ".")]
        root = [p for p in posixpath.normpath(str(self.workspace)).split("/") if p not in ("", ".")]
        where = self.at(f"{field}.cwd")
        if (
            posixpath.isabs(cwd)
            or posixpath.isabs(str(self.workspace))
            or parts[: len(root)] != root
        ):
            self.record.note(self.label, where, cwd, "kept: otpy resolves it inside the run's "
                             "workspace (a cwd outside it is refused when the step runs)",
                             "warning")  # fmt: skip
        elif len(parts) == len(root):
            del options["cwd"]
            self.record.change(self.label, where, cwd, None, "removed: the run's workspace is "
                               "where the agent works already")  # fmt: skip
        else:
            options["cwd"] = "/".join(parts[len(root) :])
            self.record.change(self.label, where, cwd, options["cwd"], "made relative to the "
                               "run's workspace")  # fmt: skip

    def prompt(self, parts: Any, field: str) -> None:
        if not isinstance(parts, list):
            return
        for index, part in enumerate(parts):
            if isinstance(part, Mapping):
                for key, why in PART_OPTIONS.items():
                    if key in part:
                        self.record.note(
                            self.label,
                            self.at(f"{field}[{index}].{key}"),
                            part[key],
                            f"ignored: {why}",
                            "warning",
                        )

    def unknown(self) -> None:
        if self.accepted is None or not self.pipeline_ex:
            return
        for field in list(self.step):
            if field in self.accepted:
                continue
            close = difflib.get_close_matches(str(field), sorted(self.accepted), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.record.note(
                self.label, self.at(str(field)), self.step.pop(field),
                f"ignored: not a field of a {self.kind} step in pipeline_ex or otpy{hint}",
                "warning",
            )  # fmt: skip


def migrate_step(
    step: dict[str, Any],
    label: str,
    record: Recorder,
    *,
    prefix: str = "",
    pipeline_ex: bool = False,
    workspace: str | None = None,
) -> None:
    """Make one step dict ready for otpy in place, recording every change and note;
    ``workspace`` is a pipeline_ex document's workspace_dir (claude_options.cwd is made
    relative to it)."""
    StepMigration(
        step, label, record, prefix=prefix, pipeline_ex=pipeline_ex, workspace=workspace
    ).run()
