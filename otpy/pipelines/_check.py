"""Template checks of a whole pipeline before anything runs: every reference names an
earlier step or a declared input, every ``when`` is one placeholder."""

from __future__ import annotations

from otpy.errors import StepValidationError
from otpy.pipelines._schema import Pipeline, PipelineStep, shown, template_fields
from otpy.pipelines._templates import (
    RESULT_FIELDS,
    Ref,
    is_path,
    known_names,
    only_ref,
    parse,
    step_span,
    walk_strings,
)

__all__ = ["check_references"]


class _Checker:
    """The template checks of one pipeline (see :func:`check_references`)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.position = {name: index for index, name in enumerate(pipeline.step_names)}

    def run(self) -> None:
        for index, step in enumerate(self.pipeline.steps):
            self.step(step, step.name, index, None)
        end = len(self.pipeline.steps)
        for name, template in self.pipeline.outputs.items():
            self.template(template, None, f"outputs.{name}", end)

    def step(self, spec: PipelineStep, owner: str, index: int, prefix: str | None) -> None:
        when_field = f"{prefix}.when" if prefix else "when"
        if isinstance(spec.when, str):
            whole = only_ref(parse(spec.when, step=owner, field=when_field))
            if whole is None:
                bare = spec.when.strip()
                hint = f"; did you mean '{{{{ {bare} }}}}'?" if is_path(bare) else ""
                raise StepValidationError(
                    "must be one placeholder such as '{{ steps.check.output.ok }}' (a false, "
                    f"0, empty or null value skips the step) or true/false, got "
                    f"{shown(spec.when)}{hint}",
                    step=owner,
                    field=when_field,
                )
            self.reference(whole, owner, when_field, index)
        config = template_fields(spec.type, spec.config)
        for field, text in walk_strings(config, prefix):
            self.template(text, owner, field, index)
        if spec.fallback is not None and spec.fallback.step is not None:
            inner = f"{prefix}.fallback.step" if prefix else "fallback.step"
            self.step(spec.fallback.step, owner, index, inner)

    def template(self, text: str, owner: str | None, field: str | None, index: int) -> None:
        for part in parse(text, step=owner, field=field):
            if isinstance(part, Ref):
                self.reference(part, owner, field, index)

    def reference(self, ref: Ref, owner: str | None, field: str | None, index: int) -> None:
        root, *rest = ref.segments
        if not rest or root == "vars":  # variables are set while the pipeline runs
            return
        problem: str | None = None
        if root == "inputs":
            if rest[0] not in self.pipeline.inputs:
                known = known_names(self.pipeline.inputs)
                problem = f"inputs.{rest[0]}: no input {rest[0]!r} (known: {known})"
        else:
            problem = self._step_problem(tuple(rest), owner, index)
        if problem is not None:
            raise StepValidationError(problem, step=owner, field=field)

    def _step_problem(self, rest: tuple[str, ...], owner: str | None, index: int) -> str | None:
        span = step_span(rest, self.position)
        if span == 0:
            known = known_names(self.position)
            return f"steps.{rest[0]}: no step {rest[0]!r} (known: {known})"
        name = ".".join(rest[:span])
        at = self.position[name]
        if at == index:
            return f"steps.{name}: a step cannot read its own result"
        if at > index:
            return (
                f"steps.{name}: step {name!r} (steps[{at}]) runs after step {owner!r} "
                f"(steps[{index}]); a step reads only the steps before it"
            )
        if span < len(rest) and rest[span] not in RESULT_FIELDS:
            return (
                f"steps.{name}.{rest[span]}: no field {rest[span]!r} of a step result "
                f"(known: {', '.join(RESULT_FIELDS)})"
            )
        return None


def check_references(pipeline: Pipeline) -> None:
    """Check every template of ``pipeline`` before anything runs: each parses (look-ups
    only), each ``when`` is one placeholder, each ``inputs.X`` is a declared input and each
    ``steps.X`` an earlier step (outputs may read any step) followed by a result field.
    ``vars.X`` is not checked (variables are set while the pipeline runs).

    Raises StepValidationError naming the step, the field and the reference; a reference
    to a later step names both steps. Runs in the caller's thread; parsing is cached.
    """
    _Checker(pipeline).run()
