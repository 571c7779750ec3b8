"""``gemini_instructor``: structured output validated against a JSON Schema, re-asked."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import jsonschema  # type: ignore[import-untyped]

from otpy.errors import InvalidValueError, StepValidationError
from otpy.providers import Completion, Message, Usage
from otpy.steps._base import Step, StepContext, StepMetadata, StepResult
from otpy.steps.llm._common import (
    GEMINI_FIELDS,
    LLM_FIELDS,
    build_request,
    call_provider,
    check_int,
    check_llm_fields,
    check_str,
    step_label,
)
from otpy.steps.llm._extract import extract_json

__all__ = ["GeminiInstructorStep", "schema_problems"]

DEFAULT_MAX_RETRIES: Final = 2
DEFAULT_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "The response text"},
        "analysis": {"type": "string", "description": "Analysis or reasoning"},
        "summary": {"type": "string", "description": "Brief summary"},
    },
    "required": ["text"],
}
"""The schema when a step gives none (pipeline_ex's AnalysisResponse)."""
MAX_REPORTED: Final = 5
_UNPARSED: Final = object()


def _where(error: Any) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"${path}"


def schema_problems(schema: Mapping[str, Any], instance: Any) -> list[str]:
    """Why ``instance`` does not match ``schema`` (empty if it does), one line per
    problem, deepest path first, at most a few: ``"at $.items[0].price: -1 is less than
    the minimum of 0"``. The schema's own draft decides the rules."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: (-len(e.path), str(e.path)))
    problems = [f"at {_where(e)}: {e.message}" for e in errors[:MAX_REPORTED]]
    if len(errors) > MAX_REPORTED:
        problems.append(f"... and {len(errors) - MAX_REPORTED} more")
    return problems


def structured_answer(completion: Completion) -> Any:
    """The structured answer, else the text parsed as JSON (or fenced JSON in it); a
    sentinel object when there is none."""
    if completion.structured is not None:
        return completion.structured
    try:
        return json.loads(completion.text)
    except (ValueError, RecursionError):
        found = extract_json(completion.text)
        return _UNPARSED if found is None else found


class GeminiInstructorStep(Step):
    """``gemini_instructor``: ``prompt`` and ``schema`` (a JSON Schema, checked at
    validate time; default :data:`DEFAULT_SCHEMA`, pipeline_ex's) with ``max_retries``
    (default 2) re-asks; ``token_budget`` and ``functions`` as for ``gemini``.

    Asks with ``response_schema=schema`` and validates the answer (``structured``, else
    the text parsed as JSON) with ``jsonschema``. An invalid answer is re-asked in the
    same conversation: the answer as the assistant turn, then "Your answer did not match
    the schema: ..." with the problems. After ``max_retries`` re-asks it raises
    ``InvalidValueError`` naming the step, the last answer and its first problem. Output:
    the validated object; metadata ``attempts``; usage summed over the attempts.
    """

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Structured output: asks for JSON matching a JSON Schema, validates it, "
        "and re-asks with the validation errors until it matches or retries run out.",
        required_fields=("prompt",),
        optional_fields=(*LLM_FIELDS, *GEMINI_FIELDS, "schema", "max_retries"),
        capabilities=("text", "structured_output"),
    )

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        label = step_label(checked)
        check_str(checked, "prompt", required=True)
        schema = checked.get("schema", DEFAULT_SCHEMA)
        if not isinstance(schema, Mapping):
            raise StepValidationError(
                f"must be a JSON Schema object, got {type(schema).__name__}",
                step=label,
                field="schema",
            )
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.exceptions.SchemaError as exc:
            raise StepValidationError(
                f"is not a valid JSON Schema: {exc.message}", step=label, field="schema"
            ) from exc
        check_int(checked, "max_retries", minimum=0, maximum=20)
        check_llm_fields(checked)
        return checked

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        schema = dict(step.get("schema") or DEFAULT_SCHEMA)
        given: int | None = step.get("max_retries", DEFAULT_MAX_RETRIES)
        max_retries = DEFAULT_MAX_RETRIES if given is None else given
        conversation: list[Message] = []
        prompt: str = step["prompt"]
        usage = Usage()
        for attempt in range(1, max_retries + 2):
            request = build_request(
                step, prompt=prompt, messages=conversation, response_schema=schema
            )
            completion = call_provider(context, step, request, self.metadata.capabilities)
            usage = usage + completion.usage
            answer = structured_answer(completion)
            if answer is _UNPARSED:
                problems = ["the answer is not JSON"]
            else:
                problems = schema_problems(schema, answer)
            if not problems:
                return StepResult(
                    output=answer,
                    text=completion.text,
                    usage=usage,
                    provider=completion.provider,
                    model=completion.model,
                    retries=attempt - 1,
                    metadata={"attempts": attempt},
                )
            conversation += [
                Message(role="user", content=prompt),
                Message(role="assistant", content=completion.text),
            ]
            prompt = (
                "Your answer did not match the schema: "
                + "; ".join(problems)
                + ". Answer again with only JSON that matches the schema."
            )
        raise InvalidValueError(
            variable=step_label(step),
            value=completion.text if answer is _UNPARSED else answer,
            rule="the JSON Schema",
            detail=f"{max_retries + 1} attempts; last problem {problems[0]}",
        )
