"""The pipeline schema: models, defaults, inputs, JSON Schema and reference checks."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pydantic
import pytest
import yaml

from otpy.errors import ConfigurationError, StepValidationError
from otpy.pipelines import (
    Pipeline,
    PipelineStep,
    check_references,
    load_pipeline,
)
from otpy.steps import StepTable, validate_step
from otpy.steps._table import make_entry
from otpy.steps.llm import BUILTIN_STEPS

EXAMPLE = """
name: qa
description: Answer a question, briefly or not
version: "1.0"
requires: {claude: ">=1.0"}
inputs:
  question: {type: string, description: what to answer}
  style: {type: string, default: brief}
defaults: {provider: simulated, model: null, options: {temperature: 0.2}}
steps:
  - name: search
    type: claude
    prompt: "Find facts about {{ inputs.question }}"
  - name: answer
    type: claude
    when: "{{ inputs.style }}"
    on_error: fallback
    fallback: {step: {type: claude, prompt: "Just answer {{ inputs.question }}"}}
    prompt: "Answer {{ inputs.question }} ({{ inputs.style }}) with {{ steps.search.output }}"
    max_tokens: 200
  - name: remember
    type: set_variable
    on_error: continue
    variables: {topic: "{{ inputs.question }}"}
outputs: {answer: "{{ steps.answer.output }}", tokens: "{{ steps.answer.usage }}"}
"""

ANSWER_PROMPT = "Answer {{ inputs.question }} ({{ inputs.style }}) with {{ steps.search.output }}"


def example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE)
    return data


def minimal(**more: Any) -> dict[str, Any]:
    return {"name": "qa", "steps": [{"name": "a", "type": "t"}], **more}


def error(config: Any) -> str:
    with pytest.raises(StepValidationError) as caught:
        load_pipeline(config)
    return str(caught.value)


def with_steps(*steps: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"name": "qa", "steps": list(steps), **more}


# -- the models -------------------------------------------------------------------------------


def test_the_example_loads_with_every_field() -> None:
    pipeline = load_pipeline(example())
    assert pipeline.name == "qa"
    assert pipeline.version == "1.0"
    assert pipeline.requires == {"claude": ">=1.0"}
    assert pipeline.step_names == ("search", "answer", "remember")
    assert pipeline.inputs["question"].type == "string"
    assert pipeline.inputs["question"].is_required
    assert not pipeline.inputs["style"].is_required
    answer = pipeline.step("answer")
    assert answer.on_error == "fallback"
    assert answer.when == "{{ inputs.style }}"
    assert answer.fields == {
        "prompt": ANSWER_PROMPT,
        "max_tokens": 200,
    }
    assert answer.fallback is not None and answer.fallback.step is not None
    assert answer.fallback.step.name == "answer.fallback"
    assert pipeline.step("search").on_error == "fail"
    assert pipeline.outputs["tokens"] == "{{ steps.answer.usage }}"
    assert pipeline.migration is None


def test_pipelines_and_steps_are_frozen() -> None:
    pipeline = load_pipeline(minimal())
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        pipeline.name = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        pipeline.steps[0].type = "other"  # type: ignore[misc]


def test_a_step_config_is_the_step_as_written() -> None:
    step = load_pipeline(example()).step("answer")
    config = step.config
    assert config == {
        "name": "answer",
        "type": "claude",
        "when": "{{ inputs.style }}",
        "on_error": "fallback",
        "fallback": {"step": {"name": "answer.fallback", "type": "claude",
                              "prompt": "Just answer {{ inputs.question }}"}},
        "prompt": ANSWER_PROMPT,
        "max_tokens": 200,
    }  # fmt: skip
    assert list(config)[:2] == ["name", "type"]
    config["prompt"] = "changed"
    assert step.config["prompt"] != "changed"


def test_step_config_applies_the_defaults_only_where_missing() -> None:
    pipeline = load_pipeline(
        with_steps(
            {"name": "plain", "type": "claude", "prompt": "p"},
            {"name": "own", "type": "claude", "prompt": "p", "provider": "x", "temperature": 1.0},
            {"name": "opt_out", "type": "claude", "prompt": "p", "provider": None, "model": None},
            {"name": "vars", "type": "set_variable", "variables": {"a": 1}},
            defaults={"provider": "simulated", "model": "m1", "options": {"temperature": 0.2,
                      "stop": ["\n"]}},
        )
    )  # fmt: skip
    assert pipeline.step_config("plain") == {
        "name": "plain", "type": "claude", "prompt": "p", "provider": "simulated",
        "model": "m1", "temperature": 0.2, "stop": ["\n"],
    }  # fmt: skip
    own = pipeline.step_config("own")
    assert (own["provider"], own["temperature"], own["model"]) == ("x", 1.0, "m1")
    opt_out = pipeline.step_config("opt_out")
    assert (opt_out["provider"], opt_out["model"]) == (None, None)
    accepted = {"variables"}
    assert pipeline.step_config("vars", accepted=accepted) == {
        "name": "vars", "type": "set_variable", "variables": {"a": 1}, "provider": "simulated",
        "model": "m1",
    }  # fmt: skip
    first = pipeline.step_config("plain")
    first["stop"].append("mutated")
    assert pipeline.defaults.options["stop"] == ["\n"]


def test_step_configs_pass_the_registry_validation() -> None:
    table = StepTable()
    for name, cls in BUILTIN_STEPS.items():
        table = table.with_entry(make_entry(name, cls, registered_at=0.0))
    pipeline = load_pipeline(example())
    for step in pipeline.steps:
        entry = table.require(step.type)
        meta = entry.metadata
        accepted = {*meta.required_fields, *meta.optional_fields}
        validated = validate_step(table, pipeline.step_config(step, accepted=accepted))
        assert validated["name"] == step.name
    answer = pipeline.step("answer")
    assert answer.fallback is not None and answer.fallback.step is not None
    fallback = pipeline.step_config(answer.fallback.step)
    assert fallback["provider"] == "simulated"
    assert validate_step(table, fallback)["name"] == "answer.fallback"
    with pytest.raises(StepValidationError, match="step 'remember', field 'temperature'"):
        validate_step(table, pipeline.step_config("remember"))  # without accepted=


def test_step_lookup_names_the_steps() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_pipeline(example()).step("answr")
    assert str(caught.value) == (
        "pipeline 'qa' has no step 'answr' (steps: search, answer, remember)"
    )


# -- validation errors ------------------------------------------------------------------------


def test_unknown_pipeline_fields_are_refused_with_a_suggestion() -> None:
    assert error(minimal(stepz=[])) == (
        "field 'stepz': not a pipeline field; did you mean 'steps'? (fields: name, "
        "description, version, requires, inputs, defaults, steps, outputs, workspace_dir, "
        "output_dir, checkpoint_enabled, checkpoint_dir, environment, metadata, global_vars, "
        "variables, gemini_functions)"
    )
    assert error(minimal(defaults={"temperature": 0.2})) == (
        "field 'defaults.temperature': not a defaults field; defaults of step fields go under "
        "options (fields: provider, model, options, failover, claude_options, claude_preset, "
        "gemini_model, gemini_token_budget, output_dir, continue_on_error)"
    )


def test_names_are_printable_text() -> None:
    load_pipeline({"name": "My QA (v2)", "steps": [{"name": "Step one: fetch", "type": "t"}]})
    load_pipeline(with_steps({"name": "_a.b-c", "type": "t"}, {"name": "9a", "type": "t"}))
    assert error({"name": " qa", "steps": [{"name": "a", "type": "t"}]}) == (
        "field 'name': a pipeline name ' qa' must be 1 to 200 printable characters, not "
        "starting or ending with a space"
    )
    assert error(with_steps({"name": "a\nb", "type": "t"})) == (
        "step 'a\\nb', field 'name': a step name 'a\\nb' must be 1 to 200 printable "
        "characters, not starting or ending with a space"
    )
    assert error(with_steps({"name": 3, "type": "t"})).endswith(
        "a step name must be a string, got int 3"
    )


def test_missing_and_wrong_fields_name_the_step_by_name_or_index() -> None:
    assert error({"steps": [{"name": "a", "type": "t"}]}) == "field 'name': is required"
    assert error(with_steps({"type": "t"})) == "step 'steps[0]', field 'name': is required"
    assert error(with_steps({"name": "a", "type": "t"}, {"name": "b"})) == (
        "step 'b', field 'type': is required"
    )
    assert error(with_steps({"name": "a", "type": ""})) == (
        "step 'a', field 'type': must not be empty"
    )
    assert error(with_steps("a")) == "step 'steps[0]': must be a mapping, got str 'a'"
    assert error(with_steps({"name": "a", "type": "t", 1: "x"})) == (
        "step 'a': field names must be strings, got int 1"
    )
    assert error(with_steps()) == "field 'steps': must list at least one step"
    assert error({"name": "qa", "steps": "a"}) == "field 'steps': must be a list, got str 'a'"
    assert error(minimal(version=1.0)) == (
        "field 'version': must be a string, got float 1.0; quote it in YAML"
    )


def test_two_problems_report_the_first_and_count_the_rest() -> None:
    assert error({"steps": [{"name": "a", "type": "t"}], "stepz": 1}) == (
        "field 'name': is required (and 1 more problem)"
    )


def test_duplicate_step_names_name_both_positions() -> None:
    message = error(with_steps({"name": "a", "type": "t"}, {"name": "b", "type": "t"},
                               {"name": "a", "type": "u"}))  # fmt: skip
    assert message == (
        "step 'a', field 'name': duplicate step name: steps[0] and steps[2] are both 'a'"
    )


def test_on_error_and_fallback_go_together() -> None:
    assert error(with_steps({"name": "a", "type": "t", "on_error": "retry"})) == (
        "step 'a', field 'on_error': must be 'fail', 'continue' or 'fallback', got 'retry'"
    )
    assert error(with_steps({"name": "a", "type": "t", "on_error": "fallback"})) == (
        "step 'a', field 'fallback': is required when on_error is 'fallback': give "
        "{step: {...}} or {provider: <name>}"
    )
    assert error(with_steps({"name": "a", "type": "t", "fallback": {"provider": "p"}})) == (
        "step 'a', field 'fallback': is only used with on_error: fallback (on_error is 'fail')"
    )
    both = {"step": {"type": "t"}, "provider": "p"}
    for fallback in ({}, both):
        step = {"name": "a", "type": "t", "on_error": "fallback", "fallback": fallback}
        assert error(with_steps(step)) == (
            "step 'a', field 'fallback': give exactly one of step (a step) or provider "
            "(a provider name)"
        )
    step = {"name": "a", "type": "t", "on_error": "fallback", "fallback": {"step": {"p": 1}}}
    assert error(with_steps(step)) == "step 'a', field 'fallback.step.type': is required"
    step = {"name": "a", "type": "t", "on_error": "fallback", "fallback": {"provder": "p"}}
    assert error(with_steps(step)) == (
        "step 'a', field 'fallback.provder': not a fallback field; did you mean 'provider'? "
        "(fields: step, provider)"
    )
    named = {"name": "a", "type": "t", "on_error": "fallback",
             "fallback": {"step": {"name": "plan_b", "type": "t"}}}  # fmt: skip
    fallback = load_pipeline(with_steps(named)).steps[0].fallback
    assert fallback is not None and fallback.step is not None
    assert fallback.step.name == "plan_b"
    by_provider = {"name": "a", "type": "t", "on_error": "fallback", "fallback": {"provider": "p"}}
    fallback = load_pipeline(with_steps(by_provider)).steps[0].fallback
    assert fallback is not None and (fallback.provider, fallback.step) == ("p", None)


def test_when_is_one_placeholder_or_a_boolean() -> None:
    for when in (True, False, "{{ inputs.go }}"):
        config = with_steps({"name": "a", "type": "t", "when": when},
                            inputs={"go": {"type": "boolean"}})  # fmt: skip
        assert load_pipeline(config).steps[0].when == when
    assert error(with_steps({"name": "a", "type": "t", "when": 1})) == (
        "step 'a', field 'when': must be a template such as '{{ steps.check.output.ok }}' or "
        "true/false, got int 1"
    )
    bare = with_steps({"name": "a", "type": "t"}, {"name": "b", "type": "t",
                      "when": "steps.a.output"})  # fmt: skip
    assert error(bare) == (
        "step 'b', field 'when': must be one placeholder such as '{{ steps.check.output.ok }}' "
        "(a false, 0, empty or null value skips the step) or true/false, got 'steps.a.output'; "
        "did you mean '{{ steps.a.output }}'?"
    )
    mixed = with_steps({"name": "a", "type": "t"}, {"name": "b", "type": "t",
                       "when": "yes {{ steps.a.output }}"})  # fmt: skip
    assert "got 'yes {{ steps.a.output }}'" in error(mixed)
    assert "did you mean" not in error(mixed)


def test_inputs_are_checked_when_declared() -> None:
    assert error(minimal(inputs={"q": {"type": "strin"}})) == (
        "field 'inputs.q.type': must be 'string', 'integer', 'number', 'boolean', 'list', "
        "'object' or 'any', got 'strin'"
    )
    assert error(minimal(inputs={"q": {"type": "integer", "default": "3"}})) == (
        "field 'inputs.q.default': the default must be an integer, got str '3'"
    )
    assert error(minimal(inputs={"q": {"default": 1, "required": True}})) == (
        "field 'inputs.q': has a default, so it cannot be required: drop one of the two"
    )
    assert error(minimal(inputs={"q": {"tpye": "string"}})) == (
        "field 'inputs.q.tpye': not an input field; did you mean 'type'? (fields: type, "
        "default, required, description, enum)"
    )
    assert error(minimal(inputs={"my q": {}})) == (
        "field 'inputs': an input name 'my q' must start with a letter or '_' and hold only "
        "letters, digits, '_' and '-'"
    )
    assert error(minimal(outputs={"r": 3})) == (
        "field 'outputs.r': must be a string, got int 3; quote it in YAML"
    )
    pipeline = load_pipeline(minimal(inputs={"q": None, "n": {"type": "integer", "default": None}}))
    assert pipeline.inputs["q"].type == "any" and pipeline.inputs["q"].is_required
    assert not pipeline.inputs["n"].is_required


def test_defaults_and_requirements_are_checked() -> None:
    assert error(minimal(defaults={"options": {"when": 1, "name": "x"}})) == (
        "field 'defaults.options': 'name', 'when' cannot be options: options are default "
        "values of a step type's own fields (provider and model have their own defaults)"
    )
    assert error(minimal(defaults={"provider": ""})) == (
        "field 'defaults.provider': must not be empty"
    )
    assert error(minimal(requires={"claude": ">>1"})) == (
        "field 'requires.claude': invalid version requirement '>>1': Invalid specifier: '>>1' "
        "(use PEP 440 such as '>=1.0,<2', or npm-style '^1.2' / '~1.2')"
    )
    assert error(minimal(requires={"claude": 1})) == (
        "field 'requires.claude': must be a string, got int 1; quote it in YAML"
    )
    assert load_pipeline(minimal(requires={"claude": "^1.0", "gemini": "~> 1.2"})).requires


# -- inputs at run time ---------------------------------------------------------------------


def typed() -> Pipeline:
    return load_pipeline(minimal(inputs={
        "q": {"type": "string"},
        "n": {"type": "integer", "default": 3},
        "x": {"type": "number", "required": False},
        "flag": {"type": "boolean", "default": False},
        "items": {"type": "list", "default": [1, 2]},
        "meta": {"type": "object", "default": {"k": "v"}},
        "free": {"required": False},
    }))  # fmt: skip


def run_error(given: Any) -> str:
    with pytest.raises(ConfigurationError) as caught:
        typed().resolve_inputs(given)
    return str(caught.value)


def test_resolve_inputs_fills_defaults_and_optional_ones() -> None:
    pipeline = typed()
    resolved = pipeline.resolve_inputs({"q": "hi"})
    assert resolved == {"q": "hi", "n": 3, "x": None, "flag": False, "items": [1, 2],
                        "meta": {"k": "v"}, "free": None}  # fmt: skip
    resolved["items"].append(3)
    assert pipeline.resolve_inputs({"q": "hi"})["items"] == [1, 2]
    full = {"q": "", "n": -1, "x": 2, "flag": True, "items": ("a",), "meta": {}, "free": object}
    assert pipeline.resolve_inputs(full) == full
    assert pipeline.resolve_inputs({"q": "a", "x": 0.5, "free": None})["x"] == 0.5


def test_resolve_inputs_is_strict_and_says_what_was_expected() -> None:
    assert run_error({}) == "pipeline 'qa': input 'q' (string) is required"
    assert run_error({"q": 1}) == "pipeline 'qa': input 'q' must be a string, got int 1"
    assert run_error({"q": "a", "n": "3"}) == (
        "pipeline 'qa': input 'n' must be an integer, got str '3'"
    )
    assert run_error({"q": "a", "n": True}) == (
        "pipeline 'qa': input 'n' must be an integer, got bool True"
    )
    assert run_error({"q": "a", "n": None}) == (
        "pipeline 'qa': input 'n' must be an integer, got NoneType None"
    )
    assert run_error({"q": None}) == "pipeline 'qa': input 'q' must be a string, got NoneType None"
    assert run_error({"q": "a", "x": "1.5"}) == (
        "pipeline 'qa': input 'x' must be a number, got str '1.5'"
    )
    assert run_error({"q": "a", "flag": "yes"}) == (
        "pipeline 'qa': input 'flag' must be a boolean, got str 'yes'"
    )
    assert run_error({"q": "a", "items": "ab"}) == (
        "pipeline 'qa': input 'items' must be a list, got str 'ab'"
    )
    assert run_error({"q": "a", "meta": []}) == (
        "pipeline 'qa': input 'meta' must be a mapping, got list []"
    )
    assert run_error([]) == "pipeline 'qa': inputs must be a mapping, got list"


def test_resolve_inputs_lists_the_known_inputs_for_unknown_ones() -> None:
    declared = (
        "q (string, required), n (integer, default 3), x (number, optional), flag (boolean, "
        "default False), items (list, default [1, 2]), meta (object, default {'k': 'v'}), "
        "free (any, optional)"
    )
    assert run_error({"q": "a", "flga": True}) == (
        f"pipeline 'qa': unknown input 'flga'; did you mean 'flag'? (inputs: {declared})"
    )
    assert run_error({"zz": 1, "yy": 2}) == (
        f"pipeline 'qa': unknown inputs 'zz', 'yy' (inputs: {declared})"
    )
    with pytest.raises(ConfigurationError, match=r"unknown input 'a' \(inputs: none\)"):
        load_pipeline(minimal()).resolve_inputs({"a": 1})


# -- JSON Schema ----------------------------------------------------------------------------


def test_the_json_schema_is_valid_and_accepts_the_examples() -> None:
    schema = Pipeline.model_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(example())
    assert validator.is_valid(minimal())
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["PipelineStep"]["additionalProperties"] is True
    bad = {
        "no name": {"steps": [{"name": "a", "type": "t"}]},
        "no steps": {"name": "qa", "steps": []},
        "bad on_error": with_steps({"name": "a", "type": "t", "on_error": "retry"}),
        "extra field": minimal(stepz=1),
        "bad input type": minimal(inputs={"q": {"type": "strin"}}),
        "step without type": with_steps({"name": "a"}),
    }
    for why, config in bad.items():
        assert not validator.is_valid(config), why
        with pytest.raises(StepValidationError):
            load_pipeline(config)


def test_pipeline_step_is_exported_as_the_step_model() -> None:
    pipeline = load_pipeline(minimal())
    assert isinstance(pipeline.steps[0], PipelineStep)


# -- references -----------------------------------------------------------------------------


def test_references_to_later_steps_name_both() -> None:
    config = example()
    config["steps"][0]["prompt"] = "{{ steps.answer.output }}"
    assert error(config) == (
        "step 'search', field 'prompt': steps.answer: step 'answer' (steps[1]) runs after "
        "step 'search' (steps[0]); a step reads only the steps before it"
    )


def test_every_kind_of_bad_reference_is_found_before_running() -> None:
    def with_prompt(prompt: str, field: str = "prompt") -> dict[str, Any]:
        config = example()
        config["steps"][1][field] = prompt
        return config

    assert error(with_prompt("{{ steps.serch.output }}")) == (
        "step 'answer', field 'prompt': steps.serch: no step 'serch' (steps: search, answer, "
        "remember)"
    )
    assert error(with_prompt("{{ steps.answer.output }}")) == (
        "step 'answer', field 'prompt': steps.answer: a step cannot read its own result"
    )
    assert error(with_prompt("{{ inputs.questoin }}")) == (
        "step 'answer', field 'prompt': inputs.questoin: no input 'questoin' (known: "
        "question, style)"
    )
    assert error(with_prompt("{{ inputs.question | upper }}")).startswith(
        "step 'answer', field 'prompt': bad template: '{{ inputs.question | upper }}': filters"
    )
    assert error(with_prompt("{{ steps.remember.output }}", "when")) == (
        "step 'answer', field 'when': steps.remember: step 'remember' (steps[2]) runs after "
        "step 'answer' (steps[1]); a step reads only the steps before it"
    )
    nested = with_prompt("x", "options")
    nested["steps"][1]["options"] = {"stop": ["a", "{{ inputs.nope }}"]}
    assert error(nested) == (
        "step 'answer', field 'options.stop[1]': inputs.nope: no input 'nope' (known: "
        "question, style)"
    )
    config = example()
    config["steps"][1]["fallback"]["step"]["prompt"] = "{{ steps.answer.text }}"
    assert error(config) == (
        "step 'answer', field 'fallback.step.prompt': steps.answer: a step cannot read its "
        "own result"
    )
    config = example()
    config["outputs"]["extra"] = "{{ steps.nope.output }}"
    assert error(config) == (
        "field 'outputs.extra': steps.nope: no step 'nope' (steps: search, answer, remember)"
    )


def test_what_may_be_referenced() -> None:
    config = example()
    config["steps"][2]["variables"] = {
        "all": "{{ steps.search.output.items.0 }}",
        "v": "{{ vars.set_at_run_time }}",
        "i": "{{ inputs }}",
    }
    config["steps"][2]["description"] = "not a template: {{ anything | goes }}"
    config["outputs"]["first"] = "{{ steps.search.text }}"
    check_references(load_pipeline(config))  # fmt: skip
    dotted = with_steps(
        {"name": "fetch.v2", "type": "t"},
        {"name": "use", "type": "t", "p": "{{ steps.fetch.v2.output }}"},
    )
    check_references(load_pipeline(dotted))  # fmt: skip


def test_check_references_works_on_a_pipeline_built_directly() -> None:
    config = example()
    config["steps"][0]["prompt"] = "{{ steps.remember.output }}"
    pipeline = Pipeline.model_validate(copy.deepcopy(config))  # the model alone: no check
    with pytest.raises(StepValidationError, match="runs after step 'search'"):
        check_references(pipeline)
    with pytest.raises(StepValidationError, match="runs after step 'search'"):
        load_pipeline(pipeline)
