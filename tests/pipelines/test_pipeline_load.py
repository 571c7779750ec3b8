"""Loading pipelines: sources, safe YAML, errors with file:line:column, pipeline_ex documents."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from otpy.errors import ConfigurationError, StepValidationError
from otpy.pipelines import Pipeline, load_pipeline

GOOD = """\
name: qa
inputs:
  question: {type: string}
steps:
  - name: answer
    type: claude
    prompt: "{{ inputs.question }}"
outputs:
  answer: "{{ steps.answer.output }}"
"""


def write(tmp_path: Path, text: str, name: str = "qa.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(source: Any) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_pipeline(source)
    assert not isinstance(caught.value, StepValidationError)
    return str(caught.value)


def step_error(source: Any) -> StepValidationError:
    with pytest.raises(StepValidationError) as caught:
        load_pipeline(source)
    return caught.value


# -- sources ----------------------------------------------------------------------------------


class PathLike(os.PathLike[str]):
    def __init__(self, path: Path) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return str(self.path)


def test_every_kind_of_source_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD)
    other = write(tmp_path, GOOD, "pipeline.txt")
    monkeypatch.chdir(tmp_path)
    loaded = [
        load_pipeline(path),
        load_pipeline(str(path)),
        load_pipeline("qa.yaml"),
        load_pipeline(PathLike(path)),
        load_pipeline(str(other)),  # any existing file
        load_pipeline(GOOD),
        load_pipeline({"name": "qa", "inputs": {"question": {"type": "string"}},
                       "steps": [{"name": "answer", "type": "claude",
                                  "prompt": "{{ inputs.question }}"}],
                       "outputs": {"answer": "{{ steps.answer.output }}"}}),
    ]  # fmt: skip
    assert all(p == loaded[0] for p in loaded)
    assert load_pipeline(loaded[0]) is loaded[0]
    flow = '{name: qa, steps: [{name: a, type: t, prompt: "{{ inputs.q }}"}], inputs: {q: {}}}'
    assert load_pipeline(flow).steps[0].fields == {"prompt": "{{ inputs.q }}"}
    write(tmp_path, "\ufeff" + GOOD, "bom.yaml")
    assert load_pipeline("bom.yaml") == loaded[0]


def test_unreadable_sources_are_configuration_errors(tmp_path: Path) -> None:
    assert config_error(str(tmp_path / "nope.yaml")) == (
        f"pipeline file {str(tmp_path / 'nope.yaml')!r} does not exist"
    )
    assert config_error(tmp_path / "nope") == (
        f"pipeline file {str(tmp_path / 'nope')!r} does not exist"
    )
    assert config_error(tmp_path) == f"{str(tmp_path)!r} is a directory, not a pipeline file"
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    assert config_error(latin) == (
        f"pipeline file {str(latin)!r} is not UTF-8 text (invalid continuation byte at byte 9)"
    )
    assert config_error(3) == "a pipeline source must be a path, YAML text or a mapping, got int"
    assert config_error("qa") == (
        "<text>: a pipeline must be a mapping with name and steps, got str 'qa' (and it names "
        "no existing file)"
    )
    assert config_error("x" * 5000).startswith("<text>: a pipeline must be a mapping")


# -- YAML -------------------------------------------------------------------------------------


def test_malformed_yaml_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "name: qa\nsteps:\n  - name: a\n    type: [t\n  - name: b\n")
    assert config_error(path) == (
        f"{path}:5:9: malformed YAML: expected ',' or ']', but got ':' (while parsing a flow "
        "sequence at line 4, column 11)"
    )
    assert config_error("name: qa\n  steps: x\n") == (
        "<text>:2:8: malformed YAML: mapping values are not allowed here"
    )
    assert config_error("name: 'qa\n") == (
        "<text>:2:1: malformed YAML: found unexpected end of stream (while scanning a quoted "
        "scalar at line 1, column 7)"
    )
    assert config_error("name: qa\n---\nname: qb\n") == (
        "<text>:2:1: malformed YAML: but found another document (expected a single document "
        "in the stream at line 1, column 1)"
    )
    assert config_error("name:\tqa\n\tsteps: []\n") == (
        "<text>:1:6: malformed YAML: found character '\\t' that cannot start any token"
    )
    # a lone surrogate: libyaml cannot even take the text; the Python loader says why
    assert config_error("name: q\ud800\nsteps: []\n").startswith(
        "<text>: malformed YAML: unacceptable character #xd800: special characters are not"
    )


@pytest.mark.parametrize(
    ("tag", "shown"),
    [
        ("!!python/object/apply:os.system", "!!python/object/apply:os.system"),
        ("!!python/object:otpy.pipelines.Pipeline", "!!python/object:otpy.pipelines.Pipeline"),
        ("!!python/name:os.system", "!!python/name:os.system"),
        ("!!python/module:os", "!!python/module:os"),
        ("!custom", "!custom"),
    ],
)
def test_object_tags_are_refused_with_their_position(tmp_path: Path, tag: str, shown: str) -> None:
    marker = tmp_path / "ran"
    path = write(tmp_path, f"name: qa\nsteps:\n  - name: a\n    type: {tag} ['touch {marker}']\n")
    assert config_error(path) == (
        f"{path}:4:11: refused YAML tag {shown!r}: a pipeline is plain YAML data (mappings, "
        "lists, strings, numbers, booleans, null); tags that build objects are never loaded"
    )
    assert not marker.exists()


def test_duplicate_keys_are_refused_but_merge_keys_work() -> None:
    assert config_error("name: qa\nsteps: []\nname: qb\n") == (
        "<text>:3:1: duplicate key 'name' (first at line 1); YAML would silently keep only "
        "the last one"
    )
    nested = "name: qa\nsteps:\n  - name: a\n    type: t\n    prompt: x\n    prompt: y\n"
    assert config_error(nested).startswith("<text>:6:5: duplicate key 'prompt' (first at line 5)")
    merged = (
        "name: qa\nbase: &base {type: claude, prompt: hi}\nsteps:\n  - <<: *base\n    name: a\n"
    )
    with pytest.raises(StepValidationError, match=r"field 'base': not a pipeline field"):
        load_pipeline(merged)  # YAML is fine; the anchor's key is no pipeline field
    steps = "name: qa\nsteps:\n  - &one {name: a, type: claude, prompt: hi}\n  - <<: *one\n"
    steps += "    name: b\n    prompt: override\n"
    loaded = load_pipeline(steps)
    assert loaded.steps[1].config == {"name": "b", "type": "claude", "prompt": "override"}


def test_the_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert config_error("- a\n- b\n") == (
        "<text>: a pipeline must be a mapping with name and steps, got list ['a', 'b']"
    )
    path = write(tmp_path, "")
    assert config_error(path) == f"{path}: the pipeline is empty (expected name and steps)"
    assert config_error("# only a comment\n") == (
        "<text>: the pipeline is empty (expected name and steps)"
    )
    assert config_error("42\n") == (
        "<text>: a pipeline must be a mapping with name and steps, got int 42"
    )


# -- schema and template errors say where ---------------------------------------------------


def test_schema_errors_name_step_field_and_position(tmp_path: Path) -> None:
    path = write(
        tmp_path, GOOD.replace("    type: claude\n", "    type: claude\n    on_error: retry\n")
    )
    error = step_error(path)
    assert str(error) == (
        "step 'answer', field 'on_error': must be 'fail', 'continue' or 'fallback', got "
        f"'retry' ({path}:7:5)"
    )
    assert (error.step, error.field) == ("answer", "on_error")
    assert str(step_error(GOOD.replace("    type: claude\n", ""))) == (
        "step 'answer', field 'type': is required (<text>:5:5)"
    )
    assert str(step_error(GOOD.replace("name: qa\n", "name: qa\nstepz: 1\n"))) == (
        "field 'stepz': not a pipeline field; did you mean 'steps'? (fields: name, "
        "description, version, requires, inputs, defaults, steps, outputs, workspace_dir, "
        "output_dir, checkpoint_enabled, checkpoint_dir, environment, metadata, global_vars, "
        "variables, gemini_functions) (<text>:2:1)"
    )
    assert str(step_error(GOOD.replace("{type: string}", "{type: text}"))) == (
        "field 'inputs.question.type': must be 'string', 'integer', 'number', 'boolean', "
        "'list', 'object' or 'any', got 'text' (<text>:3:14)"
    )
    assert str(step_error(GOOD.replace("name: qa\n", "name: qa\nversion: 1.0\n"))) == (
        "field 'version': must be a string, got float 1.0; quote it in YAML (<text>:2:1)"
    )
    unnamed = GOOD.replace("  - name: answer\n    type: claude", "  - type: claude")
    assert str(step_error(unnamed)) == "step 'steps[0]', field 'name': is required (<text>:5:5)"
    flow = "name: qa\nsteps:\n  - {name: a, type: t, on_error: fallback, fallback: {step: {}}}\n"
    assert str(step_error(flow)) == (
        "step 'a', field 'fallback.step.type': is required (<text>:3:55)"
    )


def test_template_errors_name_step_field_reference_and_position() -> None:
    later = GOOD.replace('"{{ inputs.question }}"', '"{{ steps.check.output }}"')
    later = later.replace("outputs:", "  - name: check\n    type: claude\n    prompt: hi\noutputs:")
    assert str(step_error(later)) == (
        "step 'answer', field 'prompt': steps.check: step 'check' (steps[1]) runs after step "
        "'answer' (steps[0]); a step reads only the steps before it (<text>:7:5)"
    )
    typo = GOOD.replace("steps.answer.output", "steps.answr.output")
    assert str(step_error(typo)) == (
        "field 'outputs.answer': steps.answr: no step 'answr' (steps: answer) (<text>:9:3)"
    )
    evaluated = GOOD.replace("{{ inputs.question }}", "{{ inputs.question.__class__ }}")
    assert str(step_error(evaluated)) == (
        "step 'answer', field 'prompt': bad template: '{{ inputs.question.__class__ }}': names "
        "starting with '__' are not allowed ('inputs.question.__class__'); a placeholder is "
        "a path such as {{ inputs.question }} or {{ steps.answer.output.title }}, or an "
        "expression such as {{ state.count + 1 }} (<text>:7:5)"
    )


def test_errors_from_a_dict_have_no_position() -> None:
    error = step_error({"name": "qa", "steps": [{"name": "a", "type": "t", "on_error": "x"}]})
    assert (
        str(error)
        == "step 'a', field 'on_error': must be 'fail', 'continue' or 'fallback', got 'x'"
    )


# -- legacy configs ----------------------------------------------------------------------------

LEGACY = """\
workflow:
  name: review
  description: Analyse then review
  steps:
    - name: analyze
      type: gemini
      token_budget: {max_output_tokens: 512, temperature: 0.3}
      prompt:
        - type: static
          content: "Analyse this:"
        - type: static
          content: some code
    - name: review
      type: claude
      claude_options:
        system_prompt: You review code.
        verbose: true
      prompt:
        - type: static
          content: "Review using:"
        - type: previous_response
          step: analyze
