"""A YAML pipeline as a DSPy program: its one-prompt steps are named predictors (signature
from the step's templates, instructions from its system and prompt), the rest of the
pipeline runs as it does in otpy; tuned by BootstrapFewShot, written back, run by
`otpy run`."""

from __future__ import annotations

import json
from pathlib import Path

import dspy
import pytest
from dspy.utils.exceptions import LMServerError
from dspy_support import exact, examples, runtime, simulated

import otpy.dspy
from otpy.__main__ import main
from otpy.errors import ConfigurationError, PipelineError
from otpy.pipelines import load_pipeline
from otpy.steps.llm import PRESETS

CHAIN = """\
name: qa_chain
inputs:
  question: {type: string}
steps:
  - name: note
    type: set_variable
    variables: {tone: brief}
  - name: draft
    type: claude_smart
    preset: analysis
    prompt: "Draft an answer to {{ inputs.question }} in a {{ vars.tone }} tone."
  - name: answer
    type: claude
    system: You answer questions.
    prompt: |
      Question: {{ inputs.question }}
      Draft: {{ steps.draft.output }}
    max_tokens: 200
outputs:
  answer: "{{ steps.answer.output }}"
  draft: "{{ steps.draft.output }}"
"""


def test_each_prompt_step_is_a_named_predictor_with_its_signature() -> None:
    module = otpy.dspy.PipelineModule(CHAIN)
    predictors = dict(module.named_predictors())
    assert list(predictors) == ["draft", "answer"]  # set_variable is not an LLM step
    draft, answer = predictors["draft"].signature, predictors["answer"].signature
    assert (list(draft.input_fields), list(draft.output_fields)) == (
        ["question", "tone"],
        ["draft"],
    )
    assert (list(answer.input_fields), list(answer.output_fields)) == (
        ["question", "draft"],
        ["answer"],
    )
    assert draft.instructions == (
        f"{PRESETS['analysis'].system}\n\nDraft an answer to `question` in a `tone` tone."
    )
    assert answer.instructions == "You answer questions.\n\nQuestion: `question`\nDraft: `draft`"
    only = otpy.dspy.PipelineModule(CHAIN, tune=["answer"])
    assert [name for name, _ in only.named_predictors()] == ["answer"]


def test_a_call_runs_the_whole_pipeline_with_the_predictors_answering() -> None:
    sim = simulated()
    with runtime(sim) as rt, dspy.context(lm=otpy.dspy.lm(rt)):
        module = otpy.dspy.PipelineModule(CHAIN, runtime=rt)
        result = module(question="q2")
        copy = module.deepcopy()
        assert copy(question="q4").answer == "A4"  # a copy runs its own predictors
    assert result.answer == "A2" and result.draft.startswith("Simulated draft")
    assert sim.calls == 4
    draft_prompt = sim.requests[0].conversation()[-1].content
    assert "[[ ## tone ## ]]\nbrief" in draft_prompt  # the variable set by the step before


def test_a_failed_run_raises_and_bad_tuning_is_refused_by_name() -> None:
    with runtime(simulated(failure_rate=1.0), limits={"max_attempts": 1}) as rt:
        module = otpy.dspy.PipelineModule(CHAIN, runtime=rt)
        with dspy.context(lm=otpy.dspy.lm(rt)), pytest.raises(LMServerError):
            module(question="q1")  # the predictor's LM error crashes the run: raised
        with pytest.raises(PipelineError, match="at step 'draft'") as failed:
            otpy.dspy.PipelineModule(CHAIN, runtime=rt, tune=["answer"])(question="q1")
        assert failed.value.result.failed_step == "draft"  # a step run by otpy failed
        with pytest.raises(ConfigurationError, match="unknown input 'wrong'"):
            module(wrong="input")
    with pytest.raises(ConfigurationError, match="no step 'nope'"):
        otpy.dspy.PipelineModule(CHAIN, tune=["nope"])
    with pytest.raises(ConfigurationError, match=r"'note' .* not a one-prompt step"):
        otpy.dspy.PipelineModule(CHAIN, tune=["note"])
    no_prompt = "name: v\nsteps:\n  - {name: s, type: set_variable, variables: {a: 1}}\n"
    with pytest.raises(ConfigurationError, match="no one-prompt step"):
        otpy.dspy.PipelineModule(no_prompt)


def test_bootstrap_few_shot_tunes_it_and_the_written_pipeline_runs_with_otpy_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = simulated()
    with runtime(sim) as rt, dspy.context(lm=otpy.dspy.lm(rt)):
        module = otpy.dspy.PipelineModule(CHAIN, runtime=rt, tune=["answer"])
        optimizer = dspy.BootstrapFewShot(
            metric=exact, max_bootstrapped_demos=2, max_labeled_demos=0
        )
        tuned = optimizer.compile(module, trainset=examples(5))
        tuned.step_predictors["answer"].signature = tuned.step_predictors[
            "answer"
        ].signature.with_instructions("Answer exactly, {{ like this }}.")
        path = otpy.dspy.save_pipeline(tuned, tmp_path / "tuned.yaml")
    written = load_pipeline(path)
    answer = written.step("answer").config
    assert answer["system"] == "Answer exactly, { { like this }}."  # no template injected
    assert answer["prompt"] == (
        "Question: q0\nDraft: " + _draft(tuned, 0) + "\nAnswer: A0\n\n"
        "Question: q2\nDraft: " + _draft(tuned, 1) + "\nAnswer: A2\n\n"
        "Question: {{ inputs.question }}\nDraft: {{ steps.draft.output }}\nAnswer:\n"
    )
    assert written.step("draft").config == load_pipeline(CHAIN).step("draft").config
    capsys.readouterr()
    assert main(["run", str(path), "-i", "question=q9", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "completed"
    assert document["outputs"]["answer"].startswith(
        "Simulated answer (sim-1) to: Question: q0 Draft: Simulated"
    )  # the embedded simulated provider got the demos


def _draft(module: otpy.dspy.PipelineModule, index: int) -> str:
    return str(module.step_predictors["answer"].demos[index]["draft"])
