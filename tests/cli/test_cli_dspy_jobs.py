"""``otpy optimize`` with a ``kind: dspy`` job file (its program and metric in a module beside
it), then ``otpy jobs status``, ``export``, ``pause`` and ``cancel`` of a job that does not
run here; bad DSPy job files name the file, line and field."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import dspy
import pytest

from otpy.__main__ import main
from otpy.errors import ConfigurationError
from otpy.optimize import DSPyJobFile, load_job_file

pytestmark = pytest.mark.usefixtures("quiet_dspy")

PROGRAM = """\
import dspy

program = dspy.Predict("question -> answer")


def exact(example, prediction, trace=None):
    return float(prediction.answer == example.answer)
"""


def _job(tmp_path: Path, body: str | None = None) -> tuple[Path, str]:
    """A DSPy job file in tmp_path, its program module (a name of its own) beside it."""
    module = f"cli_dspy_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(PROGRAM)
    rows = [{"question": f"q{n}", "answer": f"A{n}"} for n in range(4)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    text = body or (
        "kind: dspy\n"
        "job_id: qa\n"
        f"program: {module}:program\n"
        "optimizer:\n"
        "  name: BootstrapFewShotWithRandomSearch\n"
        "  options: {max_bootstrapped_demos: 1, max_labeled_demos: 1, num_candidate_programs: 1}\n"
        "trainset: train.jsonl\n"
        "inputs: [question]\n"
        f"metric: {module}:exact\n"
        "threads: 1\n"
        "max_calls: 500\n"
        "jobs_store: jobs.sqlite\n"
    )
    job = tmp_path / "job.yaml"
    job.write_text(text.replace("MODULE", module))
    return job, module


def test_optimize_a_dspy_job_file_then_status_export_and_steering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job, _ = _job(tmp_path)
    store = tmp_path / "jobs.sqlite"
    assert main(["optimize", str(job), "--progress-interval", "0"]) == 0
    captured = capsys.readouterr()
    progress = captured.err.splitlines()[-1]
    assert progress.startswith("completed  ") and " calls" in progress and " evals" in progress
    lines = captured.out.splitlines()
    header = next(line for line in lines if line.startswith("rank"))
    assert header.split()[:4] == ["rank", "evaluation", "score", "examples"]
    assert "self.demos" in header and "self.instructions" in header
    summary = next(line for line in lines if line.startswith("qa (program, "))
    assert "BootstrapFewShotWithRandomSearch): completed in " in summary
    assert f"store: {store}" in lines

    assert main(["jobs", "status", "qa", "--store", str(store), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["status"]["kind"] == "dspy" and document["status"]["lm_calls"] > 0
    assert document["top"] and all(t["score"] is not None for t in document["top"])

    exported = tmp_path / "out" / "qa.json"
    assert main(["jobs", "export", "qa", str(exported), "--store", str(store)]) == 0
    assert f"wrote {exported}" in capsys.readouterr().out
    program = dspy.Predict("question -> answer")
    program.load(str(exported))  # DSPy's own format
    assert program.signature.instructions

    assert main(["jobs", "pause", "qa", "--store", str(store)]) == 1
    assert "job qa cannot pause: it is completed" in capsys.readouterr().err
    assert main(["jobs", "cancel", "qa", "--store", str(store)]) == 0  # ended: it says so
    assert capsys.readouterr().out == "qa: completed\n"
    assert main(["jobs", "export", "qa", str(tmp_path / "qa.txt"), "--store", str(store)]) == 2
    assert "exported to a .json file" in capsys.readouterr().err


def test_a_dspy_job_file_is_read_with_its_examples_and_options(tmp_path: Path) -> None:
    job, module = _job(tmp_path)
    read = load_job_file(job)
    assert isinstance(read, DSPyJobFile)
    arguments = read.start_arguments()
    assert arguments["program"] == f"{module}:program" and arguments["job_id"] == "qa"
    assert arguments["trainset"][0] == {"question": "q0", "answer": "A0"}
    assert arguments["optimizer"] == "BootstrapFewShotWithRandomSearch"
    assert arguments["optimizer_options"]["num_candidate_programs"] == 1
    assert arguments["base_dir"] == tmp_path.resolve() and read.store == tmp_path / "jobs.sqlite"
    assert read.lm_arguments() is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "kind: dspy\nprogram: MODULE:program\noptimizer: {name: MIPROv2, colour: 1}\n"
            "trainset: train.jsonl\ninputs: [question]\nmetric: MODULE:exact\n",
            "job.yaml:3:28: optimizer.colour: not a field of optimizer (fields: compile, name, "
            "options)",
        ),
        (
            "kind: dspy\nprogram: MODULE:program\noptimizer: evaluate\ntrainset: train.jsonl\n"
            "inputs: [query]\nmetric: MODULE:exact\n",
            "trainset example 1 lacks the input fields ['query']",
        ),
        (
            "kind: dspy\nprogram: not a reference\noptimizer: evaluate\n"
            "trainset: train.jsonl\ninputs: [question]\nmetric: MODULE:exact\n",
            "job.yaml:2:1: program: must be a reference 'module:attr'",
        ),
        (
            "kind: dspy\nprogram: MODULE:program\noptimizer: evaluate\ntrainset: train.jsonl\n"
            "inputs: [question]\nmetric: MODULE:exact\nstore: a\njobs_store: b\n",
            "give jobs_store or store, not both",
        ),
        ("kind: dspx\n", "kind: 'dspx' is not a kind of job (pipeline, dspy)"),
    ],
)
def test_bad_dspy_job_files_name_the_place(tmp_path: Path, body: str, message: str) -> None:
    job, _ = _job(tmp_path, body)
    with pytest.raises(ConfigurationError) as raised:
        load_job_file(job)
    assert message in str(raised.value)


def test_a_reference_that_cannot_be_imported_is_refused_before_the_job_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = (
        "kind: dspy\nprogram: MODULE:progrm\noptimizer: MIPROv3\ntrainset: train.jsonl\n"
        "inputs: [question]\nmetric: MODULE:exact\n"
    )
    job, module = _job(tmp_path, body)
    store = tmp_path / "jobs.sqlite"
    assert main(["optimize", str(job), "--store", str(store), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{job}: job " in err and f"{module!r} has no attribute 'progrm'" in err
    assert main(["jobs", "list", "--store", str(store)]) == 0
    assert capsys.readouterr().out == f"no jobs in {store}\n"


def test_the_json_top_of_a_dspy_job_ranks_its_evaluations_as_the_table_does() -> None:
    """A minibatch evaluation that scored higher does not go above a full one (--json)."""
    from otpy._cli_optimize import job_document
    from otpy.optimize import ExampleResult, JobStatus, Trial

    def trial(index: int, scores: list[float]) -> Trial:
        examples = [ExampleResult(example=i, score=s) for i, s in enumerate(scores)]
        score = sum(scores) / len(scores)
        return Trial(index=index, round=0, configuration={}, status="completed", score=score,
                     examples=examples)  # fmt: skip

    trials = [trial(0, [1.0, 1.0]), trial(1, [0.5] * 10)]
    status = JobStatus(job_id="qa", name="qa", state="completed", strategy="MIPROv2", kind="dspy")
    assert [t["index"] for t in job_document(status, trials, 5)["top"]] == [1, 0]
    pipeline = status.model_copy(update={"kind": "pipeline"})
    assert [t["index"] for t in job_document(pipeline, trials, 5)["top"]] == [0, 1]


def test_a_dspy_job_id_the_store_holds_says_how_to_see_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job, _ = _job(tmp_path)
    assert main(["optimize", str(job), "-q"]) == 0
    capsys.readouterr()
    assert main(["optimize", str(job), "-q"]) == 2
    err = capsys.readouterr().err
    assert "job 'qa' already exists in" in err and "(completed)" in err
    assert "otpy jobs status qa --store " in err
