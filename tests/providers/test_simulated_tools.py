"""The simulated provider's scripted tool calls: a pure function of the request (the number
of assistant turns so far picks the turn), keyed by the task, offline agents end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from otpy.agent import BUILTIN_TOOLS, ToolContext, run_agent
from otpy.errors import ConfigurationError
from otpy.providers import (
    CompletionRequest,
    Message,
    SimulatedProvider,
    ToolCall,
    ToolResult,
    ToolSpec,
)
from otpy.workspace import Workspace

TOOLS = (ToolSpec(name="Write"), ToolSpec(name="LS"))


def ask(*messages: Message, tools: tuple[ToolSpec, ...] = TOOLS) -> CompletionRequest:
    return CompletionRequest(messages=messages, tools=tools)


def test_turn_k_answers_a_conversation_with_k_assistant_turns() -> None:
    sim = SimulatedProvider(tool_script=[
        {"text": "Listing.", "calls": [{"name": "LS", "arguments": {"path": "."}}]},
        "All done.",
    ])  # fmt: skip
    first = sim.complete(ask(Message(role="user", content="go")))
    assert first.text == "Listing." and first.stop_reason == "tool_use"
    assert first.tool_calls == (ToolCall(id="toolu_sim_0_0", name="LS", arguments={"path": "."}),)
    assert first.message().tool_calls == first.tool_calls
    again = sim.complete(ask(Message(role="user", content="go")))
    assert again == first  # a retry of the same turn gets the same answer
    result = Message(
        role="user", tool_results=(ToolResult(call_id="toolu_sim_0_0", name="LS", content="a"),)
    )
    second = sim.complete(ask(Message(role="user", content="go"), first.message(), result))
    assert (second.text, second.tool_calls, second.stop_reason) == ("All done.", (), "end_turn")
    past = ask(Message(role="user", content="go"), first.message(), result, second.message(),
               Message(role="user", content="and now?"))  # fmt: skip
    assert sim.complete(past).text.startswith("Simulated answer (sim-1) to: and now?")
    plain = CompletionRequest(prompt="go")  # no tools offered: the script does not apply
    assert plain.tools == () and sim.complete(plain).text.startswith("Simulated answer")


def test_keyed_by_the_first_user_turn_and_as_a_callable() -> None:
    sim = SimulatedProvider(tool_script={
        "greeting": [{"calls": [{"name": "Write", "arguments": {"file_path": "hi.txt"}}]}],
        "listing": [{"calls": [{"name": "LS"}]}],
    })  # fmt: skip
    asked = sim.complete(ask(Message(role="user", content="Write the GREETING file")))
    assert asked.tool_calls[0].name == "Write"
    listing = sim.complete(ask(Message(role="user", content="do a listing")))
    assert listing.tool_calls[0].name == "LS"
    assert sim.complete(ask(Message(role="user", content="other"))).tool_calls == ()
    by_call = SimulatedProvider(tool_script=lambda request: {"calls": [{"name": "LS"}]}
                                if len(request.messages) < 3 else None)  # fmt: skip
    assert by_call.complete(ask(Message(role="user", content="x"))).tool_calls[0].name == "LS"


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        ("calls", "a list of turns, a mapping of them, or a callable"),
        ([{"calls": {"name": "LS"}}], r"tool_script\[0\].calls must be"),
        ([{"call": []}], "a text or a mapping of text and calls"),
        ([{"calls": [{"name": 3}]}], r"calls\[0\] must be"),
        ({"": ["x"]}, "non-empty string keys"),
    ],
)
def test_bad_scripts_are_configuration_errors(script: object, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        SimulatedProvider(tool_script=script)  # type: ignore[arg-type]


def test_from_a_config_an_offline_agent_writes_its_file(tmp_path: Path) -> None:
    sim = SimulatedProvider.from_config({"tool_script": [
        {"calls": [{"name": "Write", "arguments": {"file_path": "docs/hello.md",
                                                     "content": "# Hello\n"}}]},
        "Wrote docs/hello.md.",
    ]})  # fmt: skip
    result = run_agent(
        sim.complete,
        CompletionRequest(prompt="Write a hello page"),
        [BUILTIN_TOOLS["Write"]],
        context=ToolContext(workspace=Workspace(tmp_path)),
    )
    assert result.text == "Wrote docs/hello.md." and result.files_changed == ("docs/hello.md",)
    assert (tmp_path / "docs" / "hello.md").read_text() == "# Hello\n"
    assert all(turn.usage.output_tokens > 0 for turn in result.turns)
    assert sim.statistics().completed == 2
