"""DSPy adapter prompts (ChatAdapter, JSONAdapter, XMLAdapter, as DSPy 3.4 writes them)
are read, and answered in their own format with every output field of the right type:
DSPy's own parser takes the answer back. Seeded, configurable, and blind to other text."""

from __future__ import annotations

import random
from typing import Any, Literal

import dspy
import pydantic
import pytest

from otpy.errors import InvalidRequestError
from otpy.providers import CompletionRequest, Message, SimulatedProvider
from otpy.providers._prompt_formats import answer_structured, read_structured_prompt


class Point(pydantic.BaseModel):
    x: int
    label: str


class Everything(dspy.Signature):
    """Answer with every kind of field."""

    question: str = dspy.InputField(desc="what is asked")
    context: str = dspy.InputField()
    answer: str = dspy.OutputField()
    count: int = dspy.OutputField()
    share: float = dspy.OutputField()
    sure: bool = dspy.OutputField()
    kind: Literal["cat", "dog"] = dspy.OutputField()
    tags: list[str] = dspy.OutputField()
    point: Point = dspy.OutputField()
    scores: dict[str, int] = dspy.OutputField()


ADAPTERS = {"chat": dspy.ChatAdapter(), "json": dspy.JSONAdapter(), "xml": dspy.XMLAdapter()}
INPUTS = {"question": "Which pet?", "context": "two lines\nof context"}


def formatted(adapter: Any, signature: Any = Everything, demos: Any = ()) -> tuple[str, str]:
    """(system, last user turn) of the messages ``adapter`` sends."""
    messages = adapter.format(signature, list(demos), INPUTS)
    return messages[0]["content"], messages[-1]["content"]


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_every_adapter_prompt_is_read_and_answered_so_dspy_parses_it(name: str) -> None:
    adapter = ADAPTERS[name]
    demo = dspy.Example(question="q", context="c", answer="a", count=1).with_inputs("question")
    system, prompt = formatted(adapter, demos=[demo])
    read = read_structured_prompt(system, prompt)
    assert read is not None and read.adapter == name
    assert read.instructions == "Answer with every kind of field."
    assert dict(read.inputs) == INPUTS  # the main request's, not the demo's
    outputs = {o.name: o for o in read.outputs}
    assert list(outputs) == list(Everything.output_fields)
    if name != "xml":  # an XMLAdapter writes no notes for nested fields
        assert outputs["kind"].choices == ("cat", "dog")
        assert outputs["tags"].schema == {"type": "array", "items": {"type": "string"}}
    assert (outputs["count"].kind, outputs["sure"].kind, outputs["share"].kind) == (
        "int", "bool", "float"
    )  # fmt: skip
    text = answer_structured(read, random.Random(3))
    parsed = adapter.parse(Everything, text)
    assert set(parsed) == set(Everything.output_fields)
    assert isinstance(parsed["point"], Point) and parsed["kind"] in ("cat", "dog")
    assert answer_structured(read, random.Random(3)) == text  # seeded


def test_configured_values_win_and_a_callable_reads_the_prompt() -> None:
    adapter = ADAPTERS["chat"]
    read = read_structured_prompt(*formatted(adapter))
    assert read is not None
    values = {"answer": lambda p: p.inputs["question"].upper(), "count": 7, "kind": "dog"}
    parsed = adapter.parse(Everything, answer_structured(read, random.Random(0), values))
    assert (parsed["answer"], parsed["count"], parsed["kind"]) == ("WHICH PET?", 7, "dog")


def test_other_prompts_are_not_adapter_prompts() -> None:
    assert read_structured_prompt(None, "What is 2+2?") is None
    assert read_structured_prompt("sys", "Respond with a haiku.") is None


def test_the_simulated_provider_answers_adapter_prompts_and_only_those() -> None:
    provider = SimulatedProvider(seed=4, field_values={"answer": "forty-two"})
    system, prompt = formatted(ADAPTERS["json"])
    request = CompletionRequest(system=system, messages=(Message(role="user", content=prompt),))
    parsed = ADAPTERS["json"].parse(Everything, provider.complete(request).text)
    assert parsed["answer"] == "forty-two"
    assert provider.complete(request).text == provider.complete(request).text  # same request
    plain = provider.complete(CompletionRequest(prompt="2+2?")).text
    assert plain.startswith("Simulated answer (sim-1) to: 2+2?")
    fixed = SimulatedProvider(responses={"which pet": "a fixed text"})
    assert fixed.complete(request).text == "a fixed text"  # fixed responses come first


def test_an_output_schema_the_sampler_cannot_fill_is_a_bad_request() -> None:
    class Coded(dspy.Signature):
        """Give a code."""

        question: str = dspy.InputField()
        codes: list[pydantic.constr(pattern=r"^[A-Z]{3}$")] = dspy.OutputField()  # type: ignore[valid-type]

    system, prompt = formatted(ADAPTERS["chat"], Coded)
    request = CompletionRequest(system=system, messages=(Message(role="user", content=prompt),))
    with pytest.raises(InvalidRequestError, match="output field"):
        SimulatedProvider().complete(request)
    with pytest.raises(Exception, match="field_values"):
        SimulatedProvider(field_values=["answer"])  # type: ignore[arg-type]
