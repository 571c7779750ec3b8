"""``set_variable``: write values into the run's variables (no provider call)."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from otpy.errors import StepValidationError
from otpy.steps._base import Step, StepContext, StepMetadata, StepResult, check_choice
from otpy.steps.llm._common import step_label

__all__ = ["SetVariableStep"]

VARIABLE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""A run variable's name: what a template can look up as ``variables.<name>``."""


SCOPES: Final = ("global", "session", "loop", "local")


class SetVariableStep(Step):
    """``set_variable``: ``variables`` (name -> value; a single ``{{ ... }}`` keeps the
    value's type, so ``{{ state.count + 1 }}`` is a number) are copied into the run's
    variables (replacing values of the same name); the output is the mapping.

    ``scope`` (pipeline_ex's): ``global`` (default) for the rest of the run;
    ``session`` also for later runs of the same pipeline in this process; ``loop`` or
    ``local`` for the rest of the current loop iteration only (the rest of the run outside
    a loop). Values are deep-copied, so later changes to either side do not leak.
    """

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Set run variables from a mapping of names to values (scope: global, "
        "session, loop); no provider call.",
        required_fields=("variables",),
        optional_fields=("scope",),
        capabilities=(),
    )

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        variables = checked["variables"]
        label = step_label(checked)
        if not isinstance(variables, Mapping) or not variables:
            raise StepValidationError(
                f"must be a non-empty mapping of names to values, got {variables!r}",
                step=label,
                field="variables",
            )
        for name in variables:
            if not isinstance(name, str) or VARIABLE_NAME.fullmatch(name) is None:
                raise StepValidationError(
                    f"variable name {name!r} must be letters, digits and '_', not starting "
                    "with a digit",
                    step=label,
                    field="variables",
                )
        check_choice(checked.get("scope"), SCOPES, step=label, field="scope")
        return checked

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        values = {name: copy.deepcopy(value) for name, value in step["variables"].items()}
        scope = step.get("scope") or "global"
        target = context.variables
        if scope == "session":
            target = context.session_variables
        elif scope in ("loop", "local") and context.local_variables is not None:
            target = context.local_variables
        target.update(copy.deepcopy(values))
        return StepResult(output=values, metadata={"names": sorted(values), "scope": scope})
