"""migrate_pipeline: legacy pipelines (a safe-loaded YAML fixture) to the current schema,
the report, bad input, and the idempotence property."""

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
from otpy.steps.llm import BUILTIN_STEPS

FIXTURE = Path(__file__).with_name("legacy_pipelines.yaml")


@pytest.fixture(scope="module")
def pipelines() -> list[dict[str, Any]]:
    with FIXTURE.open() as file:
        return list(yaml.safe_load_all(file))


def by_name(result: MigrationResult) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in result.config["steps"]}


def entries(items: list[Change], step: str) -> dict[str, Change]:
    return {c.field: c for c in items if c.step == step}


def test_code_review_pipeline(pipelines: list[dict[str, Any]]) -> None:
    original = copy.deepcopy(pipelines[0])
    result = migrate_pipeline(pipelines[0])
    assert pipelines[0] == original  # the input is never changed
    assert result.config == {
        "name": "code_review",
        "description": "Analyse a module, then review and fix it",
        "steps": [
            {
                "name": "analyze", "type": "gemini", "model": "gemini-2.5-flash",
                "functions": ["evaluate_code_quality"], "max_tokens": 2048, "temperature": 0.3,
                "prompt": "Analyse this module for bugs:",
            },
            {
                "name": "review", "type": "claude",
                "when": "{{ steps.analyze.output.needs_review }}",
                "system": "You are a senior reviewer.\n\nBe concise.",
                "claude_options": {"max_turns": 5, "allowed_tools": ["Read", "Grep"]},
                "prompt": "Review using this analysis:\n{{ steps.analyze.output }}\n"
                "{{ steps.analyze.output.findings.critical }}",
            },
            {
                "name": "polish", "type": "claude_smart", "preset": "development",
                "prompt": "Polish the fix.", "claude_options": {"max_turns": 3},
            },
        ],
    }  # fmt: skip
    assert result.changes[0] == Change(
        None,
        "workflow",
        ["checkpoint_enabled", "description", "name", "steps", "workspace_dir"],
        None,
        "flattened the workflow wrapper: its fields are now top-level",
    )
    analyze = entries(result.changes, "analyze")
    assert analyze["prompt[1]"].level == "error"
    assert "lib/module.ex" in analyze["prompt[1]"].note and "inline" in analyze["prompt[1]"].note
    assert analyze["token_budget.max_output_tokens"].note == "moved to max_tokens"
    assert analyze["token_budget.top_p"].level == "warning"
    assert analyze["output_to_file"].new is None and analyze["role"].level == "warning"
    review = entries(result.changes, "review")
    assert "claude_options.max_turns" not in review  # an agent setting: kept
    assert review["claude_options.output_format"].level == "warning"
    assert review["claude_options.cwd"].note.startswith("removed: the run's workspace")
    assert {"claude_options.cwd", "condition"} <= set(review)
    assert review["condition"].new == "{{ steps.analyze.output.needs_review }}"
    assert entries(result.changes, "polish")["environment_aware"].level == "warning"
    assert [c.field for c in result.errors] == ["prompt[1]"]
    dropped = entries(result.changes, None)
    assert dropped["checkpoint_enabled"].level == "warning"
    assert "state store" in dropped["checkpoint_enabled"].note
    assert dropped["workspace_dir"].old == "./workspace"
    assert result.notes == []  # a gemini step takes functions (tool names)
    assert "step 'analyze', prompt[1]" in result.report()


