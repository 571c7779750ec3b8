"""Bad pipeline_ex input never kills the runtime: each malformed document is refused with
an OtpyError naming what and where (or its run fails with one), and the same runtime then
runs a good pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from otpy import Runtime
from otpy.errors import OtpyError

GOOD = {"workflow": {"name": "good", "steps": [{"name": "ok", "type": "test_echo", "value": 1}]}}


def doc(*steps: dict[str, object], **workflow: object) -> dict[str, object]:
    return {"workflow": {"name": "bad", "steps": list(steps), **workflow}}


def echo(**fields: object) -> dict[str, object]:
    return {"name": "e", "type": "test_echo", "value": "x", **fields}


# fmt: off
REFUSED = [
    ("workflow: [not, a, mapping]", "workflow"),
    ("workflow:\n  name: x\n  steps: [\n", "malformed YAML"),
    (doc(echo(condition="steps.a.score >")), "condition"),
    (doc(echo(condition="len(")), "condition"),
    (doc(echo(condition="__import__('os')")), "condition"),
    (doc(echo(value="{{ steps.e.output.__class__ }}")), "'__'"),
    (doc({"name": "e", "type": "nope"}), "unknown step type"),
    (
        doc(
            {
                "name": "l",
                "type": "for_loop",
                "iterator": "1x",
                "data_source": [1],
                "steps": [echo()],
            }
        ),
        "iterator",
    ),
    (
        doc({"name": "l", "type": "for_loop", "iterator": "x", "data_source": [1], "steps": []}),
        "steps",
    ),
    (
        doc({"name": "w", "type": "while_loop", "condition": "x >", "steps": [echo()]}),
        "condition",
    ),
    (
        doc(
            {
                "name": "d",
                "type": "data_transform",
                "input_source": "x",
                "operations": [{"operation": "explode"}],
            }
        ),
        "operation",
    ),
    (doc({"name": "f", "type": "file_ops", "operation": "shred", "path": "a"}), "operation"),
    (doc({"name": "p", "type": "pipeline"}), "pipeline"),
    (doc(echo(output_schema={"type": "nonsense"})), "output_schema"),
    (doc(echo(), echo()), "e"),
]
# fmt: on


@pytest.mark.parametrize(("source", "named"), REFUSED)
def test_a_malformed_document_is_refused_and_the_runtime_lives(
    rt: Runtime, source: object, named: str
) -> None:
    with pytest.raises(OtpyError) as caught:
        rt.run_pipeline(source, timeout=20)  # type: ignore[arg-type]
    assert named in str(caught.value)
    assert rt.run_pipeline(GOOD, timeout=20).ok


# fmt: off
FAILING = [
    (doc({"name": "f", "type": "file_ops", "operation": "copy", "source": "../../etc/passwd",
          "destination": "x"}), "OutsideWorkspaceError"),
    (doc({"name": "f", "type": "file_ops", "operation": "copy", "source": "/etc/passwd",
          "destination": "x"}), "OutsideWorkspaceError"),
    (doc({"name": "f", "type": "claude", "prompt": [{"type": "file", "path": "../notes"}]}),
     "OutsideWorkspaceError"),
    (doc({"name": "f", "type": "for_loop", "iterator": "x", "data_source": "steps.nothing",
          "steps": [echo()]}), "ConfigurationError"),
    (doc({"name": "f", "type": "pipeline", "pipeline_file": "missing.yaml"}),
     "ConfigurationError"),
    (doc({"name": "f", "type": "pipeline", "pipeline": {"name": "inner", "steps": [
        {"name": "p2", "type": "pipeline", "pipeline_file": "self.yaml"}]}}), "PipelineError"),
    (doc(echo(value="{{ 1 / 0 }}"),
         {"name": "f", "type": "test_echo", "value": "{{ steps.e.result.x.y }}"}),
     "StepValidationError"),
]
# fmt: on


@pytest.mark.parametrize(("source", "error"), FAILING)
def test_a_run_that_meets_bad_data_fails_cleanly_and_the_runtime_lives(
    rt: Runtime, source: dict[str, object], error: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "self.yaml").write_text(
        "workflow:\n  name: self\n  steps:\n"
        "    - {name: again, type: pipeline, pipeline_file: self.yaml}\n"
    )
    result = rt.run_pipeline(source, timeout=20)
    assert (result.status, result.failed_step) == ("failed", "f")
    assert result.error is not None and result.error.type == error and not result.error.crash
    assert rt.run_pipeline(GOOD, timeout=20).ok
