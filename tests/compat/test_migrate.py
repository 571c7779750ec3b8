"""migrate_pipeline: pipeline_ex documents made ready for otpy's schema (the workflow
wrapper, aliases, every ignored field named with what otpy does instead), bad input, and
the idempotence property."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from otpy.compat import Change, MigrationResult, migrate_pipeline
from otpy.errors import StepValidationError
from otpy.steps import validate_step
from otpy.steps._table import StepTable, make_entry
from otpy.steps.data import DATA_STEPS
from otpy.steps.flow import FLOW_STEPS
from otpy.steps.llm import BUILTIN_STEPS

FIXTURE = Path(__file__).with_name("legacy_pipelines.yaml")


@pytest.fixture(scope="module")
def pipelines() -> list[dict[str, Any]]:
    with FIXTURE.open() as file:
        return list(yaml.safe_load_all(file))


def by_name(result: MigrationResult) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in result.config["steps"]}


def entries(items: list[Change], step: str | None) -> dict[str, Change]:
    return {c.field: c for c in items if c.step == step}


def test_code_review_document(pipelines: list[dict[str, Any]]) -> None:
    original = copy.deepcopy(pipelines[0])
    result = migrate_pipeline(pipelines[0])
    assert pipelines[0] == original  # the input is never changed
    assert result.pipeline_ex
    (cwd,) = result.changes  # pipeline_ex's cwd is relative to where it runs, otpy's not
    assert (cwd.step, cwd.field, cwd.old, cwd.new) == ("review", "claude_options.cwd",
                                                       "./workspace", None)  # fmt: skip
    config = result.config
    assert config["checkpoint_enabled"] is True and config["workspace_dir"] == "./workspace"
    steps = by_name(result)
    assert steps["analyze"]["token_budget"] == {"max_output_tokens": 2048, "temperature": 0.3}
    assert steps["analyze"]["prompt"][1] == {"type": "file", "path": "lib/module.ex"}
    assert steps["analyze"]["output_to_file"] == "analysis.json"
    assert "role" not in steps["analyze"]
    assert steps["review"]["condition"] == "steps.analyze.needs_review"
    assert steps["review"]["claude_options"]["allowed_tools"] == ["Read", "Grep"]  # kept
    assert "cwd" not in steps["review"]["claude_options"]
    assert steps["polish"]["environment_aware"] is True
    notes = entries(result.notes, "analyze")
    assert notes["role"].note.startswith("ignored: informational")
    assert "functions" not in notes  # the tool names (or declared functions) are honoured
    assert "top_p" in notes["token_budget.top_p"].note
    review = entries(result.notes, "review")
    assert set(review) == {"claude_options.output_format"}  # the agent settings are honoured
    assert result.errors == []


def test_document_fields_aliases_and_features_otpy_lacks() -> None:
    document = {
        "workflow": {
            "name": "doc",
            "version": 2.0,
            "input": {"request": "default request"},
            "continue_on_error": True,
            "hooks": {"PreToolUse": []},
            "mcp_servers": {"fs": {}},
            "enable_skills": True,
            "claude_auth": {"provider": "anthropic"},
            "resource_limits": {"max_total_steps": 10},
            "environment": {"mode": "production", "debug_level": "basic"},
            "defaults": {"claude_model": "sonnet", "claude_output_format": "json",
                         "timeout_seconds": 30, "gemini_model": "flash", "bogus": 1},
            "stepz": 1,
            "steps": [{"name": "a", "type": "claude", "prompt": "hi"}],
        },
        "expected_output": {"x": 1},
    }  # fmt: skip
    result = migrate_pipeline(document)
    config = result.config
    assert config["version"] == "2.0"
    assert config["inputs"] == {"request": {"default": "default request"}}
    assert config["defaults"] == {
        "continue_on_error": True, "gemini_model": "flash",
        "claude_options": {"model": "sonnet", "output_format": "json"},
    }  # fmt: skip
    assert config["environment"] == {"mode": "production"}
    for gone in ("hooks", "mcp_servers", "enable_skills", "claude_auth", "stepz", "input"):
        assert gone not in config
    notes = entries(result.notes, None)
    assert "Claude Agent SDK feature" in notes["hooks"].note
    assert "configured in the runtime" in notes["claude_auth"].note
    assert "did you mean 'steps'?" in notes["stepz"].note
    assert notes["expected_output"].note == "ignored: outside the workflow mapping"
    assert "timeout" in notes["defaults.timeout_seconds"].note
    assert "not a defaults field" in notes["defaults.bogus"].note
    assert "environment.debug_level" in notes
    changed = {c.field: c for c in result.changes}
    assert set(changed) == {
        "version", "input", "continue_on_error", "defaults.claude_model",
        "defaults.claude_output_format",
    }  # fmt: skip
    warning = result.warning("doc.yaml")
    assert warning is not None and f"{len(result.inert)} fields of this document" in warning


def test_step_aliases_and_unknown_step_fields() -> None:
    document = {"workflow": {"name": "p", "steps": [
        {"name": "a", "type": "set_variable", "variable": "x", "value": 1, "streaming": {}},
        {"name": "b", "type": "claude", "prompt": "p", "continue_on_error": True,
         "timeout_ms": 5, "promt": "typo"},
        {"name": "c", "type": "claude_smart", "prompt": "p", "options": {"max_turns": 2}},
        {"name": "d", "type": "my_plugin", "whatever": 1},
        {"name": "e", "type": "claude_robust", "prompt": "p",
         "retry_config": {"fallback_action": "cached_response"}},
        {"name": "loop", "type": "for_loop", "iterator": "i", "data_source": [1],
         "batch_size": 10, "steps": [{"name": "in", "type": "claude", "prompt": "p", "role": "x"}]},
    ]}}  # fmt: skip
    result = migrate_pipeline(document)
    steps = by_name(result)
    assert steps["a"] == {"name": "a", "type": "set_variable", "variables": {"x": 1}}
    assert steps["b"] == {"name": "b", "type": "claude", "prompt": "p", "on_error": "continue"}
    assert steps["c"] == {"name": "c", "type": "claude_smart", "prompt": "p"}
    assert steps["d"] == {"name": "d", "type": "my_plugin", "whatever": 1}  # unknown type: kept
    assert steps["loop"]["steps"] == [{"name": "in", "type": "claude", "prompt": "p"}]
    assert "batch_size" not in steps["loop"]
    notes = {(c.step, c.field): c.note for c in result.notes}
    assert "did you mean 'prompt'?" in notes[("b", "promt")]
    assert notes[("c", "options")].startswith("ignored: not a claude_smart field")
    assert "graceful_degradation is used" in notes[("e", "retry_config.fallback_action")]
    assert ("loop", "steps[0].role") in notes and ("loop", "batch_size") in notes
    assert ("a", "streaming") in notes and ("b", "timeout_ms") in notes


def test_an_otpy_pipeline_keeps_unknown_fields_for_validation(
    pipelines: list[dict[str, Any]],
) -> None:
    current = pipelines[2]
    result = migrate_pipeline(current)
    assert result.config == current and not result.pipeline_ex
    assert result.changes == [] and result.notes == []
    typo = migrate_pipeline({"name": "p", "steps": [{"name": "a", "type": "claude", "promt": 1}]})
    assert typo.config["steps"][0]["promt"] == 1  # validation refuses it, with its position


def test_migrated_steps_validate_with_their_types(pipelines: list[dict[str, Any]]) -> None:
    types = {**BUILTIN_STEPS, **FLOW_STEPS, **DATA_STEPS}
    table = StepTable(
        entries={name: make_entry(name, cls, registered_at=0.0) for name, cls in types.items()}
    )
    for document in pipelines[:2]:
        for step in migrate_pipeline(document).config["steps"]:
            config = copy.deepcopy(step)
            for key in ("prompt",):
                if isinstance(config.get(key), list):
                    config[key] = "built when the step runs"
            for task in config.get("tasks", []) + config.get("parallel_tasks", []):
                if isinstance(task.get("prompt"), list):
                    task["prompt"] = "built"
            validate_step(table, config)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_migrating_twice_changes_nothing(pipelines: list[dict[str, Any]], index: int) -> None:
    once = migrate_pipeline(pipelines[index])
    twice = migrate_pipeline(once.config)
    assert twice.config == once.config
    assert twice.changes == []


@pytest.mark.parametrize(
    ("config", "step", "field"),
    [
        ("not a mapping", None, None),
        ({"workflow": "x"}, None, "workflow"),
        ({"workflow": {"name": "p"}}, None, "steps"),
        ({"name": "p", "steps": "x"}, None, "steps"),
        ({"name": "p", "steps": ["x"]}, "steps[0]", None),
        ({"workflow": {"name": "p", "steps": [
            {"name": "a", "type": "claude", "continue_on_error": "yes"}]}},
         "a", "continue_on_error"),
    ],
)  # fmt: skip
def test_bad_input_names_the_step_and_the_field(
    config: Any, step: str | None, field: str | None
) -> None:
    with pytest.raises(StepValidationError) as caught:
        migrate_pipeline(config)
    assert (caught.value.step, caught.value.field) == (step, field)


names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
values = st.one_of(st.integers(), st.text(max_size=6), st.booleans(), st.none())
steps = st.fixed_dictionaries(
    {"name": names, "type": st.sampled_from(
        ["claude", "gemini", "claude_smart", "claude_session", "claude_robust", "set_variable",
         "claude_batch", "parallel_claude", "for_loop", "my_plugin"])},
    optional={
        "prompt": st.one_of(st.text(max_size=8), st.lists(
            st.fixed_dictionaries({"type": st.just("static"), "content": st.text(max_size=5)},
                                  optional={"summary": st.booleans()}), min_size=1, max_size=3)),
        "claude_options": st.dictionaries(
            st.sampled_from(["max_turns", "allowed_tools", "system_prompt", "verbose"]), values),
        "token_budget": st.dictionaries(st.sampled_from(["max_output_tokens", "top_p"]), values),
        "condition": st.text(max_size=8),
        "continue_on_error": st.booleans(),
        "role": st.sampled_from(["brain", "muscle"]),
        "weird": st.integers(),
        "variable": names,
        "value": values,
        "session_config": st.dictionaries(
            st.sampled_from(["session_name", "max_turns", "persist"]), values, max_size=3),
        "retry_config": st.dictionaries(
            st.sampled_from(["max_retries", "fallback_action"]), st.integers(0, 5), max_size=2),
        "tasks": st.lists(st.fixed_dictionaries({"id": names, "prompt": st.text(max_size=5)})),
    },
)  # fmt: skip
pipelines_strategy = st.builds(
    lambda steps, wrapped, extra: (
        {"workflow": {"name": "p", "steps": steps, **extra}}
        if wrapped
        else {"name": "p", "steps": steps}
    ),
    st.lists(steps, max_size=5),
    st.booleans(),
    st.dictionaries(st.sampled_from(["hooks", "metadata", "input", "version", "zz"]), values),
)


@settings(max_examples=300, deadline=None)
@given(pipelines_strategy)
def test_migration_is_idempotent_and_never_mutates(pipeline: dict[str, Any]) -> None:
    before = copy.deepcopy(pipeline)
    once = migrate_pipeline(pipeline)
    assert pipeline == before
    twice = migrate_pipeline(once.config)
    assert twice.config == once.config
    assert twice.changes == []
    assert "workflow" not in once.config
    for step in once.config["steps"]:
        assert "role" not in step
        if step["type"] != "claude_batch":  # claude_batch has its own continue_on_error
            assert "continue_on_error" not in step
        if step["type"] == "set_variable":
            assert "variable" not in step
        if once.pipeline_ex and step["type"] != "my_plugin":
            assert "weird" not in step
