"""The LLM step types with pipeline_ex's fields and semantics: claude_options and
token_budget, claude_smart's default preset, claude_extract's defaults, claude_batch's
tasks, parallel_claude's parallel_tasks, claude_session's session_config, claude_robust's
retry_config and fallback actions, set_variable's scopes."""

from __future__ import annotations

from typing import Any

import pytest
from gateways import Gateway

from otpy.errors import AllOptionsFailed, AuthenticationError, ServerError, StepValidationError
from otpy.providers import SimulatedProvider
from otpy.state import LocalState
from otpy.steps import Step, StepContext
from otpy.steps.llm import (
    PRESETS,
    ClaudeBatchStep,
    ClaudeExtractStep,
    ClaudeRobustStep,
    ClaudeSessionStep,
    ClaudeSmartStep,
    ClaudeStep,
    GeminiStep,
    ParallelClaudeStep,
    SetVariableStep,
)
from otpy.testing import FakeClock, wait_until
from otpy.workspace import Workspace
from support import InThread


def run(step_cls: type[Step], config: dict[str, Any], gateway: Gateway, **context: Any) -> Any:
    checked = step_cls.validate(config)
    return step_cls().execute(checked, gateway.context(**context))


def test_claude_options_shape_the_request_and_unknown_keys_are_kept() -> None:
    sim = SimulatedProvider("sim")
    options = {"system_prompt": "You review.", "append_system_prompt": "Be brief.",
               "model": "sonnet", "max_turns": 3, "permission_mode": "plan",
               "some_future_option": {"x": 1}}  # fmt: skip
    config = {"name": "plain", "type": "claude", "prompt": "hi", "claude_options": options}
    result = run(ClaudeStep, config, Gateway(sim))
    (request,) = sim.requests
    assert (request.system, request.model) == ("You review.\n\nBe brief.", "sonnet")
    assert request.tools == () and "agent_turns" not in result.metadata  # no tools allowed
    explicit = {**config, "system": "Mine.", "model": "m"}
    run(ClaudeStep, explicit, Gateway(sim))
    assert (sim.requests[-1].system, sim.requests[-1].model) == ("Mine.", "m")
    with pytest.raises(StepValidationError, match=r"claude_options\.max_turns"):
        ClaudeStep.validate({**config, "claude_options": {"max_turns": 0}})


def test_gemini_declared_functions_give_the_call_arguments() -> None:
    schema = {"type": "object", "properties": {"score": {"type": "integer"}},
              "required": ["score"]}  # fmt: skip
    sim = SimulatedProvider("sim", responses={"Judge": '{"score": 7}'})
    declared = {"evaluate": {"description": "Score it", "parameters": schema}}
    config = {"name": "judge", "type": "gemini", "prompt": "Judge this code",
              "functions": ["evaluate"], "gemini_functions": declared}  # fmt: skip
    result = run(GeminiStep, config, Gateway(sim))
    assert sim.requests[0].response_schema == schema and sim.requests[0].tools == ()
    assert result.output["score"] == 7
    assert result.output["function_calls"] == [{"name": "evaluate", "arguments": {"score": 7}}]
    assert result.metadata["function"] == "evaluate"


def test_token_budget_shapes_a_gemini_request() -> None:
    sim = SimulatedProvider("sim")
    budget = {"max_output_tokens": 64, "temperature": 0.1, "top_k": 40}
    run(GeminiStep, {"type": "gemini", "prompt": "p", "token_budget": budget}, Gateway(sim))
    assert (sim.requests[0].max_tokens, sim.requests[0].temperature) == (64, 0.1)


def test_claude_smart_defaults_to_development() -> None:
    sim = SimulatedProvider("sim")
    result = run(ClaudeSmartStep, {"type": "claude_smart", "prompt": "p"}, Gateway(sim))
    assert result.metadata["preset"] == "development"
    assert sim.requests[0].system == PRESETS["development"].system
    options = {"system_prompt": "Override."}
    run(ClaudeSmartStep, {"type": "claude_smart", "prompt": "p", "preset": "chat",
                          "claude_options": options}, Gateway(sim))  # fmt: skip
    assert sim.requests[1].system == "Override."
    assert sim.requests[1].temperature == PRESETS["chat"].temperature


