"""pipeline_ex documents that use tools: their workspace_dir is where the agent works, a
cwd under it is made relative to it, tool names otpy's agent lacks are named (not
refused), loop steps' tools are checked before the run, and declared gemini functions
are not taken for tools."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import otpy
from otpy import Runtime
from otpy.compat import migrate_pipeline
from otpy.errors import StepValidationError
from otpy.providers import SimulatedProvider

WRITE = {"name": "Write", "arguments": {"file_path": "notes.md", "content": "done\n"}}


@pytest.fixture
def rt() -> Iterator[Runtime]:
    config = {"name": f"pipex-{uuid.uuid4().hex[:8]}", "plugins": False, "providers": {},
              "jobs_store": ":memory:"}  # fmt: skip
    with otpy.start(config) as runtime:
        yield runtime


def add(rt: Runtime, **options: Any) -> SimulatedProvider:
    provider = SimulatedProvider("sim", **options)
    rt.providers.register_provider("sim", provider, limits={"timeout": None})
    return provider


def document(step: dict[str, Any], **workflow: Any) -> dict[str, Any]:
    return {"workflow": {"name": "tools", "steps": [step], **workflow}}


def test_the_agent_works_in_the_documents_workspace_dir_and_its_cwd(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    add(rt, tool_script=[{"calls": [WRITE]}, "ok"])
    step = {"name": "build", "type": "claude", "prompt": [{"type": "static", "content": "go"}],
            "claude_options": {"allowed_tools": ["Write"], "cwd": "./my_ws/backend"}}  # fmt: skip
    result = rt.run_pipeline(document(step, workspace_dir="./my_ws"), timeout=20)
    assert result.ok, result.error
    assert (tmp_path / "my_ws" / "backend" / "notes.md").read_text() == "done\n"
    migration = migrate_pipeline(document(step, workspace_dir="./my_ws"))
    (change,) = migration.changes
    assert (change.field, change.old, change.new) == (
        "claude_options.cwd", "./my_ws/backend", "backend",
    )  # fmt: skip


def test_tools_otpy_lacks_are_named_and_the_step_runs_without_them(
    rt: Runtime, tmp_path: Path
) -> None:
    add(rt)
    options = {"allowed_tools": ["Read", "WebSearch", "Search"], "disallowed_tools": ["Task"]}
    step = {"name": "look", "type": "claude", "prompt": "hi", "claude_options": options}
    migration = migrate_pipeline(document(step))
    notes = {n.field: n.note for n in migration.notes}
    assert notes["claude_options.allowed_tools[1]"].startswith("ignored: a Claude Code tool")
    assert notes["claude_options.allowed_tools[2]"].startswith("ignored: no tool of otpy")
    assert "claude_options.disallowed_tools[0]" in notes
    assert migration.config["steps"][0]["claude_options"]["allowed_tools"] == ["Read"]
    result = rt.run_pipeline(document(step), workspace=tmp_path, timeout=20)
    assert result.ok, result.error
    with pytest.raises(StepValidationError, match="no tool named 'WebSearch'"):
        rt.compile_pipeline({"name": "native", "steps": [{**step, "prompt": "hi"}]})


def test_a_loop_steps_tools_are_checked_before_the_run(rt: Runtime) -> None:
    add(rt)
    inner = {"name": "each", "type": "claude", "prompt": "{{loop.x}}",
             "claude_options": {"allowed_tools": ["Raed"]}}  # fmt: skip
    loop = {"name": "loop", "type": "for_loop", "iterator": "x", "data_source": [1],
            "steps": [inner]}  # fmt: skip
    with pytest.raises(StepValidationError) as caught:
        rt.compile_pipeline({"name": "native", "steps": [loop]})
    assert caught.value.step == "loop"
    assert caught.value.field == "steps[0].claude_options.allowed_tools"
    assert "Read" in str(caught.value)


def test_declared_gemini_functions_are_not_tools(rt: Runtime) -> None:
    add(rt, responses={"Rate": '{"score": 4}'})
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}}
    step = {"name": "rate", "type": "gemini", "functions": ["score_it"],
            "prompt": [{"type": "static", "content": "Rate it"}]}  # fmt: skip
    doc = document(step, gemini_functions={"score_it": {"description": "d", "parameters": schema}})
    result = rt.run_pipeline(doc, timeout=20)
    assert result.ok, result.error
    assert result.step("rate").output["score"] == 4