"""


def test_a_pipeline_ex_document_loads_as_it_is_with_its_report(tmp_path: Path) -> None:
    pipeline = load_pipeline(write(tmp_path, LEGACY))
    assert pipeline.name == "review" and pipeline.pipeline_ex and pipeline.open_inputs
    assert pipeline.step_names == ("analyze", "review")
    assert pipeline.step("analyze").fields == {
        "prompt": [
            {"type": "static", "content": "Analyse this:"},
            {"type": "static", "content": "some code"},
        ],
        "token_budget": {"max_output_tokens": 512, "temperature": 0.3},
    }  # the step types take pipeline_ex's fields as they are
    assert pipeline.step("review").fields["claude_options"] == {
        "verbose": True, "system_prompt": "You review code.",
    }  # fmt: skip
    migration = pipeline.migration
    assert migration is not None and migration.pipeline_ex
    assert [(c.step, c.field) for c in migration.inert] == [("review", "claude_options.verbose")]
    warning = migration.warning("review.yaml")
    assert warning is not None and warning.startswith(
        "review.yaml: 1 field of this document has no effect in otpy:"
    )
    assert load_pipeline(GOOD).migration is None


def test_a_loaded_pipeline_is_a_pipeline() -> None:
    assert isinstance(load_pipeline(GOOD), Pipeline)


def test_a_condition_is_compiled_with_its_position() -> None:
    path = LEGACY.replace(
        "      type: claude\n", "      type: claude\n      condition: analyze.ok\n"
    )
    assert load_pipeline(path).step("review").condition == "analyze.ok"
    bad = LEGACY.replace(
        "      type: claude\n", "      type: claude\n      condition: analyze.score >\n"
    )
    assert str(step_error(bad)) == (
        "step 'review', field 'condition': bad condition: expected a value, a path, a "
        "function call or '(', got the end at column 16 in 'analyze.score >' (<text>:15:7)"
    )


def test_the_pipeline_ex_research_document_loads_with_its_report() -> None:
    documents = (
        (Path(__file__).parent.parent / "compat" / "legacy_pipelines.yaml")
        .read_text()
        .split("\n---\n")
    )
    research = next(doc for doc in documents if "name: research" in doc)
    pipeline = load_pipeline(research)
    assert pipeline.step_names == ("chat", "pull", "many", "sturdy", "fan", "typed", "remember")
    assert pipeline.step("chat").fields["session_config"]["session_name"] == "research-1"
    assert pipeline.migration is not None and pipeline.migration.errors == []
