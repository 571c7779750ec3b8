"""pipeline_ex's ``condition:`` field: an expression, or ``and``/``or``/``not`` mappings of
conditions, or a list of them (all must hold)::

    condition: "steps.review.score >= 8 and steps.review.approved"
    condition:
      and:
        - "steps.tests.passed"
        - or: ["steps.lint.errors == 0", "inputs.force == true"]
        - not: "steps.security.findings empty"

Compiled once (every expression parsed, every function known) so a bad condition is an
error naming the step, the field (``condition.and[1].or[0]``) and the column before
anything runs. A path that leads nowhere reads as null, so ``steps.x.y exists`` is false
rather than an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from otpy.errors import ExpressionError, StepValidationError
from otpy.expr._eval import Resolver, compile_expression, evaluate
from otpy.expr._nodes import Node, Path, paths
from otpy.expr._values import truthy

__all__ = ["Condition", "compile_condition"]


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition: ``kind`` is ``expr`` (``node`` from ``text``), ``const``
    (``value``), or ``and``/``or``/``not`` over ``parts``."""

    kind: str
    parts: tuple[Condition, ...] = ()
    node: Node | None = None
    text: str = ""
    value: bool = True
    field: str = "condition"

    def holds(self, resolve: Resolver, now: Callable[[], float] = time.time) -> bool:
        """Whether the condition holds with paths looked up by ``resolve``.
        ExpressionError (with ``.field`` set) for an operation its values do not allow."""
        if self.kind == "const":
            return self.value
        if self.kind == "and":
            return all(part.holds(resolve, now) for part in self.parts)
        if self.kind == "or":
            return any(part.holds(resolve, now) for part in self.parts)
        if self.kind == "not":
            return not self.parts[0].holds(resolve, now)
        assert self.node is not None
        try:
            return truthy(evaluate(self.node, resolve, text=self.text, now=now))
        except ExpressionError as exc:
            exc.add_note(f"field {self.field}")
            raise

    def paths(self) -> list[tuple[str, Path]]:
        """Every look-up of the condition, with the field it is in."""
        if self.node is not None:
            return [(self.field, path) for path in paths(self.node)]
        return [item for part in self.parts for item in part.paths()]


def compile_condition(value: Any, *, step: str | None, field: str = "condition") -> Condition:
    """Compile a ``condition`` value (text, a boolean, a list, or an ``and``/``or``/``not``
    mapping). StepValidationError naming ``step``, the (nested) field and the column."""
    if isinstance(value, bool):
        return Condition("const", value=value, field=field)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Condition("const", value=truthy(value), field=field)
    if isinstance(value, str):
        try:
            node = compile_expression(value)
        except ExpressionError as exc:
            raise StepValidationError(f"bad condition: {exc}", step=step, field=field) from None
        return Condition("expr", node=node, text=value, field=field)
    if isinstance(value, list):
        if not value:
            raise StepValidationError("an empty list of conditions", step=step, field=field)
        parts = tuple(
            compile_condition(item, step=step, field=f"{field}[{index}]")
            for index, item in enumerate(value)
        )
        return Condition("and", parts, field=field)
    if isinstance(value, Mapping) and len(value) == 1:
        ((key, inner),) = value.items()
        where = f"{field}.{key}"
        if key in ("and", "or"):
            items = inner if isinstance(inner, list) else [inner]
            parts = tuple(
                compile_condition(item, step=step, field=f"{where}[{index}]")
                for index, item in enumerate(items)
            )
            if not parts:
                raise StepValidationError(
                    f"'{key}' needs at least one condition", step=step, field=where
                )
            return Condition(str(key), parts, field=field)
        if key == "not":
            return Condition(
                "not", (compile_condition(inner, step=step, field=where),), field=field
            )
    raise StepValidationError(
        'must be a condition: text such as "steps.review.score > 7", true/false, a list '
        "(all must hold), or a mapping with one key: and, or, not; got "
        f"{type(value).__name__} {value!r:.60}",
        step=step,
        field=field,
    )
