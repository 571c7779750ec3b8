"""pipeline_ex documents run unchanged (tests/pipelines/pipeline_ex, written from its format
docs): each file runs on the embedded runtime's simulated provider, and what every field
did is checked — prompts, conditions, loops, nested pipelines, data and file steps, the
LLM step types in their pipeline_ex forms, outputs, checkpoints, ignored fields."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import otpy
from otpy import Runtime
from otpy.errors import ConfigurationError
from otpy.pipelines import PipelineResult, StepEvent

HERE = Path(__file__).with_name("pipeline_ex")
FILES = sorted(path.name for path in HERE.glob("*.yaml"))


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding the documents and the workspaces they read."""
    shutil.copytree(HERE, tmp_path / "p")
    (tmp_path / "workspace" / "prompts").mkdir(parents=True)
    shutil.copy(HERE / "prompts" / "review.md", tmp_path / "workspace" / "prompts")
    (tmp_path / "ws" / "data").mkdir(parents=True)
    (tmp_path / "ws" / "data" / "people.csv").write_text("name,age\nAda,36\nBob,40\n")
    (tmp_path / "secret.txt").write_text("s3cret")
    project = tmp_path / "project"
    (project / "lib").mkdir(parents=True)
    (project / "tests").mkdir()
    (project / "lib" / "user.py").write_text(
        "import os\nfrom lib import db\n\n\ndef get_user(id):\n    return id\n\n\n"
        "def _hidden():\n    pass\n\n\nclass User:\n    pass\n"
    )
    (project / "lib" / "db.py").write_text("def connect():\n    pass\n")
    (project / "tests" / "test_user.py").write_text("from lib.user import get_user\n")
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def rt() -> Iterator[Runtime]:
    with otpy.start() as runtime:
        yield runtime


def run(rt: Runtime, work: Path, name: str, inputs: dict[str, Any] | None = None,
        **more: Any) -> PipelineResult:  # fmt: skip
    return rt.run_pipeline(work / "p" / name, inputs, timeout=60, **more)


def outputs(result: PipelineResult) -> dict[str, Any]:
    return {o.name: o.output for o in result.steps}


def statuses(result: PipelineResult) -> dict[str, str]:
    return {o.name: o.status for o in result.steps}


def test_every_document_compiles(rt: Runtime) -> None:
    assert len(FILES) >= 13
    for name in FILES:
        plan = rt.compile_pipeline(HERE / name)
        assert plan.pipeline.pipeline_ex, name


def test_claude_basics(rt: Runtime, work: Path) -> None:
    result = run(rt, work, "claude_basics.yaml")
    assert result.ok
    plan, implement = result.step("plan"), result.step("implement")
    assert plan.model == "gemini-2.5-flash"  # defaults.gemini_model
    assert "Plan the otpy release." in str(plan.output)  # global_vars
    assert implement.model == "sonnet"  # defaults.claude_model -> claude_options.model
    assert "Implement this plan: Simulated answer" in str(implement.output)
    written = work / "outputs" / "basics"
    assert (written / "plan.md").read_text() == plan.output
    assert (written / "implementation" / "result.md").read_text() == implement.output


def test_prompt_parts(rt: Runtime, work: Path) -> None:
    result = run(rt, work, "prompt_parts.yaml")
    assert result.ok, result.error
    review = str(result.step("review").output)
    assert "Review two issues in:" in review
    assert "Review this Python module" in review  # a file part, {LANGUAGE} filled
    tutor = str(result.step("tutor_again").output)
    assert "User: Teach me about supervisors." in tutor  # session_context


def test_conditions(rt: Runtime, work: Path) -> None:
    result = run(rt, work, "conditions.yaml")
    assert result.ok
    skipped = {name for name, status in statuses(result).items() if status == "skipped"}
    assert skipped == {"lt_false", "ends_false", "exists_false", "all_false", "not_false"}
    assert result.step("skipped_reader").output == "true true"


