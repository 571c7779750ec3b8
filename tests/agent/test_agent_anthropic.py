"""The agent loop on AnthropicProvider through the real ``anthropic`` SDK, against the fake
Messages API on 127.0.0.1 and behind a ProviderRegistry's guard: a multi-turn tool exchange
(read a file, edit it, answer), parallel calls in one turn, a tool error fed back, max_turns,
and a 429 in the middle of a loop (retried on the fake clock, no turn lost)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otpy._snapshot import Snapshot
from otpy.actors import ProviderRegistry, ProviderRegistryHandle
from otpy.agent import BUILTIN_TOOLS, AgentOptions, ToolContext, python_tool, run_agent
from otpy.errors import AgentLimitError, InvalidRequestError
from otpy.providers import (
    AnthropicProvider,
    CompletionRequest,
    Message,
    ProviderTable,
    ToolCall,
    ToolResult,
    ToolSpec,
)
from otpy.telemetry import Telemetry, set_telemetry
from otpy.testing import FakeClock
from otpy.testing.fake_anthropic import FakeAnthropic, error, message, tool_calls
from otpy.workspace import Workspace
from support import InThread

KEY = "otpy-agent-test-key-51c9e2a7d4"
LIMITS = {"rpm": 50, "max_attempts": 3, "timeout": None}
_names = itertools.count()


@pytest.fixture(autouse=True)
def _no_anthropic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeAnthropic]:
    server = FakeAnthropic(clock=clock, expected_key=KEY).start()
    yield server
    server.stop()


@pytest.fixture
def hub(clock: FakeClock) -> Iterator[Telemetry]:
    fresh = Telemetry(clock)
    previous = set_telemetry(fresh)
    yield fresh
    set_telemetry(previous)


@pytest.fixture
def registry(
    clock: FakeClock, hub: Telemetry, fake: FakeAnthropic
) -> Iterator[ProviderRegistryHandle]:
    name = f"agent-anthropic{next(_names)}.providers"
    snapshot = Snapshot(ProviderTable())
    ProviderRegistry.start_named(name, snapshot, clock=clock)
    handle = ProviderRegistryHandle(name, snapshot, clock=clock, seed=3)
    provider = AnthropicProvider("claude", api_key=KEY, base_url=fake.url)
    handle.register_provider("claude", provider, limits=LIMITS)
    yield handle
    provider.close()


def agent(
    registry: ProviderRegistryHandle, root: Path, prompt: str, *names: str, **options: Any
) -> Any:
    tools = [BUILTIN_TOOLS[n] for n in names]
    return run_agent(
        lambda request: registry.complete(request, provider="claude", capabilities=["tools"]),
        CompletionRequest(prompt=prompt, system="You edit files."),
        tools,
        context=ToolContext(workspace=Workspace(root)),
        options=AgentOptions(**options),
    )


def blocks(body: Any, index: int) -> list[dict[str, Any]]:
    content = body["messages"][index]["content"]
    assert isinstance(content, list)
    return content


def test_read_edit_answer_over_three_turns(
    registry: ProviderRegistryHandle, fake: FakeAnthropic, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("teh quick fox\n")
    fake.queue(
        tool_calls(("Read", {"file_path": "notes.txt"}), text="Let me look."),
        tool_calls(("Edit", {"file_path": "notes.txt", "old_string": "teh", "new_string": "the"})),
        message("Fixed the typo in notes.txt.", input_tokens=90, output_tokens=8),
    )
    result = agent(registry, tmp_path, "Fix the typo in notes.txt", "Read", "Edit")
    assert result.text == "Fixed the typo in notes.txt."
    assert (tmp_path / "notes.txt").read_text() == "the quick fox\n"
    assert result.files_changed == ("notes.txt",)
    assert [len(t.calls) for t in result.turns] == [1, 1, 0]
    assert [t.usage.total_tokens for t in result.turns] == [70, 70, 98]
    assert result.usage.total_tokens == 238 and result.stop_reason == "end_turn"
    first, second, third = (r.body for r in fake.requests)
    assert [t["name"] for t in first["tools"]] == ["Read", "Edit"]
    assert first["tools"][0]["input_schema"]["required"] == ["file_path"]
    assert first["system"] == "You edit files." and "tool_choice" not in first
    assert first["messages"] == [{"role": "user", "content": "Fix the typo in notes.txt"}]
    text, use = blocks(second, 1)  # the assistant turn goes back as the model said it
    assert text == {"type": "text", "text": "Let me look."} and use["name"] == "Read"
    (read,) = blocks(second, 2)
    assert read["type"] == "tool_result" and read["tool_use_id"] == use["id"]
    assert "teh quick fox" in read["content"] and "is_error" not in read
    (edit,) = blocks(third, 4)
    assert edit["content"] == "Edited notes.txt: 1 replacement"
    assert len(third["messages"]) == 5


def test_parallel_calls_in_one_turn_answered_in_one_user_turn(
    registry: ProviderRegistryHandle, fake: FakeAnthropic, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "b.txt").write_text("beta\n")

    def shout(word: str) -> str:
        """Upper-case a word."""
        return word.upper()

    fake.queue(
        tool_calls(
            ("Read", {"file_path": "a.txt"}),
            ("Read", {"file_path": "b.txt"}),
            ("shout", {"word": "gamma"}),
        ),
        message("alpha, beta, GAMMA"),
    )
    result = run_agent(
        lambda request: registry.complete(request, provider="claude"),
        CompletionRequest(prompt="Read both files"),
        [BUILTIN_TOOLS["Read"], python_tool(shout)],
        context=ToolContext(workspace=Workspace(tmp_path)),
    )
    assert result.text == "alpha, beta, GAMMA"
    (turn, _) = result.turns
    assert [c.output.split("\t")[-1] for c in turn.calls] == ["alpha", "beta", "GAMMA"]
    answers = blocks(fake.requests[1].body, 2)
    uses = blocks(fake.requests[1].body, 1)
    assert [a["tool_use_id"] for a in answers] == [u["id"] for u in uses]
    assert len({u["id"] for u in uses}) == 3


def test_a_tool_error_goes_back_as_an_error_result_and_the_loop_goes_on(
    registry: ProviderRegistryHandle, fake: FakeAnthropic, tmp_path: Path
) -> None:
    fake.queue(
        tool_calls(("Read", {"file_path": "missing.txt"})),
        tool_calls(("Read", {"file_path": "../../etc/passwd"})),
        tool_calls(("Write", {"path": "wrong argument name"})),
        message("I could not read it."),
    )
    result = agent(registry, tmp_path, "Read missing.txt", "Read", "Write")
    assert result.text == "I could not read it."
    errors = [blocks(request.body, -1)[0] for request in fake.requests[1:]]
    assert all(e["is_error"] is True for e in errors)
    assert errors[0]["content"] == "missing.txt: no such file"
    assert "'..' leads out of it" in errors[1]["content"]
    assert errors[2]["content"].startswith("invalid arguments for Write: file_path: Field required")
    assert [c.is_error for c in result.tool_calls] == [True, True, True]
    assert result.files_changed == ()


def test_max_turns_reached(
    registry: ProviderRegistryHandle, fake: FakeAnthropic, tmp_path: Path
) -> None:
    fake.queue(*[tool_calls(("LS", {"path": "."})) for _ in range(3)])
    with pytest.raises(AgentLimitError, match=r"reached max_turns \(2\)") as info:
        agent(registry, tmp_path, "Look around", "LS", max_turns=2)
    assert info.value.limit == "max_turns"
    partial = info.value.result
    assert len(partial.turns) == 2 and partial.stop_reason == "max_turns"
    assert len(fake.requests) == 2


def test_a_token_budget_stops_the_loop(
    registry: ProviderRegistryHandle, fake: FakeAnthropic, tmp_path: Path
) -> None:
    fake.queue(*[tool_calls(("LS", {"path": "."})) for _ in range(3)])
    with pytest.raises(AgentLimitError, match=r"token budget \(140 of 100 tokens\)") as info:
        agent(registry, tmp_path, "Look around", "LS", token_budget=100)
    assert info.value.limit == "token_budget" and len(fake.requests) == 2


def test_a_429_mid_loop_is_retried_on_the_clock_and_no_turn_is_lost(
    registry: ProviderRegistryHandle, fake: FakeAnthropic, tmp_path: Path, clock: FakeClock
) -> None:
    fake.queue(
        tool_calls(("Write", {"file_path": "out.txt", "content": "one"})),
        error(429, "rate_limit_error", "slow down", {"retry-after": "5"}),
        tool_calls(("Edit", {"file_path": "out.txt", "old_string": "one", "new_string": "two"})),
        message("done"),
    )
    call = InThread(agent, registry, tmp_path, "Write then edit", "Write", "Edit")
    clock.wait_for_sleepers(1)  # the second turn's 429: the guard waits out Retry-After
    assert len(fake.requests) == 2
    clock.advance(5)
    result = call.result()
    assert result.text == "done" and (tmp_path / "out.txt").read_text() == "two"
    assert len(result.turns) == 3  # the retried turn counts once
    second, retried = fake.requests[1].body, fake.requests[2].body
    assert second == retried  # the same conversation was sent again: nothing lost or doubled
    assert fake.requests[2].at is not None and fake.requests[1].at is not None
    assert fake.requests[2].at - fake.requests[1].at == 5.0


def test_spans_for_the_run_each_turn_and_each_tool_call(
    registry: ProviderRegistryHandle, fake: FakeAnthropic, tmp_path: Path, hub: Telemetry
) -> None:
    fake.queue(tool_calls(("LS", {"path": "."}), ("Glob", {"pattern": "*"})), message("ok"))
    agent(registry, tmp_path, "Look", "LS", "Glob")
    names = [e.name for e in hub.store.query(name="agent.*")]
    assert names == [
        "agent.run.start",
        "agent.turn.start",
        "agent.tool.start", "agent.tool.stop", "agent.tool.start", "agent.tool.stop",
        "agent.turn.stop",
        "agent.turn.start", "agent.turn.stop",
        "agent.run.stop",
    ]  # fmt: skip
    stops = hub.store.query(name="agent.tool.stop")
    assert [e.metadata["tool"] for e in stops] == ["LS", "Glob"]
    assert all("arguments" not in e.metadata for e in stops)
    (run,) = hub.store.query(name="agent.run.start")
    turn = hub.store.query(name="agent.turn.start")[0]
    tool = hub.store.query(name="agent.tool.start")[0]
    assert turn.parent_id == run.event_id and tool.parent_id == turn.event_id
    assert hub.store.query(name="agent.turn.stop")[0].metadata["tool_calls"] == 2
    assert hub.store.query(name="agent.run.stop")[0].metadata["turns"] == 2


def test_tool_choice_any_holds_for_the_first_turn_only(
    registry: ProviderRegistryHandle, fake: FakeAnthropic, tmp_path: Path
) -> None:
    fake.queue(tool_calls(("LS", {})), message("ok"))
    agent(registry, tmp_path, "Look", "LS", tool_choice="any")
    first, second = (r.body for r in fake.requests)
    assert first["tool_choice"] == {"type": "any"} and "tool_choice" not in second


def test_the_fake_refuses_tool_use_that_does_not_pair_up(
    registry: ProviderRegistryHandle, fake: FakeAnthropic
) -> None:
    call = Message(role="assistant", tool_calls=(ToolCall(id="t1", name="LS"),))
    unanswered = CompletionRequest(
        messages=(Message(role="user", content="go"), call, Message(role="user", content="?")),
        tools=(ToolSpec(name="LS"),),
    )
    with pytest.raises(InvalidRequestError, match="without `tool_result` blocks"):
        registry.complete(unanswered, provider="claude")
    answers = (ToolResult(call_id="t1", name="LS"), ToolResult(call_id="t9", name="LS"))
    stray = Message(role="user", tool_results=answers)
    with pytest.raises(InvalidRequestError, match="unexpected `tool_use_id`"):
        registry.complete(
            unanswered.model_copy(update={"messages": (*unanswered.messages[:2], stray)}),
            provider="claude",
        )
    assert len(fake.requests) == 2  # a 400 is not retried