def test_pipeline_ex_defaults_and_expressions() -> None:
    result = migrate_pipeline({
        "workflow": {
            "name": "p", "checkpoint_dir": "./ck",
            "defaults": {"gemini_model": "gemini-2.5-flash", "output_dir": "./out",
                         "options": {"temperature": 0.1}},
            "steps": [
                {"name": "a", "type": "claude", "prompt": "x"},
                {"name": "b", "type": "claude", "prompt": "y", "condition": "steps.a.ok"},
                {"name": "c", "type": "claude", "prompt": "z", "condition": "a.score > 3"},
            ],
        }
    })  # fmt: skip
    config = result.config
    assert "checkpoint_dir" not in config
    assert config["defaults"] == {"options": {"temperature": 0.1}}
    fields = {c.field for c in result.changes if c.step is None}
    assert {"defaults.gemini_model", "defaults.output_dir", "checkpoint_dir"} <= fields
    assert config["steps"][1]["when"] == "{{ steps.a.output.ok }}"
    assert config["steps"][2]["when"] == "a.score > 3"  # an expression: left for load to refuse
    assert migrate_pipeline(config).changes == []  # idempotent


def test_research_pipeline_covers_every_legacy_block(pipelines: list[dict[str, Any]]) -> None:
    result = migrate_pipeline(pipelines[1])
    steps = by_name(result)
    assert steps["chat"] == {
        "name": "chat", "type": "claude_session", "session_id": "research-1", "max_turns": 20,
        "system": "You are a research assistant.", "prompt": "Summarise the topic.",
    }  # fmt: skip
    assert steps["pull"] == {
        "name": "pull", "type": "claude_extract", "extract": "json",
        "prompt": "{{ steps.chat.output }}",
    }  # fmt: skip
    assert steps["many"] == {
        "name": "many", "type": "claude_batch", "max_concurrency": 3,
        "prompts": ["First question", "Second question"],
    }  # fmt: skip
    assert steps["sturdy"] == {
        "name": "sturdy", "type": "claude_robust", "max_attempts": 3, "prompt": "Answer reliably.",
    }  # fmt: skip
    assert steps["fan"]["instances"] == [
        {"prompt": "Approach A", "system": "Be bold."},
        {"prompt": "Approach B"},
    ]
    assert set(steps["typed"]) == {"name", "type", "schema", "prompt"}
    assert steps["remember"] == {
        "name": "remember",
        "type": "set_variable",
        "variables": {"topic": "otpy"},
    }
    dropped = {(c.step, c.field) for c in result.changes if c.level == "warning" and c.new is None}
    assert {
        ("chat", "session_config.persist"), ("pull", "preset"),
        ("pull", "extraction_config.include_metadata"), ("many", "batch_config.timeout_per_task"),
        ("many", "tasks[1].output_to_file"), ("sturdy", "retry_config.backoff_strategy"),
        ("fan", "parallel_tasks[0].claude_options.verbose"), ("typed", "validation_mode"),
        ("remember", "scope"),
    } <= dropped  # fmt: skip
    assert [(n.step, n.field, n.level) for n in result.notes] == [
        ("sturdy", "fallback_provider", "error")
    ]


def test_migrated_steps_validate_with_their_types(pipelines: list[dict[str, Any]]) -> None:
    noted = {("sturdy", "claude_robust")}
    for pipeline in pipelines[:2]:
        for step in migrate_pipeline(pipeline).config["steps"]:
            cls = BUILTIN_STEPS[step["type"]]
            if (step["name"], step["type"]) in noted:
                with pytest.raises(StepValidationError):
                    cls.validate(step)  # as the notes said
            else:
                assert cls.validate(step) == step
    sturdy = by_name(migrate_pipeline(pipelines[1]))["sturdy"]
    BUILTIN_STEPS["claude_robust"].validate({**sturdy, "fallback_provider": "backup"})


def test_a_current_pipeline_is_left_alone(pipelines: list[dict[str, Any]]) -> None:
    result = migrate_pipeline(pipelines[2])
    assert result.config == pipelines[2] and result.config is not pipelines[2]
    assert (result.changes, result.notes, result.changed, result.report()) == ([], [], False, "")


@pytest.mark.parametrize("index", [0, 1, 2])
def test_migrating_twice_changes_nothing(pipelines: list[dict[str, Any]], index: int) -> None:
    once = migrate_pipeline(pipelines[index])
    twice = migrate_pipeline(once.config)
    assert twice.config == once.config and twice.changes == []
    assert twice.notes == once.notes


