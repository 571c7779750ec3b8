"""The ``otpy`` command line: the real entry point in a subprocess (``python -m otpy`` and
the installed ``otpy`` script), plus in-process checks of its parts."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from otpy.__main__ import main
from otpy._cli_common import CliError, Console, duration, read_mapping, yaml_value
from otpy._cli_run import parse_inputs, result_lines
from otpy.pipelines import PipelineResult, StepError, StepOutcome

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TIMEOUT = 60

TYPED = """\
name: typed
inputs:
  n: {type: integer}
  flag: {type: boolean}
  code: {type: string}
  label: {type: string}
  items: {type: list}
  anything: {type: any}
steps:
  - name: keep
    type: set_variable
    variables: {doubled: "{{ inputs.items }}"}
  - name: ask
    type: claude
    prompt: "n={{ inputs.n }} code={{ inputs.code }} t={{ vars.t }}"
outputs:
  answer: "{{ steps.ask.output }}"
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTPY_")}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def otpy(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python -m otpy ARGS`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "otpy", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        env=_env(),
    )


def _no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout


# -- run -----------------------------------------------------------------------------------


def test_run_shows_progress_then_the_table_and_the_outputs() -> None:
    result = otpy("run", "examples/analysis.yaml", "-i", "text=The release fixed every crash.")
    assert result.returncode == 0, result.stderr
    progress = result.stderr.splitlines()
    assert progress[0] == "\u25b6 step 1/4 summary (claude_smart)"
    assert progress[1].startswith("\u2713 summary ") and progress[1].endswith(" tok simulated")
    assert [line.split()[1] for line in progress[::2]] == ["step"] * 4
    assert [line.split()[1] for line in progress[1::2]] == [
        "summary", "key_points", "sentiment", "report",
    ]  # fmt: skip
    out = result.stdout.splitlines()
    assert out[0].split() == [
        "step", "type", "status", "time", "tokens", "provider", "retries", "error",
    ]  # fmt: skip
    rows = [line.split() for line in out[1:5]]
    assert [row[:3] for row in rows] == [
        ["summary", "claude_smart", "ok"],
        ["key_points", "gemini_instructor", "ok"],
        ["sentiment", "gemini_instructor", "ok"],
        ["report", "claude", "ok"],
    ]
    assert all(row[5] == "simulated" and int(row[4]) > 0 for row in rows)
    assert "analysis: completed in " in result.stdout and "4/4 steps ok" in result.stdout
    assert "outputs:" in out
    assert any(line.startswith("  sentiment: ") for line in out)
    assert any(line.startswith("  key_points: [") for line in out)


