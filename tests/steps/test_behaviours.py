"""The Step and Provider behaviours' shared types, the snapshot cell and plugin loading."""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from collections.abc import Mapping
from typing import Any

import pydantic
import pytest

from otpy._plugins import load_plugins
from otpy._snapshot import Snapshot
from otpy.errors import ConfigurationError, StepValidationError
from otpy.providers import Completion, CompletionRequest, Message, Usage, estimate_tokens
from otpy.steps import Step, StepContext, StepMetadata, StepResult


class Echo(Step):
    metadata = StepMetadata(
        description="echoes its prompt",
        required_fields=("prompt",),
        optional_fields=("upper",),
        capabilities=("text",),
        version="1.2.0",
    )

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        text = step["prompt"].upper() if step.get("upper") else step["prompt"]
        context.variables["last"] = text
        return StepResult(output=text, text=text)


def test_step_validate_names_the_step_and_the_field() -> None:
    assert Echo.validate({"name": "say", "type": "echo", "prompt": "hi"}) == {
        "name": "say",
        "type": "echo",
        "prompt": "hi",
    }
    with pytest.raises(StepValidationError, match="step 'say', field 'prompt': is required") as e:
        Echo.validate({"name": "say", "type": "echo", "prompt": None})
    assert (e.value.step, e.value.field) == ("say", "prompt")
    with pytest.raises(StepValidationError, match=r"field 'uper'.*its fields: prompt, upper"):
        Echo.validate({"name": "say", "type": "echo", "prompt": "hi", "uper": True})
    with pytest.raises(StepValidationError, match="must be a mapping"):
        Echo.validate(["prompt"])  # type: ignore[arg-type]


def test_step_executes_with_a_context() -> None:
    context = StepContext(inputs={"q": 1})
    result = Echo().execute({"prompt": "hi", "upper": True}, context)
    assert (result.output, result.text, result.usage.total_tokens) == ("HI", "HI", 0)
    assert context.variables == {"last": "HI"}
    with pytest.raises(ConfigurationError, match="no provider gateway"):
        context.complete(CompletionRequest(prompt="x"))


def test_step_context_completes_through_its_gateway() -> None:
    asked: list[tuple[CompletionRequest, str | None, tuple[str, ...]]] = []

    class Gateway:
        def complete(
            self, request: CompletionRequest, *, provider: str | None = None,
            capabilities: Any = (),
        ) -> Completion:  # fmt: skip
            asked.append((request, provider, tuple(capabilities)))
            return Completion(text="ok", model="m", provider="p")

    context = StepContext(providers=Gateway())
    request = CompletionRequest(prompt="hi")
    assert context.complete(request, capabilities=["text"]).text == "ok"
    assert asked == [(request, None, ("text",))]


def test_metadata_version_is_semver() -> None:
    with pytest.raises(pydantic.ValidationError, match="version"):
        StepMetadata(version="1.0")


def test_completion_request_validation_and_conversation() -> None:
    with pytest.raises(pydantic.ValidationError, match="needs a prompt or messages"):
        CompletionRequest()
    with pytest.raises(pydantic.ValidationError, match="temperature"):
        CompletionRequest(prompt="x", temperature=2.5)
    with pytest.raises(pydantic.ValidationError, match="max_tokens"):
        CompletionRequest(prompt="x", max_tokens=0)
    with pytest.raises(pydantic.ValidationError, match="extra"):
        CompletionRequest(prompt="x", temprature=0.5)  # type: ignore[call-arg]
    request = CompletionRequest(
        messages=(Message(role="user", content="a"), Message(role="assistant", content="b")),
        prompt="c",
    )
    assert [m.content for m in request.conversation()] == ["a", "b", "c"]
    assert CompletionRequest(messages=(Message(role="user", content="a"),)).conversation()[0]


def test_estimate_tokens_bounds_input_plus_output() -> None:
    request = CompletionRequest(prompt="x" * 400, system="y" * 40, max_tokens=100)
    assert estimate_tokens(request) == 440 // 4 + 1 + 100
    with_schema = CompletionRequest(prompt="x" * 400, max_tokens=100, response_schema={"a": 1})
    plain = CompletionRequest(prompt="x" * 400, max_tokens=100)
    assert estimate_tokens(with_schema) > estimate_tokens(plain)


def test_usage_adds_and_results_carry_completions() -> None:
    total = Usage(input_tokens=3, output_tokens=4) + Usage(input_tokens=1, output_tokens=1)
    assert (total.input_tokens, total.output_tokens, total.total_tokens) == (4, 5, 9)
    completion = Completion(
        text='{"a": 1}', structured={"a": 1}, usage=total, model="m", provider="p", latency=0.5
    )
    result = StepResult.of_completion(completion, retries=2)
    assert (result.output, result.text, result.provider, result.model) == (
        {"a": 1}, '{"a": 1}', "p", "m",
    )  # fmt: skip
    assert result.usage == total and result.retries == 2
    plain = StepResult.of_completion(Completion(text="t", model="m", provider="p"))
    assert plain.output == "t"


def test_snapshot_readers_see_whole_values_only() -> None:
    cell: Snapshot[tuple[int, int]] = Snapshot((0, 0))
    stop = threading.Event()
    torn: list[tuple[int, int]] = []

    def read() -> None:
        while not stop.is_set():
            a, b = cell.value
            if a != b:
                torn.append((a, b))

    readers = [threading.Thread(target=read) for _ in range(4)]
    for r in readers:
        r.start()
    for i in range(1, 20_001):
        cell.publish((i, i))
    stop.set()
    for r in readers:
        r.join(5)
    assert torn == [] and cell.version == 20_000 and cell.value == (20_000, 20_000)


def test_plugins_are_loaded_and_broken_ones_skipped(caplog: pytest.LogCaptureFixture) -> None:
    group = "otpy.test"
    eps = [
        importlib.metadata.EntryPoint("echo", "test_behaviours:Echo", group),
        importlib.metadata.EntryPoint("missing", "no_such_module_xyz:thing", group),
        importlib.metadata.EntryPoint(
            "wrong", "test_behaviours:test_metadata_version_is_semver", group
        ),
    ]
    accepted: dict[str, Any] = {}

    def accept(name: str, obj: Any) -> None:
        if not (isinstance(obj, type) and issubclass(obj, Step)):
            raise TypeError(f"{obj!r} is not a Step subclass")
        accepted[name] = obj

    with caplog.at_level(logging.WARNING, logger="otpy.plugins"):
        reports = load_plugins(group, accept, entry_points=lambda g: eps)
    assert list(accepted) == ["echo"] and accepted["echo"].__name__ == "Echo"
    assert [(r.name, r.loaded) for r in reports] == [
        ("echo", True), ("missing", False), ("wrong", False),
    ]  # fmt: skip
    assert reports[1].error is not None and "ModuleNotFoundError" in reports[1].error
    assert reports[2].error is not None and "not a Step subclass" in reports[2].error
    assert sum("skipped" in r.getMessage() for r in caplog.records) == 2
    assert load_plugins("otpy.no-such-group", accept) == []
