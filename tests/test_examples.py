"""The pipelines in examples/ are real: each one runs offline on the simulated provider and
gives meaningful outputs, and each one matches the JSON Schema ``otpy schema`` prints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import otpy
from otpy._cli_show import pipeline_schema
from otpy.pipelines import PipelineResult
from otpy.providers import SimulatedProvider

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

QUESTIONS = ["What is OTP?", "What is a supervisor?", "Why let it crash?"]

# example name -> (inputs, starting variables)
RUNS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "analysis": (
        {"text": "The new release fixed every crash we reported. Support answered in an hour."},
        {},
    ),
    "extraction": ({"document": "Invoice 17, ACME GmbH: 2 widgets, EUR 240, due 2025-07-01"}, {}),
    "batch": ({"questions": QUESTIONS}, {}),
    "robust": ({"question": "Is the service up?"}, {}),
    "qa": ({"question": "2+2?"}, {"instruction": "Answer briefly.", "temperature": 0.2}),
}


def _non_empty_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _analysis(result: PipelineResult) -> None:
    out = result.outputs
    assert _non_empty_text(out["summary"]) and _non_empty_text(out["report"])
    assert 2 <= len(out["key_points"]) <= 5
    assert all(_non_empty_text(point) for point in out["key_points"])
    assert out["sentiment"] in ("positive", "neutral", "negative")
    assert 0 <= out["confidence"] <= 1
    assert result.step("summary").metadata == {"preset": "analysis"}
    # the report's prompt was built from the earlier steps' outputs
    assert out["report"].startswith("Simulated answer (sim-1) to: Write a three-line report.")


def _extraction(result: PipelineResult) -> None:
    out = result.outputs
    assert _non_empty_text(out["vendor"]) and out["total"] >= 0
    assert out["currency"] in ("EUR", "USD", "GBP")
    assert len(out["due_date"]) == 10 and out["due_date"][4] == "-"
    assert out["lines"] and all({"item", "amount"} <= set(line) for line in out["lines"])
    totals = result.step("totals")
    assert totals.output == {k: out[k] for k in ("vendor", "total", "currency")}
    assert totals.provider is None and totals.tokens == 0  # read from text, no call
    assert _non_empty_text(out["reminder"])


def _batch(result: PipelineResult) -> None:
    out = result.outputs
    assert len(out["answers"]) == out["count"] == len(QUESTIONS)
    for question, answer in zip(QUESTIONS, out["answers"], strict=True):
        assert question in answer
    assert _non_empty_text(out["digest"]) and _non_empty_text(out["title"])
    assert result.step("title").tokens > 0


def _robust(result: PipelineResult) -> None:
    parsed = result.step("parsed")
    assert parsed.status == "ok" and parsed.fallback == "parsed.fallback"
    assert parsed.error is not None and parsed.error.type == "InvalidValueError"
    out = result.outputs
    assert _non_empty_text(out["answer"]) and isinstance(out["confident"], bool)
    assert out["served_by"] == "primary"
    assert result.step("review").status == "ok" and _non_empty_text(out["review"])


def _qa(result: PipelineResult) -> None:
    assert result.outputs["answer"].startswith("Simulated answer (sim-1) to: 2+2?")
    assert result.variables == {"instruction": "Answer briefly.", "temperature": 0.2}


CHECKS: dict[str, Callable[[PipelineResult], None]] = {
    "analysis": _analysis,
    "extraction": _extraction,
    "batch": _batch,
    "robust": _robust,
    "qa": _qa,
}


def test_every_example_has_inputs_and_checks() -> None:
    names = {path.stem for path in EXAMPLES.glob("*.yaml")}
    assert names == set(RUNS) == set(CHECKS)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_example_runs_offline(name: str) -> None:
    inputs, variables = RUNS[name]
    with otpy.start() as rt:
        plan = rt.compile_pipeline(EXAMPLES / f"{name}.yaml")
        assert plan.name == name
        result = rt.run_pipeline(plan, inputs, variables=variables, timeout=30)
    assert result.status == "completed", result.error
    assert all(step.status in ("ok", "skipped") for step in result.steps)
    assert result.tokens > 0
    CHECKS[name](result)


def test_qa_sends_the_variables_to_the_provider() -> None:
    with otpy.start() as rt:
        result = rt.run_pipeline(
            EXAMPLES / "qa.yaml",
            {"question": "Capital of France?"},
            variables={"instruction": "Think step by step, then answer.", "temperature": 1.0},
        )
        provider = rt.providers.get_provider("simulated").provider
        assert isinstance(provider, SimulatedProvider)
        (request,) = provider.requests
    assert result.ok
    assert request.system == "Think step by step, then answer."
    assert request.temperature == 1.0


def test_qa_without_its_variables_fails_naming_them() -> None:
    with otpy.start() as rt:
        result = rt.run_pipeline(EXAMPLES / "qa.yaml", {"question": "2+2?"})
    assert result.status == "failed" and result.failed_step == "answer"
    assert result.error is not None and "vars." in result.error.message


def test_robust_skips_the_review_when_not_asked() -> None:
    with otpy.start() as rt:
        result = rt.run_pipeline(EXAMPLES / "robust.yaml", {"question": "Up?", "review": False})
    assert result.ok
    assert result.step("review").status == "skipped"
    assert result.outputs["review"] is None


def test_robust_survives_a_failing_provider() -> None:
    """The preferred provider fails every call: the run completes on the other one."""
    config = {
        "providers": {
            "flaky": {
                "priority": 10,
                "options": {"failure_rate": 1.0},
                "limits": {"max_attempts": 1},
            },
            "backup": {},
        }
    }
    with otpy.start(config) as rt:
        result = rt.run_pipeline(EXAMPLES / "robust.yaml", {"question": "Is the service up?"})
    assert result.ok, result.error
    answer = result.step("answer")
    assert answer.provider == "backup" and "flaky" in answer.providers_tried


@pytest.mark.parametrize("name", sorted(RUNS))
def test_example_matches_the_json_schema(name: str) -> None:
    schema = pipeline_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    document = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