def test_run_json_is_one_document_with_typed_inputs(tmp_path: Path) -> None:
    (tmp_path / "typed.yaml").write_text(TYPED)
    result = otpy(
        "run", "typed.yaml", "--json",
        "-i", "n=3", "-i", "flag=true", "-i", "code=007", "-i", "label=\"3\"",
        "-i", "items=[1, two]", "-i", "anything='3'", "--var", "t=0.5",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # the whole of stdout: one JSON document
    assert document["status"] == "completed"
    assert [step["name"] for step in document["steps"]] == ["keep", "ask"]
    assert document["inputs"] == {
        "n": 3, "flag": True, "code": "007", "label": "3", "items": [1, "two"], "anything": "3",
    }  # fmt: skip
    assert document["variables"] == {"t": 0.5, "doubled": [1, "two"]}
    assert "n=3 code=007 t=0.5" in document["outputs"]["answer"]
    assert "\u2713 ask " in result.stderr  # progress still on stderr


def test_installed_script_runs_qa_with_its_variables() -> None:
    script = shutil.which("otpy", path=str(Path(sys.executable).parent))
    assert script is not None, "the otpy console script is not installed next to python"
    result = subprocess.run(
        [script, "run", "examples/qa.yaml", "-i", "question=2+2?", "--json",
         "--var", "instruction=Answer briefly.", "--var", "temperature=0.2"],
        capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT, env=_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "completed"
    assert document["variables"] == {"instruction": "Answer briefly.", "temperature": 0.2}
    assert document["outputs"]["answer"].startswith("Simulated answer (sim-1) to: 2+2?")


def test_a_failed_run_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "failing.yaml"
    config.write_text(
        "providers:\n  simulated:\n    options: {failure_rate: 1.0}\n"
        "    limits: {max_attempts: 1}\n"
    )
    result = otpy("run", EXAMPLES / "analysis.yaml", "-i", "text=hi", "--config", config)
    assert result.returncode == 1, result.stderr
    _no_traceback(result)
    assert "\u2717 summary " in result.stderr and "ServerError" in result.stderr
    assert "failed at step 'summary'" in result.stderr
    rows = [line.split()[:3] for line in result.stdout.splitlines()[1:5]]
    assert rows[0] == ["summary", "claude_smart", "failed"]
    assert [row[2] for row in rows[1:]] == ["not_run"] * 3
    assert "outputs:" not in result.stdout


def test_malformed_yaml_exits_2_with_the_position(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: x\nsteps:\n  - name: a\n    prompt: [hi\n")
    result = otpy("run", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 2
    _no_traceback(result)
    assert result.stdout == ""
    assert result.stderr.startswith("otpy: error: bad.yaml:5:1: malformed YAML")


def test_bad_inputs_exit_2_naming_the_closest_input() -> None:
    result = otpy("run", "examples/analysis.yaml", "-i", "txt=hello")
    assert result.returncode == 2
    _no_traceback(result)
    assert "unknown input 'txt'; did you mean 'text'?" in result.stderr


# -- validate ------------------------------------------------------------------------------


def test_validate_reports_each_file(tmp_path: Path) -> None:
    (tmp_path / "unknown.yaml").write_text("name: u\nsteps:\n  - name: a\n    type: claud\n")
    (tmp_path / "tagged.yaml").write_text(
        "name: t\nsteps:\n  - name: a\n    type: claude\n"
        "    prompt: !!python/object/apply:os.system [echo hi]\n"
    )
    (tmp_path / "missing.yaml").write_text("name: m\nsteps:\n  - name: ask\n    type: claude\n")
    result = otpy(
        "validate", EXAMPLES / "analysis.yaml", "unknown.yaml", "tagged.yaml", "missing.yaml",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    _no_traceback(result)
    assert result.stdout.startswith("ok analysis (4 steps)")
    errors = result.stderr.splitlines()
    assert len(errors) == 3
    assert errors[0].startswith("invalid unknown.yaml: ")
    assert "unknown step type 'claud'; did you mean 'claude'?" in errors[0]
    assert errors[0].endswith("(unknown.yaml:4:5)")
    assert "tagged.yaml:5:13: refused YAML tag '!!python/object/apply:os.system'" in errors[1]
    assert "step 'ask', field 'prompt': is required" in errors[2]


def test_validate_every_example() -> None:
    result = otpy("validate", *sorted(EXAMPLES.glob("*.yaml")))
    assert result.returncode == 0, result.stderr
    names = [line.split()[1] for line in result.stdout.splitlines()]
    assert names == ["analysis", "batch", "extraction", "qa", "robust"]


# -- steps, providers, schema -------------------------------------------------------------


def test_steps_lists_the_registered_types() -> None:
    result = otpy("steps")
    assert result.returncode == 0, result.stderr
    assert "claude 1.0.0  (capabilities: text)" in result.stdout
    assert "  required: prompt" in result.stdout
    for name in ("claude_batch", "gemini_instructor", "set_variable", "pipeline"):
        assert f"\n{name} " in result.stdout


def test_steps_json_filters_by_capability() -> None:
    result = otpy("steps", "--capability", "structured_output", "--json")
    assert result.returncode == 0, result.stderr
    (step,) = json.loads(result.stdout)
    assert step["name"] == "gemini_instructor"
    assert step["required_fields"] == ["prompt"]
    assert "structured_output" in step["capabilities"] and step["version"] == "1.0.0"


def test_providers_table() -> None:
    result = otpy("providers")
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split()[:7] == [
        "provider", "type", "priority", "healthy", "breaker", "errors", "calls",
    ]  # fmt: skip
    assert row.split()[:7] == ["simulated", "SimulatedProvider", "0", "yes", "closed", "0%", "0"]
    assert "structured_output" in row


def test_providers_json() -> None:
    result = otpy("providers", "--json")
    assert result.returncode == 0, result.stderr
    (provider,) = json.loads(result.stdout)
    assert provider["name"] == "simulated" and "text" in provider["capabilities"]
    health = provider["health"]
    assert health["healthy"] is True and health["breaker_state"] == "closed"
    assert health["error_rate"] == 0.0


def test_schema_is_the_pipeline_json_schema() -> None:
    result = otpy("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "steps" in schema["properties"] and "name" in schema["required"]


# -- in process ----------------------------------------------------------------------------


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "usage: otpy" in capsys.readouterr().err


def test_inputs_file_then_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in.json").write_text(json.dumps({"questions": ["a?", "b?"], "style": "haiku"}))
    status = main(
        ["run", str(EXAMPLES / "batch.yaml"), "--inputs", str(tmp_path / "in.json"),
         "-i", "style=one word", "--json", "-q"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.err == ""  # --quiet: no progress
    document = json.loads(captured.out)
    assert document["inputs"] == {"questions": ["a?", "b?"], "style": "one word"}


def test_progress_shows_fallbacks_and_skips(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["run", str(EXAMPLES / "robust.yaml"), "-i", "question=Up?", "-i", "review=no"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    progress = captured.err.splitlines()
    assert progress[3].startswith("\u2713 parsed ")
    assert "(fallback parsed.fallback after InvalidValueError: " in progress[3]
    assert progress[4:] == ["\u25b6 step 3/3 review (claude)", "\u2013 review skipped"]
    rows = {line.split()[0]: line.split() for line in captured.out.splitlines()[1:4]}
    assert rows["parsed"][2:4] == ["ok", "(fallback)"]
    assert rows["review"][2:] == ["skipped", "-", "-", "-", "-"]
    assert "  review: null" in captured.out.splitlines()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "must hold a mapping of names to values, got list"),
        ("a: [1\n", "malformed YAML"),
    ],
)
def test_bad_inputs_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    (tmp_path / "in.yaml").write_text(content)
    status = main(["run", str(EXAMPLES / "qa.yaml"), "--inputs", str(tmp_path / "in.yaml")])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("otpy: error: --inputs: ") and message in err


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "otpy.yaml").write_text("providers: {sim: {options: {failure_rate: 7}}}\n")
    status = main(["steps", "--config", str(tmp_path / "otpy.yaml")])
    assert status == 2
    assert "failure_rate" in capsys.readouterr().err


def test_yaml_values() -> None:
    assert yaml_value("3") == 3 and yaml_value("0.2") == 0.2 and yaml_value("true") is True
    assert yaml_value("null") is None and yaml_value('"3"') == "3" and yaml_value("") == ""
    assert yaml_value("[a, 1]") == ["a", 1] and yaml_value("{k: v}") == {"k": "v"}
    # plain text stays text: no surprise mappings, dates or YAML errors
    assert yaml_value("Think: then answer") == "Think: then answer"
    assert yaml_value("2025-01-01") == "2025-01-01"
    assert yaml_value("a: b: c") == "a: b: c"
    with pytest.raises(CliError, match=r"-i q: .* is not a YAML list or mapping"):
        yaml_value("[What is OTP?, Why?]", "-i q")


def test_parse_inputs_follows_the_declared_types() -> None:
    declared = {"code": "string", "n": "integer"}
    pairs = ["code=007", "n=007", "other=x=y", "code2='a b'"]
    assert parse_inputs(pairs, declared) == {"code": "007", "n": 7, "other": "x=y", "code2": "a b"}
    assert parse_inputs(["code='\"x\"'"], declared) == {"code": '"x"'}
    with pytest.raises(CliError, match="takes key=value"):
        parse_inputs(["novalue"], declared)


def test_read_mapping_errors(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="cannot read"):
        read_mapping(str(tmp_path / "nope.yaml"), "--inputs")
    (tmp_path / "bad.json").write_text("{1")
    with pytest.raises(CliError, match=r"bad\.json:1:2"):
        read_mapping(str(tmp_path / "bad.json"), "--inputs")
    (tmp_path / "empty.yaml").write_text("")
    assert read_mapping(str(tmp_path / "empty.yaml"), "--inputs") == {}


def test_console_falls_back_to_ascii() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    console = Console(stream)
    assert not console.fancy and console.symbol("ok") == "+"
    console.line("caf\u00e9 \u2713")
    assert raw.getvalue() == b"caf\\xe9 \\u2713\n"
    assert Console(io.TextIOWrapper(io.BytesIO(), encoding="utf-8")).symbol("ok") == "\u2713"


def test_durations() -> None:
    assert duration(0.0034) == "3.4ms"
    assert duration(0.12) == "0.12s"
    assert duration(65.2) == "1m05s"
    assert duration(float("nan")) == "-"


def _outcome(name: str, status: Any, **more: Any) -> StepOutcome:
    return StepOutcome(name=name, type="claude", status=status, **more)


def test_result_lines_of_a_failed_run() -> None:
    long_error = StepError(type="ServerError", message="x" * 100)
    result = PipelineResult(
        pipeline="p",
        run_id="r1",
        status="failed",
        steps=(
            _outcome("a", "skipped"),
            _outcome("b", "failed", error=long_error, duration=0.5),
            _outcome("c", "not_run"),
        ),
        error=long_error,
        failed_step="b",
    )
    lines = result_lines(result)
    assert lines[1].split() == ["a", "claude", "skipped", "-", "-", "-", "-"]
    assert lines[2].split()[:7] == ["b", "claude", "failed", "0.50s", "0", "-", "0"]
    assert lines[2].endswith("...")  # cut in the table, whole below it
    assert "p: failed in 0.0ms, 0/3 steps ok, 0 tokens (run r1)" in lines
    assert f"  b: ServerError: {'x' * 100}" in lines
    assert "outputs:" not in lines
