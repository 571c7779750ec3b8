"""Tool-using steps on the simulated provider: a pipeline_ex-style step that asks for files
gets them written in its workspace (and nowhere else), each agent step type, sessions that
keep their tool history, limits, confinement, and the checks before a run."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import otpy
from otpy import Runtime
from otpy.errors import OverloadedError, StepValidationError
from otpy.pipelines import check_tools
from otpy.providers import SimulatedProvider
from otpy.steps.llm import ClaudeSessionStep

ROOT = Path(__file__).resolve().parent.parent.parent
WRITE = {"name": "Write", "arguments": {"file_path": "notes/todo.md", "content": "- ship it\n"}}


def script(*turns: Any) -> list[Any]:
    return list(turns)


@pytest.fixture
def rt() -> Iterator[Runtime]:
    config = {"name": f"agent-{uuid.uuid4().hex[:8]}", "plugins": False, "providers": {},
              "jobs_store": ":memory:"}  # fmt: skip
    with otpy.start(config) as runtime:
        yield runtime


def add(rt: Runtime, name: str = "sim", attempts: int = 3, **options: Any) -> SimulatedProvider:
    provider = SimulatedProvider(name, **options)
    limits = {"timeout": None, "max_attempts": attempts}
    rt.providers.register_provider(name, provider, limits=limits)
    return provider


def run(rt: Runtime, steps: list[dict[str, Any]], workspace: Path, **more: Any) -> Any:
    return rt.run_pipeline({"name": "p", "steps": steps, **more}, workspace=workspace, timeout=20)


def test_a_pipeline_ex_step_that_asks_for_a_file_writes_it_there_only(
    rt: Runtime, tmp_path: Path
) -> None:
    add(rt, tool_script=script({"calls": [WRITE]}, "Wrote notes/todo.md."))
    workspace = tmp_path / "ws"
    legacy = {"workflow": {"name": "todo", "steps": [{
        "name": "write", "type": "claude",
        "claude_options": {"allowed_tools": ["Write", "Read"], "max_turns": 4, "verbose": True},
        "prompt": [{"type": "static", "content": "Write the todo list"}],
    }]}}  # fmt: skip
    result = rt.run_pipeline(legacy, workspace=workspace, timeout=20)
    assert result.status == "completed", result.error
    step = result.step("write")
    assert step.output == "Wrote notes/todo.md."
    assert (workspace / "notes" / "todo.md").read_text() == "- ship it\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["notes", "todo.md", "ws"]
    assert step.metadata["files_changed"] == ["notes/todo.md"]
    turns = step.metadata["agent_turns"]
    assert [len(t["tool_calls"]) for t in turns] == [1, 0]
    assert turns[0]["tool_calls"][0]["output"] == "Created notes/todo.md (10 bytes)"
    assert step.tokens == sum(t["input_tokens"] + t["output_tokens"] for t in turns)


def test_gemini_functions_call_a_registered_python_tool(rt: Runtime, tmp_path: Path) -> None:
    add(rt, tool_script=script({"calls": [{"name": "rate", "arguments": {"currency": "EUR"}}]},
                               "1 EUR is 1.1 USD."))  # fmt: skip

    @rt.tools.register
    def rate(currency: str) -> float:
        """The exchange rate to USD."""
        return {"EUR": 1.1}[currency]

    result = run(rt, [{"name": "fx", "type": "gemini", "prompt": "EUR in USD?",
                       "functions": ["rate"], "max_turns": 3}], tmp_path)  # fmt: skip
    assert result.status == "completed", result.error
    assert result.step("fx").metadata["agent_turns"][0]["tool_calls"][0]["output"] == "1.1"
    assert result.step("fx").metadata["files_changed"] == []


def test_a_session_keeps_its_tool_history(rt: Runtime, tmp_path: Path) -> None:
    sim = add(rt, tool_script=script({"calls": [WRITE]}, "Written.", "It says ship it."))
    session = f"s-{uuid.uuid4().hex[:6]}"
    step = {"type": "claude_session", "session_id": session,
            "claude_options": {"allowed_tools": ["Write", "Read"]}}  # fmt: skip
    run(rt, [{**step, "name": "one", "prompt": "first: write it"}], tmp_path)
    history = ClaudeSessionStep.history(session)
    assert history[0]["assistant"] == "Written." and len(history[0]["messages"]) == 4
    result = run(rt, [{**step, "name": "two", "prompt": "second: what did you write?"}],
                 tmp_path)  # fmt: skip
    assert result.step("two").output == "It says ship it."
    sent = sim.requests[-1].messages
    assert [(m.role, bool(m.tool_calls), bool(m.tool_results)) for m in sent] == [
        ("user", False, False), ("assistant", True, False), ("user", False, True),
        ("assistant", False, False), ("user", False, False),
    ]  # fmt: skip
    assert sent[1].tool_calls[0].arguments["file_path"] == "notes/todo.md"
    ClaudeSessionStep.forget(session)


def test_claude_smart_system_prompts_and_claude_robust_fallback(
    rt: Runtime, tmp_path: Path
) -> None:
    primary = add(rt, "primary", 1, tool_script=script({"calls": [WRITE]}, "primary done"))
    backup = add(rt, "backup", tool_script=script({"calls": [WRITE]}, "backup done"))
    options = {"allowed_tools": ["Write"], "system_prompt": "Be exact.",
               "append_system_prompt": "Write files only."}  # fmt: skip
    result = run(rt, [{"name": "smart", "type": "claude_smart", "preset": "development",
                       "prompt": "go", "provider": "primary", "claude_options": options}],
                 tmp_path)  # fmt: skip
    assert result.step("smart").output == "primary done"
    assert primary.requests[-1].system == "Be exact.\n\nWrite files only."
    primary.inject(OverloadedError("busy", provider="primary"))
    result = run(
        rt,
        [
            {
                "name": "sturdy",
                "type": "claude_robust",
                "prompt": "go again",
                "provider": "primary",
                "max_attempts": 1,
                "fallback_provider": "backup",
                "claude_options": {"allowed_tools": ["Write"]},
            }
        ],
        tmp_path,
        defaults={"failover": False},
    )  # fmt: skip (else the gateway fails over per turn)
    sturdy = result.step("sturdy")
    assert sturdy.output == "backup done" and sturdy.metadata["served_by"] == "fallback"
    assert sturdy.metadata["files_changed"] == ["notes/todo.md"]
    assert backup.requests[0].tools[0].name == "Write"


def test_parallel_instances_each_in_their_own_folder(rt: Runtime, tmp_path: Path) -> None:
    add(rt, tool_script=script({"calls": [WRITE]}, "ok"))
    result = run(rt, [{
        "name": "fan", "type": "parallel_claude", "prompt": "write", "merge": "list",
        "claude_options": {"allowed_tools": ["Write"]},
        "instances": [{"claude_options": {"cwd": "api"}}, {"claude_options": {"cwd": "db"}},
                      {"prompt": "no tools here", "claude_options": {"allowed_tools": []}}],
    }], tmp_path)  # fmt: skip
    assert result.status == "completed", result.error
    fan = result.step("fan")
    assert (tmp_path / "api" / "notes" / "todo.md").exists()
    assert (tmp_path / "db" / "notes" / "todo.md").exists()
    assert fan.metadata["files_changed"] == ["notes/todo.md"]
    assert fan.metadata["agents"][2] is None and len(fan.metadata["agents"]) == 3


def test_max_turns_fails_the_step_and_says_what_changed(rt: Runtime, tmp_path: Path) -> None:
    add(rt, tool_script=script(*[{"calls": [WRITE]}] * 5))
    result = run(rt, [{"name": "loop", "type": "claude", "prompt": "go",
                       "claude_options": {"allowed_tools": ["Write"], "max_turns": 2}}],
                 tmp_path)  # fmt: skip
    outcome = result.step("loop")
    assert result.status == "failed" and outcome.error is not None
    assert outcome.error.type == "AgentLimitError"
    assert "reached max_turns (2)" in outcome.error.message
    assert "files changed: notes/todo.md" in outcome.error.message
    assert outcome.tokens > 0  # what the turns spent is still counted


def test_bash_asked_for_but_not_enabled_is_not_offered(
    rt: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sim = add(rt, tool_script=script({"calls": [{"name": "Bash", "arguments": {"command": "id"}}]},
                                     "no shell"))  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="otpy.steps.llm"):
        result = run(rt, [{"name": "sh", "type": "claude", "prompt": "run id",
                           "claude_options": {"allowed_tools": ["Read", "Bash"]}}],
                     tmp_path)  # fmt: skip
    assert [t.name for t in sim.requests[0].tools] == ["Read"]
    call = result.step("sh").metadata["agent_turns"][0]["tool_calls"][0]
    assert call["is_error"] and "no tool named 'Bash' here" in call["output"]
    assert "Bash is not offered: the runtime config does not enable it" in caplog.text


def test_a_cwd_outside_the_workspace_is_refused(rt: Runtime, tmp_path: Path) -> None:
    add(rt, tool_script=script({"calls": [WRITE]}, "ok"))
    result = run(rt, [{"name": "out", "type": "claude", "prompt": "go",
                       "claude_options": {"allowed_tools": ["Write"], "cwd": "../elsewhere"}}],
                 tmp_path / "ws")  # fmt: skip
    error = result.step("out").error
    assert error is not None and error.type == "StepValidationError"
    assert "claude_options.cwd" in error.message and not (tmp_path / "elsewhere").exists()


def test_tools_are_checked_before_a_run(rt: Runtime, tmp_path: Path) -> None:
    add(rt)
    rt.providers.register_provider("texty", SimulatedProvider("texty", capabilities=["text"]))
    yaml_text = ("name: p\nsteps:\n  - name: a\n    type: claude\n    prompt: hi\n"
                 "    claude_options:\n      allowed_tools: [Read, Wirte]\n")  # fmt: skip
    with pytest.raises(StepValidationError, match=r"no tool named 'Wirte'; did you mean 'Write'"):
        rt.compile_pipeline(yaml_text)
    with pytest.raises(StepValidationError, match="lacks the tools capability"):
        rt.compile_pipeline({"name": "p", "steps": [{
            "name": "a", "type": "claude", "prompt": "hi", "provider": "texty",
            "claude_options": {"allowed_tools": ["Read"]}}]})  # fmt: skip
    with pytest.raises(StepValidationError, match=r"claude_options\.max_turns"):
        rt.compile_pipeline({"name": "p", "steps": [{
            "name": "a", "type": "claude", "prompt": "hi",
            "claude_options": {"max_turns": 0}}]})  # fmt: skip
    plan = rt.compile_pipeline({"name": "p", "steps": [
        {"name": "a", "type": "claude", "prompt": "hi",
         "claude_options": {"allowed_tools": ["Read", "Edit", "Bash"],
                            "disallowed_tools": ["Edit"]}},
        {"name": "b", "type": "claude", "prompt": "no tools"},
    ]})  # fmt: skip
    (used,) = check_tools(plan, rt.tools)
    assert (used.step, used.tools, used.disabled) == ("a", ("Read",), ("Bash",))


def test_the_example_runs_offline_and_validate_lists_the_tools(tmp_path: Path) -> None:
    pipeline, config = ROOT / "examples/agent/pipeline.yaml", ROOT / "examples/agent/otpy.yaml"
    ran = subprocess.run(
        [sys.executable, "-m", "otpy", "run", str(pipeline), "--config", str(config), "--json"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    site = tmp_path / "workspace" / "site"
    assert "<title>Home</title>" in (site / "index.html").read_text()
    assert (site / "style.css").exists()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "workspace", "workspace/site", "workspace/site/index.html", "workspace/site/style.css"
    ]  # fmt: skip
    checked = subprocess.run(
        [sys.executable, "-m", "otpy", "validate", str(pipeline), "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[1:] == ["  tools of build: Write, Edit, Read, LS", "  tools of check: Read, Grep"]


def test_escape_attempts_from_a_step_are_refused_and_reported(rt: Runtime, tmp_path: Path) -> None:
    workspace, secret = tmp_path / "ws", tmp_path / "secret"
    secret.mkdir()
    (secret / "key.txt").write_text("s3cr3t")
    workspace.mkdir()
    (workspace / "planted").symlink_to(secret)
    outside = tmp_path / "outside.txt"
    attempts = [
        {"name": "Read", "arguments": {"file_path": "../../etc/passwd"}},
        {"name": "Read", "arguments": {"file_path": "/etc/passwd"}},
        {"name": "Write", "arguments": {"file_path": str(outside), "content": "x"}},
        {"name": "Read", "arguments": {"file_path": "planted/key.txt"}},
        {"name": "Write", "arguments": {"file_path": "planted/new.txt", "content": "x"}},
        {"name": "Grep", "arguments": {"pattern": "s3cr3t"}},
    ]
    add(rt, tool_script=script({"calls": attempts}, "I could not get out."))
    result = run(rt, [{"name": "escape", "type": "claude", "prompt": "get out",
                       "claude_options": {"allowed_tools": ["Read", "Write", "Grep"]}}],
                 workspace)  # fmt: skip
    calls = result.step("escape").metadata["agent_turns"][0]["tool_calls"]
    assert [c["is_error"] for c in calls] == [True] * 5 + [False]
    assert "'..' leads out of it" in calls[0]["output"]
    assert "an absolute path outside it" in calls[1]["output"]
    assert all("a symlink leads out of it" in c["output"] for c in calls[3:5])
    assert calls[5]["output"] == "no matches"  # the walk does not follow the link out
    assert not any("s3cr3t" in c["output"] for c in calls)
    assert not outside.exists() and sorted(p.name for p in secret.iterdir()) == ["key.txt"]
    assert result.step("escape").metadata["files_changed"] == []