def test_notes_for_unknown_fields_and_missing_types() -> None:
    result = migrate_pipeline(
        {
            "steps": [
                {"name": "a", "type": "claude", "prompt": "x", "weird": 1},
                {"name": "b", "type": "for_loop", "steps": []},
                {"type": "my_plugin", "output_to_file": "f", "role": "kept for plugins"},
            ]
        }
    )
    assert result.config["steps"][0]["weird"] == 1
    assert [(n.step, n.field, n.level) for n in result.notes] == [
        ("a", "weird", "warning"),
        ("b", "type", "error"),
    ]
    assert result.config["steps"][2] == {"type": "my_plugin", "role": "kept for plugins"}
    assert result.changes[0].step == "steps[2]"


def test_explicit_fields_win_over_legacy_ones() -> None:
    step = {
        "name": "s", "type": "claude", "prompt": "p", "system": "Mine", "temperature": 0.1,
        "claude_options": {"system_prompt": "Theirs"}, "token_budget": {"temperature": 0.9},
    }  # fmt: skip
    result = migrate_pipeline({"steps": [step]})
    migrated = result.config["steps"][0]
    assert (migrated["system"], migrated["temperature"]) == ("Mine", 0.1)
    notes = {c.field: c.note for c in result.changes}
    assert notes["claude_options.system_prompt"] == "removed: the step's own system ('Mine') wins"


def test_claude_continue_and_session_context_parts() -> None:
    prompt = [
        {"type": "session_context", "session_id": "x", "include_last_n": 3},
        {"type": "claude_continue", "new_prompt": "Go on."},
        {"type": "previous_response", "step": "a", "extract": "$.b", "summary": True},
    ]
    result = migrate_pipeline({"steps": [{"name": "s", "type": "claude", "prompt": prompt}]})
    assert result.config["steps"][0]["prompt"] == "Go on.\n{{ steps.a.output.b }}"
    levels = {c.field: c.level for c in result.changes}
    assert levels["prompt[0]"] == "error" and levels["prompt[1]"] == "warning"
    assert levels["prompt[2].summary"] == "warning"


PREVIOUS = {"type": "previous_response", "step": "b"}


@pytest.mark.parametrize(
    ("config", "step", "field"),
    [
        ([1, 2], None, None),
        ({"name": "x"}, None, "steps"),
        ({"steps": {"a": 1}}, None, "steps"),
        ({"steps": [{"name": "a", "type": "claude", "prompt": "x"}, "oops"]}, "steps[1]", None),
        ({"workflow": ["no"]}, None, "workflow"),
        ({"workflow": {"name": "a", "steps": []}, "name": "b"}, None, "name"),
        ({"steps": [{"name": "a", "claude_options": "fast"}]}, "a", "claude_options"),
        ({"steps": [{"type": "claude", "token_budget": 5}]}, "steps[0]", "token_budget"),
        ({"steps": [{"name": "a", "prompt": []}]}, "a", "prompt"),
        ({"steps": [{"name": "a", "prompt": ["text"]}]}, "a", "prompt[0]"),
        ({"steps": [{"name": "a", "prompt": [{"type": "static"}]}]}, "a", "prompt[0].content"),
        ({"steps": [{"name": "a", "prompt": [{"type": "shell"}]}]}, "a", "prompt[0].type"),
        ({"steps": [{"name": "a", "prompt": [{"type": "static", "content": 1}]}]}, "a",
         "prompt[0].content"),
        ({"steps": [{"name": "a", "prompt": [{**PREVIOUS, "step": None}]}]}, "a", "prompt[0].step"),
        (
            {"steps": [{"name": "a", "prompt": [PREVIOUS | {"extract": "x[0]"}]}]},
            "a", "prompt[0].extract",
        ),
        ({"steps": [{"name": "a", "type": "claude_batch", "tasks": "t"}]}, "a", "tasks"),
        ({"steps": [{"name": "a", "type": "claude_batch", "tasks": [{"id": 1}]}]}, "a", "tasks[0]"),
        ({"steps": [{"name": "a", "type": "claude_robust", "retry_config": {"max_retries": -1}}]},
         "a", "retry_config.max_retries"),
    ],
)  # fmt: skip
def test_bad_input_names_the_step_and_the_field(
    config: Any, step: str | None, field: str | None
) -> None:
    with pytest.raises(StepValidationError) as caught:
        migrate_pipeline(config)
    assert (caught.value.step, caught.value.field) == (step, field)


