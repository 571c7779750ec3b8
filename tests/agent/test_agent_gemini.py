"""The agent loop on GeminiProvider through the real ``google-genai`` SDK, against the fake
Gemini API on 127.0.0.1 behind a ProviderRegistry's guard: function calls and responses
on the wire, parallel calls, an error result, max_turns, a 429 mid-loop, calls without ids,
and a thought signature sent back with its call."""

from __future__ import annotations

import base64
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
    CompletionRequest,
    GeminiProvider,
    Message,
    ProviderTable,
    ToolCall,
    ToolResult,
    ToolSpec,
)
from otpy.telemetry import Telemetry, set_telemetry
from otpy.testing import FakeClock
from otpy.testing.fake_gemini import FakeGemini, error, function_calls, ok, retry_info, running
from otpy.workspace import Workspace
from support import InThread

KEY = "gk-agent-test-2b7e91c4d8a35f60"
_names = itertools.count()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL",
                     "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_API_VERSION"):  # fmt: skip
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with running() as server:
        yield server


@pytest.fixture
def registry(clock: FakeClock, fake: FakeGemini) -> Iterator[ProviderRegistryHandle]:
    hub = Telemetry(clock)
    previous = set_telemetry(hub)
    name = f"agent-gemini{next(_names)}.providers"
    snapshot: Snapshot[ProviderTable] = Snapshot(ProviderTable())
    ProviderRegistry.start_named(name, snapshot, clock=clock)
    handle = ProviderRegistryHandle(name, snapshot, clock=clock, seed=5)
    provider = GeminiProvider("gemini", api_key=KEY, base_url=fake.base_url, timeout=10)
    handle.register_provider("gemini", provider, limits={"timeout": None, "max_attempts": 3})
    yield handle
    provider.close()
    set_telemetry(previous)


def agent(registry: ProviderRegistryHandle, root: Path, *names: str, **options: Any) -> Any:
    return run_agent(
        lambda request: registry.complete(request, provider="gemini"),
        CompletionRequest(prompt="Do the task", system="Use the tools."),
        [BUILTIN_TOOLS[n] for n in names],
        context=ToolContext(workspace=Workspace(root)),
        options=AgentOptions(**options),
    )


def parts(body: Any, index: int) -> list[dict[str, Any]]:
    return body["contents"][index]["parts"]  # type: ignore[no-any-return]


def test_write_then_read_then_answer(
    registry: ProviderRegistryHandle, fake: FakeGemini, tmp_path: Path
) -> None:
    fake.script(
        function_calls(("Write", {"file_path": "plan.md", "content": "# Plan\n"})),
        function_calls(("Read", {"file_path": "plan.md"}), text="Checking."),
        ok("The plan is written."),
    )
    result = agent(registry, tmp_path, "Write", "Read")
    assert result.text == "The plan is written." and result.files_changed == ("plan.md",)
    assert (tmp_path / "plan.md").read_text() == "# Plan\n"
    first, second, third = (r.body for r in fake.requests)
    (declarations,) = [t["functionDeclarations"] for t in first["tools"]]
    assert [d["name"] for d in declarations] == ["Write", "Read"]
    schema = declarations[0]["parameters_json_schema"]  # the SDK's spelling; the API takes both
    assert schema["required"] == ["file_path", "content"] and schema["type"] == "object"
    assert first["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    assert first["systemInstruction"]["parts"] == [{"text": "Use the tools."}]
    (call,) = parts(second, 1)
    assert call["functionCall"] == {
        "id": "call-1", "name": "Write", "args": {"file_path": "plan.md", "content": "# Plan\n"}
    }  # fmt: skip
    assert second["contents"][2]["role"] == "user"
    (answer,) = parts(second, 2)
    assert answer["functionResponse"] == {
        "id": "call-1", "name": "Write", "response": {"output": "Created plan.md (7 bytes)"}
    }  # fmt: skip
    text, read = parts(third, 3)
    assert text == {"text": "Checking."} and read["functionCall"]["name"] == "Read"
    assert result.turns[-1].stop_reason == "stop" and result.turns[0].stop_reason == "tool_use"


def test_parallel_calls_without_ids_and_an_error_result(
    registry: ProviderRegistryHandle, fake: FakeGemini, tmp_path: Path
) -> None:
    def area(width: float, height: float) -> float:
        """Area of a rectangle."""
        return width * height

    fake.script(
        function_calls(
            ("area", {"width": 2, "height": 3}), ("Read", {"file_path": "/etc/hosts"}), ids=False
        ),
        ok("6, and I may not read /etc/hosts."),
    )
    result = run_agent(
        lambda request: registry.complete(request, provider="gemini"),
        CompletionRequest(prompt="Two things"),
        [python_tool(area), BUILTIN_TOOLS["Read"]],
        context=ToolContext(workspace=Workspace(tmp_path)),
    )
    assert [c.id for c in result.tool_calls] == ["otpy-call-0-0", "otpy-call-0-1"]
    calls, answers = parts(fake.requests[1].body, 1), parts(fake.requests[1].body, 2)
    assert all("id" not in c["functionCall"] for c in calls)  # made-up ids stay home
    assert answers[0]["functionResponse"] == {"name": "area", "response": {"output": "6.0"}}
    error_answer = answers[1]["functionResponse"]["response"]
    assert (
        list(error_answer) == ["error"] and "an absolute path outside it" in error_answer["error"]
    )


def test_max_turns_and_a_429_in_the_middle(
    registry: ProviderRegistryHandle, fake: FakeGemini, tmp_path: Path, clock: FakeClock
) -> None:
    fake.script(
        function_calls(("LS", {})),
        error(429, "slow down", details=[retry_info("4s")]),
        function_calls(("LS", {})),
        function_calls(("LS", {})),
    )
    call = InThread(agent, registry, tmp_path, "LS", max_turns=3)
    clock.wait_for_sleepers(1)
    clock.advance(4)
    with pytest.raises(AgentLimitError) as info:
        call.result()
    assert info.value.limit == "max_turns" and len(info.value.result.turns) == 3
    assert fake.calls == 4 and fake.requests[1].body == fake.requests[2].body


def test_a_thought_signature_goes_back_with_its_call(
    registry: ProviderRegistryHandle, fake: FakeGemini, tmp_path: Path
) -> None:
    signature = base64.b64encode(b"opaque-thought").decode()
    fake.script(function_calls(("LS", {}), signature=signature), ok("empty folder"))
    result = agent(registry, tmp_path, "LS")
    assert result.tool_calls[0].id == "call-1"
    assert result.messages[1].tool_calls[0].signature == signature
    (call,) = parts(fake.requests[1].body, 1)
    assert call["thoughtSignature"] == signature


def test_the_fake_refuses_a_call_turn_without_its_answers(
    registry: ProviderRegistryHandle, fake: FakeGemini
) -> None:
    unanswered = CompletionRequest(
        messages=(
            Message(role="user", content="go"),
            Message(role="assistant", tool_calls=(ToolCall(id="c1", name="LS"),)),
            Message(role="user", content="no answer to the call"),
        ),
        tools=(ToolSpec(name="LS"),),
    )
    with pytest.raises(InvalidRequestError, match="function response parts"):
        registry.complete(unanswered, provider="gemini")
    answered = unanswered.model_copy(
        update={
            "messages": (
                *unanswered.messages[:2],
                Message(role="user", tool_results=(ToolResult(call_id="c1", name="LS"),)),
            )
        }
    )
    assert registry.complete(answered, provider="gemini").text == "Hello from the fake"
