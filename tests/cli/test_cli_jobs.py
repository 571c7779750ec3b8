"""``otpy optimize`` and ``otpy jobs``: the real entry point in subprocesses for the example
job and Ctrl-C, in-process for job files, bad input, the progress bar and the tables."""

from __future__ import annotations

import inspect
import io
import json
import os
import re
import signal
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

import otpy
from otpy.__main__ import main
from otpy._cli_common import Console
from otpy._cli_optimize import JobProgress, job_lines
from otpy.actors import JobsHandle
from otpy.errors import ConfigurationError
from otpy.optimize import (
    METRICS,
    JobStatus,
    SQLiteJobStore,
    Trial,
    load_job_file,
    load_metric_plugins,
    register_metric,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "jobs" / "qa_tuning.yaml"
TIMEOUT = 60

PROGRAM = """\
name: echo
inputs: {question: {type: string}}
steps:
  - name: answer
    type: claude
    system: "{{ vars.instruction }}"
    max_tokens: "{{ vars.max_tokens }}"
    prompt: "{{ inputs.question }}"
outputs: {answer: "{{ steps.answer.output }}"}
"""
TRAIN = [
    {"inputs": {"question": "Which runtime restarts actors?"}, "expected": "runtime"},
    {"inputs": {"question": "What does a supervisor do?"}, "expected": "supervisor"},
]
JOB = """\
program: prog/echo.yaml
space:
  instruction: ["Answer briefly.", "Think first."]
  max_tokens: [8, 32]
trainset: data/train.jsonl
metric: contains
strategy: grid
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTPY_")}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _otpy(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "otpy", *map(str, args)]


def _job_dir(tmp_path: Path, job: str = JOB) -> Path:
    """A job file in tmp_path/jobs with its program and trainset in folders beside it."""
    folder = tmp_path / "jobs"
    (folder / "prog").mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / "prog" / "echo.yaml").write_text(PROGRAM)
    (folder / "data" / "train.jsonl").write_text("\n".join(json.dumps(e) for e in TRAIN) + "\n")
    (folder / "job.yaml").write_text(job)
    return folder / "job.yaml"


def _stored(store: Path, job_id: str) -> dict[int, Trial]:
    jobs = SQLiteJobStore(store)
    try:
        return jobs.load(job_id).trials
    finally:
        jobs.close()


# -- the real command ----------------------------------------------------------------------


def test_optimize_the_example_job_then_list_and_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "jobs.sqlite"
    result = subprocess.run(
        _otpy("optimize", EXAMPLE, "--store", store, "--job-id", "ex"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,  # the program and trainset are found beside the job file
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "rank", "candidate", "score", "ok", "errors", "tokens", "instruction", "max_tokens",
    ]  # fmt: skip
    assert lines[1].split()[:4] == ["1", "#2", "1", "6/6"] and lines[1].endswith(" 32")
    assert [line.split()[-1] for line in lines[1:6]] == ["32", "32", "16", "16", "8"]
    assert "ex (qa-budget): completed in " in result.stdout
    assert "  max_tokens: 32" in lines and f"store: {store}" in lines
    progress = result.stderr.splitlines()[-1]
    assert progress.startswith("completed  [") and "6/6 evals" in progress
    assert "best 1 (#2)" in progress

    assert main(["jobs", "list", "--store", str(store)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == [
        "job", "name", "state", "strategy", "evaluations", "best", "tokens", "elapsed",
    ]  # fmt: skip
    assert listing[1].split()[:6] == ["ex", "qa-budget", "completed", "grid", "6/6", "1"]

    assert main(["jobs", "status", "ex", "--store", str(store), "--json", "--top", "2"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["status"]["best_configuration"] == {
        "instruction": "Answer briefly.",
        "max_tokens": 32,
    }
    assert [trial["index"] for trial in document["top"]] == [2, 5]
    assert "examples" not in document["top"][0]


def test_ctrl_c_leaves_the_job_interrupted_and_resume_finishes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "jobs.sqlite"
    held = tmp_path / "held.yaml"  # the provider answers candidate 0's 6 calls, holds the rest
    held.write_text("providers:\n  simulated:\n    type: held\n")
    job = tmp_path / "job.yaml"  # the example's, one call at a time: candidate 0's come first
    job.write_text(
        EXAMPLE.read_text()
        .replace("concurrency: 4", "concurrency: 1")
        .replace("trainset: qa_train.jsonl", f"trainset: {EXAMPLE.parent / 'qa_train.jsonl'}")
    )
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("held_cli.py")), "6",
         "optimize", job, "--store", store, "--config", held, "--job-id", "cc",
         "--progress-interval", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )  # fmt: skip
    assert process.stderr is not None
    seen = []
    try:
        for line in process.stderr:  # until candidate 0 is checkpointed: the job cannot end
            seen.append(line)
            done = re.search(r"\] (\d+)/6 evals", line)
            if done is not None and int(done.group(1)) >= 1:
                break
        else:
            pytest.fail(f"no candidate finished: {seen}")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert out == ""  # no table for a job that did not end
    assert "Traceback" not in err
    assert f"go on with: otpy jobs resume cc --store {store}" in err
    before = _stored(store, "cc")
    assert sorted(before) == [0]  # candidate 0 only: the rest were held

    assert main(["jobs", "list", "--store", str(store)]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[2] == "interrupted"

    # resumed on the fast default provider: what finished before is kept, not re-run
    assert main(["jobs", "resume", "cc", "--store", str(store), "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "cc (qa-budget): completed in " in captured.out
    after = _stored(store, "cc")
    assert sorted(after) == list(range(6))
    assert all(after[index] == trial for index, trial in before.items())
    assert "  max_tokens: 32" in captured.out.splitlines()


# -- job files -----------------------------------------------------------------------------


def test_a_job_file_resolves_its_paths_against_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _job_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    job = load_job_file("jobs/job.yaml")
    assert job.program == Path("jobs/prog/echo.yaml")
    assert job.trainset == TRAIN
    assert job.store is None and job.job_id is None
    assert job.position("space", "max_tokens") == "jobs/job.yaml:4:3"
    arguments = job.start_arguments()
    parameters = inspect.signature(JobsHandle.start).parameters
    assert set(arguments) <= set(parameters)  # every field is a start keyword
    assert set(arguments) == {"program", "space", "trainset", "metric", "options"}
    assert arguments["options"] is job.options  # one JobOptions, no round trip
    assert (job.options.strategy, job.options.round_size) == ("grid", 4)

    (path.parent / "data" / "train.json").write_text(json.dumps(TRAIN))
    (path.parent / "data" / "train.yaml").write_text(json.dumps(TRAIN))  # JSON is YAML
    for name in ("train.json", "train.yaml"):
        path.write_text(JOB.replace("train.jsonl", name) + "store: state/jobs.sqlite\n")
        job = load_job_file(path)
        assert job.trainset == TRAIN and job.store == path.parent / "state" / "jobs.sqlite"


def test_a_job_runs_inline_with_a_registered_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register_metric("test_cli_jobs.length", lambda example, result: len(result.text) / 100.0)
    job = tmp_path / "inline.yaml"
    job.write_text(
        "job_id: inline\nprogram:\n"
        + "".join(f"  {line}\n" for line in PROGRAM.splitlines())
        + "space: {instruction: [a], max_tokens: [4, 8, 16]}\n"
        + f"trainset: {json.dumps(TRAIN)}\n"
        + "metric: test_cli_jobs.length\nstrategy: random_search\nmax_evaluations: 2\n"
    )
    store = tmp_path / "s.sqlite"
    assert main(["optimize", str(job), "--store", str(store), "--json", "-q"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["status"]["state"] == "completed"
    assert document["status"]["evaluations_done"] == 2
    assert document["status"]["job_id"] == "inline"
    scores = [trial["score"] for trial in document["top"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 2

    # the id is taken now: a second start says how to see it
    assert main(["optimize", str(job), "--store", str(store), "-q"]) == 2
    err = capsys.readouterr().err
    assert "job 'inline' already exists in" in err and "(completed)" in err
    assert f"otpy jobs status inline --store {store}" in err
    assert main(["jobs", "resume", "inline", "--store", str(store)]) == 2
    assert "job 'inline' is completed; nothing to resume" in capsys.readouterr().err


PROGRAM_INLINE = 'program: {name: p, steps: [{name: s, type: claude, prompt: "{{ vars.a }}"}]}\n'
GOOD_REST = "space: {a: [1, 2]}\ntrainset: [{inputs: {}}]\nmetric: contains\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- a\n- b\n", "job.yaml: a job file is a mapping"),
        ("program: !!python/object/apply:os.system [echo]\n", "job.yaml:1:10: refused YAML tag"),
        ("program: x.yaml\n" + GOOD_REST, "job.yaml:1:1: program: "),
        (PROGRAM_INLINE + GOOD_REST + "max_evaluation: 3\n",
         "job.yaml:5:1: max_evaluation: not a job file field; did you mean 'max_evaluations'?"),
        (PROGRAM_INLINE + "space: {a: [1]}\ntrainset: [{inputs: {}}]\n",
         "job.yaml: metric: is required"),
        (PROGRAM_INLINE + GOOD_REST + "concurrency: 0\n",
         "job.yaml:5:1: concurrency: Input should be greater than or equal to 1, got int 0"),
        (PROGRAM_INLINE + GOOD_REST.replace("contains", "contain"),
         "job.yaml:4:1: metric: unknown metric 'contain'; did you mean 'contains'?"),
        (PROGRAM_INLINE + GOOD_REST + "strategy: gird\n",
         "job.yaml:5:1: strategy: unknown strategy 'gird'; did you mean 'grid'?"),
        (PROGRAM_INLINE + GOOD_REST.replace("[1, 2]", "{low: 1}"),
         "job.yaml:2:9: space variable 'a': "),
        (PROGRAM_INLINE + GOOD_REST.replace("[{inputs: {}}]", "[{inputs: {}}, {q: 1}]"),
         "job.yaml:3:26: trainset[1]: an example is a mapping with inputs"),
        (PROGRAM_INLINE + GOOD_REST.replace("[{inputs: {}}]", "train.jsonl"),
         "train.jsonl:2:1: Expecting value"),
        (PROGRAM_INLINE + GOOD_REST.replace("[{inputs: {}}]", "train.csv"),
         "job.yaml:3:1: trainset: "),
        (PROGRAM_INLINE.replace("claude", "claud") + GOOD_REST,
         "job.yaml:1:1: program: step 's', field 'type': unknown step type 'claud'; did you mean"),
    ],
)  # fmt: skip
def test_a_bad_job_file_exits_2_naming_the_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    (tmp_path / "train.jsonl").write_text('{"inputs": {}}\nnot json\n')
    (tmp_path / "train.csv").write_text("a,b\n")
    (tmp_path / "job.yaml").write_text(content)
    store = tmp_path / "s.sqlite"
    assert main(["optimize", str(tmp_path / "job.yaml"), "--store", str(store), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("otpy: error: ") and message in err, err
    assert "Traceback" not in err
    assert not store.exists() or not SQLiteJobStore(store).job_ids()  # nothing was started


def test_bad_options_and_unknown_jobs_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "s.sqlite")
    assert main(["jobs", "list", "--store", store]) == 0
    assert capsys.readouterr().out == f"no jobs in {store}\n"
    assert main(["jobs", "list", "--store", store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    for argv, message in (
        (["jobs", "status", "nope", "--store", store], "no job 'nope'"),
        (["jobs", "resume", "nope", "--store", store], "no job 'nope'"),
        (["jobs", "status", "nope", "--store", store, "--top", "-1"], "--top must be 0 or more"),
        (["optimize", str(EXAMPLE), "--store", store, "--progress-interval", "-1"],
         "--progress-interval must be 0 or more seconds"),
    ):  # fmt: skip
        assert main(argv) == 2
        assert message in capsys.readouterr().err


def test_metric_plugins_register_functions_and_skip_the_rest() -> None:
    def plugin(example: Any, result: Any) -> float:
        return 1.0

    sys.modules[__name__].plugin_metric = plugin  # type: ignore[attr-defined]
    entry_points = [
        EntryPoint("test_cli_jobs.plugin", f"{__name__}:plugin_metric", "otpy.metrics"),
        EntryPoint("test_cli_jobs.not_callable", f"{__name__}:ROOT", "otpy.metrics"),
        EntryPoint("contains", f"{__name__}:plugin_metric", "otpy.metrics"),  # taken
        EntryPoint("other.group", f"{__name__}:plugin_metric", "otpy.steps"),
    ]
    reports = load_metric_plugins(entry_points)
    assert [(r.name, r.loaded) for r in reports] == [
        ("test_cli_jobs.plugin", True),
        ("test_cli_jobs.not_callable", False),
        ("contains", False),
    ]
    assert METRICS["test_cli_jobs.plugin"] is plugin
    assert "is not a function" in str(reports[1].error)
    assert "already registered" in str(reports[2].error)
    assert load_metric_plugins(entry_points)[0].loaded  # loading twice is harmless
    with pytest.raises(ConfigurationError, match="already registered"):
        register_metric("test_cli_jobs.plugin", lambda example, result: 0.0)


# -- progress and tables -------------------------------------------------------------------


def _status(**fields: Any) -> JobStatus:
    base: dict[str, Any] = {"job_id": "j", "name": "qa", "state": "running", "strategy": "grid"}
    return JobStatus(**{**base, **fields})


class _Stream(io.StringIO):
    def __init__(self, tty: bool, encoding: str = "utf-8") -> None:
        super().__init__()
        self._tty, self._encoding = tty, encoding

    def isatty(self) -> bool:
        return self._tty

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding


def test_progress_renders_the_bar_best_tokens_and_eta() -> None:
    progress = JobProgress(Console(_Stream(tty=False, encoding="ascii")))
    status = _status(
        evaluations_done=5, evaluations_total=20, best_score=0.75, best_index=3, tokens=12345,
        errors=2, in_flight=4, elapsed=10.0, eta=30.0,
    )  # fmt: skip
    assert progress.render(status) == (
        "[#####---------------] 5/20 evals  best 0.75 (#3)  12,345 tok  2 errors  4 running"
        "  10.00s  ETA 30.00s"
    )
    fancy = JobProgress(Console(_Stream(tty=False)))
    assert (
        fancy.render(_status(state="paused", evaluations_done=3)) == "paused  3 evals  0 tok  0.0ms"
    )
    assert fancy.render(_status(evaluations_done=20, evaluations_total=20)).startswith(
        "[" + "\u2588" * 20 + "] 20/20 evals"
    )


def test_progress_redraws_on_a_terminal_and_throttles_on_a_pipe() -> None:
    terminal = _Stream(tty=True)
    live = JobProgress(Console(terminal))
    live.update(_status(evaluations_done=1))
    live.update(_status(evaluations_done=1))  # nothing changed: nothing drawn
    live.update(_status(state="completed", evaluations_done=2), final=True)
    assert terminal.getvalue() == (
        "\r1 evals  0 tok  0.0ms\x1b[K\rcompleted  2 evals  0 tok  0.0ms\x1b[K\n"
    )
    pipe = _Stream(tty=False)
    logged = JobProgress(Console(pipe), interval=3600)
    for done in range(1, 5):
        logged.update(_status(evaluations_done=done))
    logged.update(_status(state="completed", evaluations_done=5), final=True)
    assert pipe.getvalue().splitlines() == [
        "1 evals  0 tok  0.0ms",  # the first change, then nothing within the hour
        "completed  5 evals  0 tok  0.0ms",  # the last one always
    ]
    every = _Stream(tty=False)
    each = JobProgress(Console(every), interval=0)
    for done in range(1, 4):
        each.update(_status(evaluations_done=done))
    assert len(every.getvalue().splitlines()) == 3


def test_job_lines_rank_candidates_and_show_demos_compactly() -> None:
    demos = [{"inputs": {"q": "a"}, "output": "b"}] * 2
    trials = [
        Trial(index=0, round=0, configuration={"demos": demos, "t": 0.5}, status="completed",
              score=0.5, tokens=1000),
        Trial(index=1, round=0, configuration={"demos": [], "t": 1.0}, status="aborted",
              score=None, errors=3),
        Trial(index=2, round=0, configuration={"demos": demos[:1], "t": 0.25},
              status="completed", score=0.5),
    ]  # fmt: skip
    status = _status(
        state="cancelled", evaluations_done=3, best_score=0.5, best_index=0,
        best_configuration={"demos": demos, "t": 0.5}, cost=0.01234, error=None,
    )  # fmt: skip
    lines = job_lines(status, trials, top=5, store="s.sqlite")
    assert [line.split()[:3] for line in lines[1:4]] == [
        ["1", "#0", "0.5"], ["2", "#2", "0.5"], ["3", "#1", "aborted"],
    ]  # fmt: skip
    assert lines[1].split()[-3:] == ["2", "demos", "0.5"] and lines[2].split()[-3:] == [
        "1",
        "demo",
        "0.25",
    ]
    assert (
        "j (qa): cancelled in 0.0ms, 3 evaluations, 0 failed examples, 0 tokens, $0.0123"
        in (lines[5])
    )
    assert lines[-1] == "store: s.sqlite"
    assert job_lines(status, trials, top=0, store="s")[0].startswith("j (qa): cancelled")


def test_otpy_re_exports_the_job_api() -> None:
    for name in ("JobStatus", "JobSpec", "SearchSpace", "Strategy", "Trial", "register_metric",
                 "register_strategy", "load_job_file", "JobHandle"):  # fmt: skip
        assert getattr(otpy, name) is not None  # JobSpec and Trial resolve, unlisted


SUB = """\
name: sub
inputs: {question: {type: string}}
steps:
  - {name: answer, type: claude, prompt: "{{ inputs.question }}"}
outputs: {answer: "{{ steps.answer.output }}"}
"""
MAIN = """\
name: main
inputs: {question: {type: string}}
steps:
  - name: call
    type: pipeline
    pipeline: sub.yaml
    inputs: {question: "{{ vars.prefix }} {{ inputs.question }}"}
outputs: {answer: "{{ steps.call.output.answer }}"}
"""


@pytest.mark.parametrize("inline", [False, True])
def test_sub_pipeline_paths_resolve_beside_the_program_in_a_job(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    inline: bool,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "sub.yaml").write_text(SUB)
    (project / "main.yaml").write_text(MAIN)
    program = (
        "program:\n" + "".join(f"  {line}\n" for line in MAIN.splitlines())
        if inline
        else "program: main.yaml\n"
    )
    (project / "job.yaml").write_text(
        program + "space: {prefix: [Q, Question]}\n"
        "trainset: [{inputs: {question: why}, expected: why}]\nmetric: contains\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # sub.yaml is not in the working directory
    store = tmp_path / "s.sqlite"
    assert main(["optimize", str(project / "job.yaml"), "--store", str(store), "-q", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)["status"]
    assert (status["evaluations_done"], status["errors"]) == (2, 0)  # every sub-run found
