"""What a DSPy job is, as its job store keeps it: :class:`DSPyJob` (no DSPy needed to read it).

A DSPy job (``rt.jobs.start_dspy``, a job file with ``kind: dspy``) runs a DSPy optimizer's
``compile`` (or an evaluation) under a job runner. Its :class:`~otpy.optimize.JobSpec` has
``kind="dspy"`` and this part: the program, optimizer and metric by reference
(``"module:attr"``, imported when the job runs: the user names the code, nothing from a
stored value is evaluated), the validation set, the LM's target and the budgets. The
trainset is the spec's ``trainset``, one ``{"inputs": {...}, "expected": {...}}`` per
example (``expected`` the example's other fields).
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["REFERENCE_PATTERN", "DSPyJob", "DSPyTarget", "reference"]

REFERENCE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$"
"""``module:attr``: a module to import and an attribute path in it."""


def reference(value: str | None) -> str | None:
    """``value`` if it is a reference ``module:attr`` (or None); ValueError saying what one
    is otherwise."""
    if value is not None and not re.fullmatch(REFERENCE_PATTERN, value):
        raise ValueError(
            f"must be a reference 'module:attr' (a module to import, an attribute in it), "
            f"got {value!r}"
        )
    return value


class DSPyTarget(BaseModel):
    """The LM a DSPy job's calls go to: a provider by name, else the capabilities a call
    selects by, the provider-side ``model``, ``failover`` and the ``dspy.LM`` settings
    (``temperature``, ``max_tokens``...) as ``otpy.dspy.lm`` takes them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    model: str | None = None
    failover: bool = True
    settings: dict[str, Any] = Field(default_factory=dict)


class DSPyJob(BaseModel):
    """The DSPy part of a job's spec (see the module docstring).

    ``program``, ``metric``: references, or None when the object was given (then resuming
    the job in another process needs it again); ``program_name``: what the job is called;
    ``optimizer``: ``"evaluate"`` or a DSPy teleprompter's class name, made with
    ``optimizer_options`` unless ``optimizer_given`` (an instance was given: resuming in
    another process needs it again); ``compile_options``: more arguments of ``compile``;
    ``valset``: examples as in the trainset; ``threads``: DSPy's ``num_threads``;
    ``base_dir``: the folder references import from (beside ``sys.path``); the budgets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    program: str | None = None
    program_name: str = ""
    optimizer: str = Field(min_length=1)
    optimizer_given: bool = False
    optimizer_options: dict[str, Any] = Field(default_factory=dict)
    compile_options: dict[str, Any] = Field(default_factory=dict)
    metric: str | None = None
    valset: list[dict[str, Any]] | None = None
    threads: int | None = Field(default=None, ge=1, le=1024)
    lm: DSPyTarget = Field(default_factory=DSPyTarget)
    base_dir: str | None = None
    max_calls: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost: float | None = Field(default=None, gt=0)
    max_seconds: float | None = Field(default=None, gt=0)

    _references = field_validator("program", "metric")(reference)

    @field_validator("max_cost", "max_seconds")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value!r}")
        return value

    @model_validator(mode="after")
    def _no_options_for_an_instance(self) -> DSPyJob:
        if self.optimizer_given and self.optimizer_options:
            raise ValueError("optimizer_options are for an optimizer given by name")
        return self

    @property
    def resumable_elsewhere(self) -> list[str]:
        """What another process must be given again to resume the job (empty: nothing)."""
        given = [] if self.program is not None else ["program"]
        given += ["optimizer"] if self.optimizer_given else []
        return given + ([] if self.metric is not None else ["metric"])
