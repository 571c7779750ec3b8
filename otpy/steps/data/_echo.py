"""``test_echo``: output ``value`` as it is (its templates filled), or fail on request.

pipeline_ex's test step: ``value`` (any YAML; default ``"default_echo"``) is the output;
``fail: true`` or the value ``"__FAIL__"`` fails the step with ``error_message``. Handy for
trying a pipeline's wiring (loops, conditions, nested pipelines) without a provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from otpy.errors import PipelineError, StepValidationError
from otpy.steps._base import Step, StepContext, StepMetadata, StepResult

__all__ = ["TestEchoStep"]


class TestEchoStep(Step):
    """``test_echo`` (see the module docstring): no provider call."""

    __test__ = False  # not a pytest test class
    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Output the given value (templates filled); fail: true fails the step.",
        optional_fields=("value", "fail", "error_message"),
    )

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        if checked.get("fail") is not None and not isinstance(checked["fail"], bool):
            raise StepValidationError(
                "must be true or false", step=str(checked.get("name") or "test_echo"), field="fail"
            )
        return checked

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        value = step.get("value", "default_echo")
        if step.get("fail") is True or value == "__FAIL__":
            message = str(step.get("error_message") or "Test step intentionally failed")
            raise PipelineError(message, step=str(step.get("name") or "test_echo"))
        return StepResult(output=value, text=value if isinstance(value, str) else None)