def test_claude_extract_defaults_and_extraction_config() -> None:
    answer = "Summary.\n- first point\n- second point\nSee https://example.com/x for more."
    sim = SimulatedProvider("sim", responses={"Analyse": answer})
    plain = run(ClaudeExtractStep, {"type": "claude_extract", "prompt": "Analyse"}, Gateway(sim))
    assert plain.output == plain.text == answer  # format text: as it is
    assert plain.metadata["preset"] == "analysis"
    assert sim.requests[0].system == PRESETS["analysis"].system
    config = {
        "type": "claude_extract", "prompt": "Analyse",
        "extraction_config": {"format": "structured", "post_processing": ["extract_links"],
                              "include_metadata": True},
    }  # fmt: skip
    result = run(ClaudeExtractStep, config, Gateway(sim))
    assert result.output == (
        f"## Extracted Content\n\n{answer}\n\n## Links Extracted\n- https://example.com/x"
    )
    short = {**config, "extraction_config": {"format": "summary", "max_summary_length": 12}}
    assert run(ClaudeExtractStep, short, Gateway(sim)).output == "Summary.\n..."
    assert result.metadata["extraction_metadata"]["original_length"] == len(answer)
    as_json = {**config, "extraction_config": {"format": "json"}}
    assert run(ClaudeExtractStep, as_json, Gateway(sim)).output == (
        '{"content": "' + answer.replace("\n", "\\n") + '", "format": "json"}'
    )


def test_claude_batch_tasks_keep_going_and_fail_only_when_all_fail(tmp_path: Any) -> None:
    sim = SimulatedProvider("sim")
    ws = Workspace(tmp_path / "ws")
    ws.write_text("code.py", "print('x')")
    out = Workspace(tmp_path / "out")
    sim.inject(ServerError("down", provider="sim", status=500))
    config = {
        "name": "batch", "type": "claude_batch", "batch_config": {"max_parallel": 1},
        "tasks": [{"id": "a", "prompt": "first"}, {"id": "b", "file": "code.py",
                  "output_to_file": "b.md"}, {"prompt": "third"}],
    }  # fmt: skip
    result = run(ClaudeBatchStep, config, Gateway(sim), workspace=ws, output_dir=out)
    batch = result.output
    assert [r["status"] for r in batch["batch_results"]] == ["error", "success", "success"]
    assert [r["task_id"] for r in batch["batch_results"]] == ["a", "b", "task_2"]
    assert "print('x')\nAnalyze this file" in sim.requests[1].prompt
    assert (tmp_path / "out" / "b.md").read_text() == batch["batch_results"][1]["result"]
    assert batch["failed_tasks"] == 1 and "**Status**: ERROR" in batch["text"]
    for _ in range(3):
        sim.inject(ServerError("down", provider="sim", status=500))
    with pytest.raises(AllOptionsFailed):
        run(ClaudeBatchStep, {**config, "tasks": config["tasks"][:1] * 3}, Gateway(sim))


def test_parallel_claude_tasks() -> None:
    sim = SimulatedProvider("sim")
    config = {"type": "parallel_claude", "parallel_tasks": [
        {"id": "api", "prompt": "Design the API", "claude_options": {"system_prompt": "API"}},
        {"id": "db", "prompt": "Design the DB"},
    ]}  # fmt: skip
    result = run(ParallelClaudeStep, config, Gateway(sim))
    assert set(result.output["individual_results"]) == {"api", "db"}
    assert result.output["combined_results"].startswith("\n===[api]===\n")
    systems = {r.prompt: r.system for r in sim.requests}
    assert systems["Design the API"] == "API"