# -- the idempotence property --------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
paths = st.lists(names, min_size=1, max_size=3).map(".".join)
parts = st.one_of(
    st.builds(lambda text: {"type": "static", "content": text}, st.text(max_size=12)),
    st.builds(
        lambda step, path: (
            {"type": "previous_response", "step": step} | ({"extract": path} if path else {})
        ),
        names,
        st.none() | paths,
    ),
    st.builds(lambda path: {"type": "file", "path": path}, st.text(min_size=1, max_size=8)),
    st.builds(lambda text: {"type": "claude_continue", "new_prompt": text}, st.text(max_size=8)),
)
values = st.text(max_size=6) | st.integers(0, 50)
claude_keys = [
    "system_prompt", "append_system_prompt", "max_turns", "model", "session_id", "verbose",
    "allowed_tools", "cwd", "output_format", "something_new",
]  # fmt: skip
steps = st.fixed_dictionaries(
    {"name": names, "type": st.sampled_from([*BUILTIN_STEPS, "for_loop", "my_plugin"])},
    optional={
        "prompt": st.text(max_size=10) | st.lists(parts, min_size=1, max_size=4),
        "system": st.text(max_size=6),
        "claude_options": st.dictionaries(st.sampled_from(claude_keys), values, max_size=4),
        "token_budget": st.dictionaries(
            st.sampled_from(["max_output_tokens", "temperature", "top_p", "top_k"]),
            st.integers(1, 100),
            max_size=3,
        ),
        "condition": st.text(max_size=8),
        "output_to_file": st.text(max_size=5),
        "role": st.sampled_from(["brain", "muscle"]),
        "functions": st.lists(st.text(max_size=4), max_size=2),
        "weird": st.integers(),
        "session_config": st.dictionaries(
            st.sampled_from(["session_name", "max_turns", "persist"]), values, max_size=3
        ),
        "retry_config": st.dictionaries(
            st.sampled_from(["max_retries", "backoff_strategy"]), st.integers(0, 5), max_size=2
        ),
        "extraction_config": st.dictionaries(
            st.sampled_from(["format", "post_processing"]), st.sampled_from(["json", "text"])
        ),
        "tasks": st.lists(st.fixed_dictionaries({"id": names, "prompt": st.text(max_size=5)})),
        "parallel_tasks": st.lists(
            st.fixed_dictionaries(
                {"prompt": st.text(max_size=5)},
                optional={"claude_options": st.fixed_dictionaries({"system_prompt": st.text()})},
            ),
            max_size=3,
        ),
    },
)
pipelines_strategy = st.builds(
    lambda steps, wrapped: (
        {"workflow": {"name": "p", "steps": steps}} if wrapped else {"name": "p", "steps": steps}
    ),
    st.lists(steps, max_size=5),
    st.booleans(),
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
    assert twice.notes == once.notes
    assert "workflow" not in once.config
    for step in once.config["steps"]:
        assert not {"token_budget", "output_to_file", "condition"} & set(step)
        kept = step.get("claude_options", {})
        assert not kept or "claude_options" in BUILTIN_STEPS[step["type"]].metadata.optional_fields
        assert set(kept) <= {"allowed_tools", "disallowed_tools", "max_turns", "cwd"}
        assert not isinstance(step.get("prompt"), list)