def test_for_loop(rt: Runtime, work: Path) -> None:
    events: list[StepEvent] = []
    result = run(rt, work, "for_loop.yaml", on_step=events.append)
    assert result.ok
    each = result.step("each_file").output
    assert [it["results"]["describe"] for it in each["iterations"]] == [
        "0/3 a.py first=true last=false",
        "1/3 b.py first=false last=false",
        "2/3 c.py first=false last=true",
    ]
    nested = result.step("each_category").output["iterations"]
    pairs = [
        it["results"]["pair"] for cat in nested for it in cat["results"]["each_item"]["iterations"]
    ]
    assert pairs == ["core/x@0.0", "core/y@0.1", "docs/z@1.0"]
    squares = result.step("literal").output["iterations"]
    assert [it["results"]["square"] for it in squares] == [1, 4, 9, 16]  # parallel, in order
    tolerant = result.step("tolerant").output
    assert tolerant["success"] is False and tolerant["completed_items"] == 2
    assert "intentionally failed" in tolerant["iterations"][1]["error"]
    assert result.step("summary").output == "3 files, last 2/3 c.py first=false last=true"
    items = [
        (e.step, e.item, e.items) for e in events if e.item is not None and e.step == "each_file"
    ]
    assert items == [("each_file", 1, 3), ("each_file", 2, 3), ("each_file", 3, 3)]


def test_while_loop(rt: Runtime, work: Path) -> None:
    result = run(rt, work, "while_loop.yaml")
    assert result.ok
    assert result.step("retry_until_done").output["iterations"] == 3
    assert result.step("bounded").output["max_iterations_reached"] is True
    assert result.step("after").output == "23 3 true"
    assert result.variables["attempt"] == 23


def test_three_levels_of_nested_pipelines(rt: Runtime, work: Path) -> None:
    result = run(rt, work, "nested_parent.yaml")
    assert result.ok, result.error
    assert result.step("middle").output == {
        "leaf_call": {"doubled": 4, "join": "2 names, first alpha"},  # an int and a list kept
        "total": 20,
    }
    assert result.step("inline").output == {"echo": "platform fast"}  # inherit_context
    assert result.step("report").output == "20 4 platform fast"


def test_data_transform(rt: Runtime, work: Path) -> None:
    result = run(rt, work, "data_transform.yaml")
    assert result.ok
    rows = result.step("enriched").output["rows"]
    assert [(r["name"], r["total"], r["category"]) for r in rows] == [
        ("Cy", 300, "fashion"),
        ("Ada", 250, "tech"),
    ]
    assert result.step("gold_average").output["average"] == 275.0
    assert result.step("report").output == "avg=275.0 first=Cy"


def test_file_ops_stay_in_the_workspace(rt: Runtime, work: Path) -> None:
    result = run(rt, work, "file_ops.yaml")
    assert statuses(result) == {
        "to_json": "ok", "backup": "ok", "listing": "ok", "check": "ok", "cleanup": "ok",
        "outside": "failed",
    }  # fmt: skip
    assert json.loads((work / "ws" / "data" / "people.json").read_text()) == [
        {"name": "Ada", "age": "36"},
        {"name": "Bob", "age": "40"},
    ]
    assert result.step("listing").output["files"] == ["data/people.json"]
    assert not (work / "ws" / "backup").exists()
    error = result.step("outside").error
    assert error is not None and error.type == "OutsideWorkspaceError"
    assert "'..' leads out of it" in error.message
    assert not (work / "ws" / "stolen.txt").exists()


def test_codebase_query(rt: Runtime, work: Path) -> None:
    result = run(rt, work, "codebase_query.yaml")
    assert result.ok
    survey = result.step("survey").output
    assert survey["sources"]["files"] == ["lib/db.py", "lib/user.py"]
    assert survey["tests_of_user"]["files"] == ["tests/test_user.py"]
    assert [f["name"] for f in survey["api"]["functions"]] == ["get_user", "User"]
    assert survey["deps"]["dependencies"]["direct"] == ["lib", "os"]
    assert survey["project"]["type"] == "python"
    notes = [it["results"]["note"] for it in result.step("for_each_source").output["iterations"]]
    assert notes == ["reviewing lib/db.py", "reviewing lib/user.py"]


