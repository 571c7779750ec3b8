"""DSPy programs and optimizers as supervised jobs (``rt.jobs.start_dspy``), offline on the
simulated provider: each kind of program and optimizer as a job, live status, the saved
program, and the job's handle and store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dspy
import dspy_job_fixtures as fx
import pytest
from dspy_support import exact, examples, runtime, searching, simulated

import otpy.dspy
from otpy.errors import ConfigurationError, JobError

TESTS = Path(__file__).resolve().parents[1]
WAIT = 30


pytestmark = pytest.mark.usefixtures("quiet_dspy")


def _bfs(**options: Any) -> dict[str, Any]:
    return {"max_bootstrapped_demos": 2, "max_labeled_demos": 1, **options}


def test_predict_compiled_by_a_named_optimizer_is_the_jobs_program() -> None:
    sim = simulated()
    with runtime(sim) as rt:
        job = rt.jobs.start_dspy(
            dspy.Predict("question -> answer"),
            "bootstrap_few_shot",
            examples(6),
            metric=exact,
            optimizer_options=_bfs(),
        )
        status = job.wait(WAIT)
        program = job.program()
    assert status.state == "completed" and status.kind == "dspy"
    assert status.strategy == "BootstrapFewShot" and status.phase is None
    assert status.lm_calls == sim.calls > 0 and status.replayed_calls == 0
    assert status.tokens > 0 and status.in_flight == 0
    assert isinstance(program, dspy.Predict)
    bootstrapped = [demo for demo in program.demos if demo.get("augmented")]
    assert bootstrapped and all(int(d.question[1:]) % 2 == 0 for d in bootstrapped)


def test_chain_of_thought_evaluated_as_a_job() -> None:
    sim = simulated()
    with runtime(sim) as rt:
        job = rt.jobs.start_dspy(
            dspy.ChainOfThought("question -> answer"), "evaluate", examples(6), metric=exact
        )
        status = job.wait(WAIT)
        trials = rt.jobs.trials(job.id)
    assert status.state == "completed" and status.strategy == "evaluate"
    assert status.evaluations_done == 1 and status.best_score == 0.5 == trials[0].score
    assert [e.score for e in trials[0].examples] == [1.0, 0.0] * 3
    assert status.lm_calls == sim.calls == 6


def test_react_with_a_python_tool_as_a_job() -> None:
    sim = searching()
    queries: list[str] = []

    def search(query: str) -> str:
        """Look the question up."""
        queries.append(query)
        return f"the answer to {query} is unknown"

    with runtime(sim) as rt:
        react = dspy.ReAct("question -> answer", tools=[search])
        job = rt.jobs.start_dspy(react, "evaluate", examples(2), metric=exact, threads=1)
        status = job.wait(WAIT)
    assert status.state == "completed" and status.best_score == 0.5
    assert queries == ["q0", "q1"] and status.lm_calls == sim.calls == 6


def test_evaluate_on_eight_threads_as_a_job() -> None:
    sim = simulated(latency=0.002)
    with runtime(sim) as rt:
        job = rt.jobs.start_dspy(
            dspy.Predict("question -> answer"), "evaluate", examples(24), metric=exact, threads=8
        )
        status = job.wait(WAIT)
    assert status.state == "completed" and status.best_score == 0.5
    assert status.lm_calls == sim.calls == 24 and status.evaluations_done == 1


def test_bootstrap_few_shot_with_random_search_given_as_an_instance() -> None:
    sim = simulated()
    optimizer = dspy.BootstrapFewShotWithRandomSearch(
        metric=exact, num_candidate_programs=2, num_threads=1, **_bfs()
    )
    with runtime(sim) as rt:
        job = rt.jobs.start_dspy(
            dspy.Predict("question -> answer"),
            optimizer,
            examples(6),
            valset=examples(4, 6),
            metric=exact,
        )
        status = job.wait(WAIT)
        trials = rt.jobs.trials(job.id)
    assert status.state == "completed" and status.strategy == "BootstrapFewShotWithRandomSearch"
    assert status.evaluations_done == len(trials) == 5  # zero-shot, labeled, 3 bootstrapped
    assert all(len(t.examples) == 4 for t in trials) and status.best_score == 0.5
    assert status.best_index == 0  # ties go to the earliest candidate
    assert status.lm_calls == sim.calls


def test_mipro_v2_light_as_a_job_finds_the_better_instructions() -> None:
    sim = fx.provider()
    with runtime(sim) as rt:
        job = rt.jobs.start_dspy(trainset=fx.examples(10), base_dir=TESTS, **fx.MIPRO_JOB)
        status = job.wait(WAIT)
        program = job.program()
    assert status.state == "completed" and status.best_score == 1.0
    assert fx.good_instructions(program.signature.instructions)
    assert status.best_configuration == {
        "self.instructions": program.signature.instructions,
        "self.demos": len(program.demos),
    }
    assert status.lm_calls == sim.calls > 50


def test_gepa_as_a_job() -> None:
    def metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None,
               pred_trace: Any = None) -> float:  # fmt: skip
        return float(pred.answer == gold.answer)

    sim = simulated()
    with runtime(sim) as rt:
        optimizer = dspy.GEPA(
            metric=metric,
            max_metric_calls=30,
            reflection_lm=otpy.dspy.lm(rt),
            num_threads=1,
            seed=0,
        )
        job = rt.jobs.start_dspy(
            dspy.Predict("question -> answer"),
            optimizer,
            examples(4),
            valset=examples(4, 4),
            metric=metric,
        )
        status = job.wait(WAIT)
        program = job.program()
    assert status.state == "completed" and status.strategy == "GEPA"
    assert status.evaluations_done > 1 and status.best_score == 0.5
    assert isinstance(program, dspy.Predict) and status.lm_calls == sim.calls


def test_the_saved_program_is_dspys_format_and_another_runtime_reads_the_job(
    tmp_path: Path,
) -> None:
    store = str(tmp_path / "jobs.sqlite")
    with runtime(fx.provider(), store=store) as rt:
        job = rt.jobs.start_dspy(
            trainset=fx.examples(10), base_dir=TESTS, job_id="mipro", **fx.MIPRO_JOB
        )
        status = job.wait(WAIT)
        text = rt.jobs.saved_program("mipro")
    path = tmp_path / "program.json"
    path.write_text(text)
    loaded = fx.program()
    loaded.load(str(path))
    assert fx.good_instructions(loaded.signature.instructions)
    with runtime(fx.provider(), store=store) as other:  # a new runtime: from the store
        stored = other.jobs.get("mipro")
        assert stored.status().model_dump(exclude={"elapsed", "owner"}) == status.model_dump(
            exclude={"elapsed", "owner"}
        )
        program = stored.program()  # imported by its reference, its state loaded
        assert program.dump_state() == loaded.dump_state()
        with pytest.raises(JobError, match=r"completed; it cannot pause"):
            stored.pause()
        with pytest.raises(JobError, match="completed; nothing to resume"):
            other.jobs.resume("mipro")


def test_bad_input_is_refused_before_anything_is_stored() -> None:
    with runtime(simulated()) as rt:
        program = dspy.Predict("question -> answer")
        cases: list[tuple[dict[str, Any], str]] = [
            ({"optimizer": "MIPROv3"}, "unknown optimizer 'MIPROv3'; did you mean 'MIPROv2'"),
            ({"optimizer": "evaluate", "optimizer_options": {"k": 1}}, "takes no options"),
            ({"optimizer_options": {"colour": 1}}, "unknown options \\['colour'\\]"),
            ({"compile_options": {"colour": 1}}, "compile takes no \\['colour'\\]"),
            ({"program": "no_such_module:program"}, "cannot import 'no_such_module'"),
            ({"program": "dspy_job_fixtures:nothing"}, "has no attribute 'nothing'"),
            ({"metric": 3}, "metric must be a callable"),
            ({"trainset": [{"question": "q0"}]}, "has no inputs"),
            ({"lm": dspy.LM("openai/gpt-4o-mini")}, "must be otpy.dspy.lm"),
            ({"max_cost": -1.0}, "max_cost"),
        ]
        for change, message in cases:
            arguments: dict[str, Any] = {
                "program": program,
                "optimizer": "BootstrapFewShot",
                "trainset": examples(2),
                "metric": exact,
                "base_dir": TESTS,
                **change,
            }
            with pytest.raises(ConfigurationError, match=message):
                rt.jobs.start_dspy(**arguments)
        foreign = dspy.Predict("question -> answer")
        foreign.set_lm(dspy.LM("openai/gpt-4o-mini"))
        with pytest.raises(ConfigurationError, match="predictor 'self' holds the LM"):
            rt.jobs.start_dspy(foreign, "evaluate", examples(2), metric=exact)
        assert rt.jobs.list() == []


def test_mappings_name_their_inputs_and_the_spec_keeps_references() -> None:
    sim = simulated()
    rows = [{"question": f"q{n}", "answer": f"A{n}"} for n in range(4)]
    with runtime(sim) as rt:
        job = rt.jobs.start_dspy(
            "dspy_job_fixtures:program",
            "evaluate",
            rows,
            inputs=["question"],
            metric="dspy_job_fixtures:exact",
            base_dir=TESTS,
        )
        status = job.wait(WAIT)
        spec = rt.jobs.store.load(job.id).spec
    assert status.best_score == 0.5 and status.name == "program"
    assert spec.dspy is not None and spec.dspy.program == "dspy_job_fixtures:program"
    assert spec.dspy.resumable_elsewhere == []
    assert spec.trainset[1] == {"inputs": {"question": "q1"}, "expected": {"answer": "A1"}}
    assert json.loads(spec.model_dump_json())["kind"] == "dspy"


def test_a_runtime_whose_jobs_run_elsewhere_says_a_dspy_job_runs_here(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from otpy.optimize import EXECUTORS

    monkeypatch.setitem(EXECUTORS, "elsewhere", EXECUTORS["threads"])
    config = {"plugins": False, "jobs_store": ":memory:", "jobs": {"executor": "elsewhere"}}
    with otpy.start(config) as rt, caplog.at_level("WARNING", logger="otpy.jobs"):
        job = rt.jobs.start_dspy(
            dspy.Predict("question -> answer"), "evaluate", examples(2), metric=exact,
            lm=otpy.dspy.lm(rt), job_id="here",
        )  # fmt: skip
        assert job.wait(WAIT).state == "completed"
    (warning,) = [r.getMessage() for r in caplog.records if "job here" in r.getMessage()]
    assert "runs its compile in this process" in warning and "'elsewhere'" in warning