def test_claude_session_takes_pipeline_ex_session_config() -> None:
    store = LocalState(session_id="pex-sessions")
    session_step = ClaudeSessionStep.using(store)
    sim = SimulatedProvider("sim")
    config = {"name": "My tutor", "type": "claude_session", "prompt": "one",
              "session_config": {"session_name": "tutor-1", "max_turns": 1}}  # fmt: skip
    run(session_step, config, Gateway(sim))
    run(session_step, {**config, "prompt": "two"}, Gateway(sim))
    assert [t["user"] for t in session_step.history("tutor-1")] == ["two"]  # max_turns 1
    unnamed = {"name": "My tutor", "type": "claude_session", "prompt": "x"}
    result = run(session_step, unnamed, Gateway(sim))
    assert result.metadata["session_id"] == "My_tutor"  # the step's name, made safe


ROBUST = {"name": "sturdy", "type": "claude_robust", "prompt": "Answer.",
          "retry_config": {"max_retries": 2, "backoff_strategy": "linear",
                           "base_delay_ms": 1000}}  # fmt: skip


def test_robust_retries_matching_errors_with_its_backoff(clock: FakeClock) -> None:
    sim = SimulatedProvider("sim")
    for _ in range(2):
        sim.inject(ServerError("boom", provider="sim", status=503))
    caller = InThread(run, ClaudeRobustStep, ROBUST, Gateway(sim), clock=clock)
    clock.wait_for_sleepers(1)
    assert sim.calls == 1
    clock.advance(0.9)
    assert sim.calls == 1  # linear: 1 s before the second attempt
    clock.advance(0.1)
    wait_until(lambda: sim.calls == 2)
    clock.wait_for_sleepers(1)
    clock.advance(2.0)  # then 2 s
    result = caller.result()
    assert result.metadata["served_by"] == "primary" and sim.calls == 3
    assert result.metadata["primary_attempts"] == 3


@pytest.mark.parametrize(
    ("action", "served_by"),
    [("graceful_degradation", "degraded"), ("emergency_response", "degraded"),
     ("simplified_prompt", "simplified_prompt"), ("some_unknown_action", "degraded")],
)  # fmt: skip
def test_robust_fallback_actions(action: str, served_by: str) -> None:
    sim = SimulatedProvider("sim")
    sim.inject(AuthenticationError("bad key", provider="sim", status=401))  # not retried
    config = {**ROBUST, "retry_config": {"fallback_action": action}}
    result = run(ClaudeRobustStep, config, Gateway(sim), clock=FakeClock())
    assert result.metadata["served_by"] == served_by
    if served_by == "degraded":
        assert result.metadata["degraded"] is True and "bad key" in result.output
    else:
        assert sim.requests[-1].prompt == "Provide a brief, simple response for: sturdy"


def test_robust_fail_action_names_every_failure() -> None:
    sim = SimulatedProvider("sim")
    sim.inject(AuthenticationError("bad key", provider="sim", status=401))
    config = {**ROBUST, "retry_config": {"fallback_action": "fail"}}
    with pytest.raises(AllOptionsFailed, match=r"primary any provider \(1 attempt\)"):
        run(ClaudeRobustStep, config, Gateway(sim), clock=FakeClock())


def test_set_variable_scopes() -> None:
    context = StepContext(local_variables={})
    SetVariableStep().execute(SetVariableStep.validate(
        {"type": "set_variable", "variables": {"g": 1}}), context)  # fmt: skip
    SetVariableStep().execute(SetVariableStep.validate(
        {"type": "set_variable", "variables": {"s": 2}, "scope": "session"}), context)  # fmt: skip
    SetVariableStep().execute(SetVariableStep.validate(
        {"type": "set_variable", "variables": {"l": 3}, "scope": "loop"}), context)  # fmt: skip
    assert (context.variables, context.session_variables, context.local_variables) == (
        {"g": 1}, {"s": 2}, {"l": 3},
    )  # fmt: skip
    with pytest.raises(Exception, match="scope"):
        SetVariableStep.validate({"type": "set_variable", "variables": {"x": 1}, "scope": "x"})
