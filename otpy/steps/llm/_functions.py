"""pipeline_ex's declared Gemini functions: a ``gemini`` step whose ``functions`` name
declarations of the workflow's ``gemini_functions`` (name -> description, parameters).

::

    workflow:
      gemini_functions:
        evaluate_code:
          description: "Score the code"
          parameters: {type: object, properties: {score: {type: integer}}, required: [score]}
      steps:
        - {name: judge, type: gemini, prompt: "...", functions: [evaluate_code]}

pipeline_ex lets the model call the function and merges the first call's arguments into
the step's response; the function itself never runs. otpy asks for an answer shaped by
the first declared function's ``parameters`` (a structured answer) and gives the same
output: ``content`` (the answer's text), ``function_calls`` (``[{name, arguments}]``) and
the arguments' fields at the top. Names that are not declarations are tool names (the
agent loop, :mod:`otpy.steps.llm._agentic`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from otpy.providers import Completion
from otpy.steps._base import StepContext, StepResult
from otpy.steps.llm._common import build_request, call_provider

__all__ = ["call_declared", "declared_functions"]


def declared_functions(step: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The step's ``functions`` that name a ``gemini_functions`` declaration, in order."""
    functions = step.get("functions")
    declarations = step.get("gemini_functions")
    if not isinstance(functions, list) or not isinstance(declarations, Mapping):
        return {}
    return {
        name: declarations[name]
        for name in functions
        if isinstance(name, str) and isinstance(declarations.get(name), Mapping)
    }


def call_declared(
    step: Mapping[str, Any], context: StepContext, capabilities: Sequence[str]
) -> StepResult:
    """Ask ``step``'s prompt for a call of its first declared function (see the module
    docstring). Blocks on the provider call; raises what it raises."""
    name, declaration = next(iter(declared_functions(step).items()))
    schema = declaration.get("parameters")
    request = build_request(
        step,
        prompt=step["prompt"],
        response_schema=dict(schema) if isinstance(schema, Mapping) else {"type": "object"},
    )
    completion = call_provider(context, step, request, capabilities)
    arguments = _arguments(completion)
    output = {
        "content": completion.text,
        "function_calls": [{"name": name, "arguments": arguments}],
        **arguments,
    }
    return StepResult.of_completion(completion, output=output, metadata={"function": name})


def _arguments(completion: Completion) -> dict[str, Any]:
    """The call's arguments: the structured answer, else the first JSON object in the text
    ({} when there is none: pipeline_ex keeps the response as it is then)."""
    if isinstance(completion.structured, Mapping):
        return dict(completion.structured)
    text = completion.text
    start = text.find("{")
    while start != -1:
        try:
            found, _ = json.JSONDecoder().raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        return dict(found) if isinstance(found, dict) else {}
    return {}