def test_llm_step_types_in_their_pipeline_ex_forms(rt: Runtime, work: Path) -> None:
    result = run(rt, work, "llm_types.yaml")
    assert result.ok, result.error
    assert result.step("smart_default").metadata["preset"] == "analysis"  # defaults.claude_preset
    extract = result.step("extract")
    assert str(extract.output).startswith("# Extracted Content")
    assert extract.metadata["extraction_metadata"]["format"] == "markdown"
    batch = result.step("batch").output
    assert (batch["total_tasks"], batch["successful_tasks"]) == (2, 2)
    assert batch["text"].startswith("# Batch Processing Results")
    assert (work / "outputs" / "batch_two.md").read_text() == batch["batch_results"][1]["result"]
    assert result.step("robust").metadata["served_by"] == "primary"
    parallel = result.step("parallel").output
    assert set(parallel["individual_results"]) == {"api", "db"}
    assert "===[api]===" in parallel["combined_results"]
    assert set(result.step("structured").output) >= {"text"}  # the default schema
    typed = result.step("structured_typed").output
    assert isinstance(typed["title"], str) and isinstance(typed["score"], int)
    assert result.step("remember").metadata["scope"] == "session"


def test_outputs_schema_and_files(rt: Runtime, work: Path) -> None:
    result = run(rt, work, "outputs_schema.yaml")
    assert statuses(result) == {"good": "ok", "from_text": "ok", "bad": "failed"}
    assert json.loads((work / "out" / "reports" / "good.json").read_text()) == {
        "score": 8, "summary": "fine",
    }  # fmt: skip
    error = result.step("bad").error
    assert error is not None and "42 is greater than the maximum of 10" in error.message


def test_ignored_fields_are_named_once(
    rt: Runtime, work: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plan = rt.compile_pipeline(work / "p" / "inert_fields.yaml")
    migration = plan.pipeline.migration
    assert migration is not None
    fields = {note.field for note in migration.inert}
    assert {"hooks", "mcp_servers", "enable_skills", "agents", "enable_context_management",
            "memory_config", "claude_auth", "resource_limits", "environment.cost_alerts",
            "defaults.timeout_seconds"} <= fields  # fmt: skip
    assert {"claude_options.verbose", "role", "prompt[0].summary"} <= fields
    assert "claude_options.allowed_tools" not in fields  # the agent loop honours it
    with caplog.at_level("WARNING", logger="otpy"):
        result = rt.run_pipeline(plan)
    assert result.ok
    warnings = [r.getMessage() for r in caplog.records if "no effect in otpy" in r.getMessage()]
    assert len(warnings) == 1 and "hooks" in warnings[0]


def test_checkpoint_resume_after_a_failed_step(rt: Runtime, work: Path) -> None:
    inputs = {"run": "A"}
    first = run(rt, work, "checkpointed.yaml", inputs)
    assert first.status == "failed" and first.failed_step == "three"
    checkpoint = work / "checkpoints" / "checkpointed_latest.json"
    assert json.loads(checkpoint.read_text())["completed"] == 2
    with pytest.raises(ConfigurationError, match="other inputs"):
        run(rt, work, "checkpointed.yaml", {"run": "B"}, resume=True)
    (work / "ws" / "ready.flag").write_text("go")
    second = run(rt, work, "checkpointed.yaml", inputs, resume=True)
    assert second.ok
    assert [o.metadata.get("from_checkpoint", False) for o in second.steps] == [
        True, True, False, False,
    ]  # fmt: skip
    assert second.step("four").output == "first A then all_valid"
    assert not checkpoint.exists()  # a completed run removes it
    fresh = run(rt, work, "checkpointed.yaml", inputs, resume=True)
    assert fresh.ok and not any(o.metadata.get("from_checkpoint") for o in fresh.steps)
