"""Which steps of a pipeline a DSPy program tunes, as plain data, both ways.

A step is tuned when its type is a one-prompt step (a subclass of
``otpy.steps.llm.PromptStep``: ``claude``, ``gemini``, ``claude_smart``). Its signature:

- inputs: one field per placeholder of its ``system`` and ``prompt`` (``{{ inputs.question
  }}`` -> ``question``, ``{{ steps.search.output }}`` -> ``search``, ``{{ vars.tone }}`` ->
  ``tone``), each taking the value the template reads;
- output: one text field named after the step (``answer``);
- instructions: the system prompt the step would send (a ``claude_smart`` preset's
  included) and its prompt, each placeholder written as the field's name in backticks.

:func:`predict_document` is the pipeline with each tuned step replaced by a
``dspy.predict`` step (the executor renders its fields; the predictor answers);
:func:`written_document` is the pipeline with each tuned step's ``system`` set to its
(optimized) instructions and its ``prompt`` to its demos and its input fields, which the
built-in step runs as it is. Nothing here imports DSPy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from otpy.errors import ConfigurationError
from otpy.pipelines import Pipeline, Plan, Ref, parse
from otpy.steps.llm import PromptStep

__all__ = [
    "PREDICT_TYPE",
    "InputField",
    "TunedStep",
    "predict_document",
    "tuned_steps",
    "written_document",
]

PREDICT_TYPE = "dspy.predict"
"""The step type a tuned step runs as inside a PipelineModule."""

_KEPT = ("description", "when", "on_error", "fallback", "provider", "model")
_SAMPLING = ("temperature", "max_tokens", "stop")


@dataclass(frozen=True)
class InputField:
    """An input field of a tuned step: its ``name`` and the template ``path`` it reads."""

    name: str
    path: str


@dataclass(frozen=True)
class TunedStep:
    """A step tuned as a predictor: its ``name`` and ``type``, its input fields, its
    ``output`` field, its initial ``instructions`` and its config as written."""

    name: str
    type: str
    inputs: tuple[InputField, ...]
    output: str
    instructions: str
    config: Mapping[str, Any]


def tuned_steps(
    plan: Plan, tune: Iterable[str] | None = None, *, reserved: frozenset[str] = frozenset()
) -> tuple[TunedStep, ...]:
    """The steps of ``plan`` to tune: those named in ``tune`` (ConfigurationError for a
    name that is no step, or a step that is not a one-prompt step), else every one-prompt
    step. ``reserved`` are names a field may not take (they get a ``_field`` suffix)."""
    planned = {step.name: step for step in plan.steps}
    if tune is None:
        names = [s.name for s in plan.steps if issubclass(s.entry.step_cls, PromptStep)]
    else:
        names = list(tune)
        for name in names:
            if name not in planned:
                raise ConfigurationError(
                    f"pipeline {plan.name!r} has no step {name!r} to tune "
                    f"(steps: {', '.join(planned)})"
                )
            if not issubclass(planned[name].entry.step_cls, PromptStep):
                raise ConfigurationError(
                    f"step {name!r} ({planned[name].spec.type}) is not a one-prompt step "
                    "(claude, gemini, claude_smart): it cannot be tuned as a predictor"
                )
    step_names = frozenset(planned)
    return tuple(_tuned(plan, planned[name], step_names, reserved) for name in names)


def _tuned(
    plan: Plan, planned: Any, step_names: frozenset[str], reserved: frozenset[str]
) -> TunedStep:
    config = planned.config
    texts = {key: config[key] for key in ("prompt", "system", "preset") if key in config}
    request = planned.entry.step_cls().request({"name": planned.name, **texts})
    used: set[str] = set(reserved)
    fields: dict[str, InputField] = {}
    parts: list[str] = []
    for text in (request.system, request.prompt):
        if not text:
            continue
        shown = []
        for part in parse(text, step=planned.name, field="prompt"):
            if isinstance(part, Ref):
                if part.path not in fields:
                    name = _unique(_field_name(part.segments, step_names), used)
                    fields[part.path] = InputField(name, part.path)
                shown.append(f"`{fields[part.path].name}`")
            else:
                shown.append(part if isinstance(part, str) else part.placeholder)
        parts.append("".join(shown).strip())
    output = _unique(_identifier(planned.name), used)
    return TunedStep(
        name=planned.name,
        type=planned.spec.type,
        inputs=tuple(fields.values()),
        output=output,
        instructions="\n\n".join(p for p in parts if p),
        config=planned.spec.config,
    )


def _field_name(segments: Sequence[str], step_names: frozenset[str]) -> str:
    root, rest = segments[0], list(segments[1:])
    if root == "steps":
        for size in range(len(rest), 0, -1):
            if ".".join(rest[:size]) in step_names:
                step, rest = rest[:size], rest[size:]
                if rest[:1] == ["output"]:
                    rest = rest[1:]
                rest = [*step, *rest]
                break
    return _identifier("_".join(rest) or root)


def _identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text)
    return f"f_{name}" if not name or name[0].isdigit() else name


def _unique(name: str, used: set[str]) -> str:
    candidate, number = name, 1
    while candidate in used:
        number += 1
        candidate = f"{name}_field" if number == 2 else f"{name}_field{number}"
    used.add(candidate)
    return candidate


def _document(pipeline: Pipeline) -> dict[str, Any]:
    return pipeline.model_dump(mode="json", exclude_unset=True)


def predict_document(pipeline: Pipeline, tuned: Sequence[TunedStep]) -> dict[str, Any]:
    """``pipeline`` as a document whose tuned steps are ``dspy.predict`` steps: their
    common fields and sampling kept, ``fields`` mapping each input field to its
    template."""
    document = _document(pipeline)
    by_name = {step.name: step for step in tuned}
    steps = []
    for spec in pipeline.steps:
        step = by_name.get(spec.name)
        if step is None:
            steps.append(spec.config)
            continue
        config = spec.config
        replaced: dict[str, Any] = {"name": spec.name, "type": PREDICT_TYPE}
        replaced.update({k: config[k] for k in (*_KEPT, *_SAMPLING) if k in config})
        replaced["fields"] = {field.name: "{{ " + field.path + " }}" for field in step.inputs}
        steps.append(replaced)
    document["steps"] = steps
    return document


def written_document(
    pipeline: Pipeline,
    tuned: Sequence[TunedStep],
    learned: Mapping[str, tuple[str, Sequence[Mapping[str, Any]]]],
) -> dict[str, Any]:
    """``pipeline`` as a document in which each tuned step with ``learned`` (step name to
    its instructions and demos) asks with ``system`` = the instructions and ``prompt`` =
    the demos, then its input fields, then the output's label."""
    document = _document(pipeline)
    by_name = {step.name: step for step in tuned}
    steps = []
    for spec in pipeline.steps:
        config = spec.config
        step = by_name.get(spec.name)
        if step is not None and step.name in learned:
            instructions, demos = learned[step.name]
            config["system"] = _literal(instructions)
            config["prompt"] = _few_shot(step, demos)
        steps.append(config)
    document["steps"] = steps
    return document


def _label(name: str) -> str:
    return name.replace("_", " ").strip().capitalize() or name


def _few_shot(step: TunedStep, demos: Sequence[Mapping[str, Any]]) -> str:
    names = [field.name for field in step.inputs]
    blocks = []
    for demo in demos:
        shown = [f"{_label(n)}: {_literal(_text(demo[n]))}" for n in names if n in demo]
        if step.output in demo:
            shown.append(f"{_label(step.output)}: {_literal(_text(demo[step.output]))}")
        if shown:
            blocks.append("\n".join(shown))
    asked = [f"{_label(field.name)}: {{{{ {field.path} }}}}" for field in step.inputs]
    asked.append(f"{_label(step.output)}:")
    blocks.append("\n".join(asked))
    return "\n\n".join(blocks) + "\n"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _literal(text: str) -> str:
    """``text`` as plain template text: ``{{`` and ``{%`` (a placeholder or a refused
    block) are broken up, since pipeline templates have no escape for them."""
    return text.replace("{{", "{ {").replace("{%", "{ %")
