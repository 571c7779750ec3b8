"""The command line on pipeline_ex documents: ``otpy validate`` names the fields otpy does
not honour, ``otpy run`` shows loop items n/N and ``--resume`` continues a checkpointed
run after its last completed step."""

from __future__ import annotations

from pathlib import Path

import pytest

from otpy.__main__ import main

INERT = """\
workflow:
  name: inert
  hooks: {PreToolUse: []}
  defaults: {timeout_seconds: 30}
  steps:
    - name: ask
      type: claude
      role: muscle
      claude_options: {verbose: true, max_turns: 2}
      prompt: [{type: static, content: hi}]
"""

LOOP = """\
workflow:
  name: looped
  steps:
    - name: each
      type: for_loop
      iterator: word
      data_source: [red, green, blue]
      steps:
        - {name: shout, type: test_echo, value: "{{loop.word}}!"}
    - {name: start, type: set_variable, variables: {n: 0}}
    - name: again
      type: while_loop
      condition: "state.n < 2"
      max_iterations: 5
      steps:
        - name: count
          type: set_variable
          variables: {n: "{{state.n + 1}}"}
"""

CHECKPOINTED = """\
workflow:
  name: resumable
  checkpoint_enabled: true
  steps:
    - {name: one, type: test_echo, value: first}
    - name: two
      type: file_ops
      operation: validate
      files: [{path: ready.flag, must_exist: true}]
    - {name: three, type: test_echo, value: "{{steps.one.result}} then {{steps.two.status}}"}
"""


def test_validate_lists_the_fields_otpy_does_not_honour(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "inert.yaml"
    path.write_text(INERT)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ok inert (1 step")
    assert out[1] == "  4 fields have no effect in otpy:"
    fields = [line.split(": ")[0].strip() for line in out[2:6]]
    assert fields == ["hooks", "defaults.timeout_seconds", "step 'ask', role",
                      "step 'ask', claude_options.verbose"]  # fmt: skip
    assert all(": ignored: " in line or ": kept, no effect: " in line for line in out[2:6])


def test_run_shows_loop_items_and_iterations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "loop.yaml").write_text(LOOP)
    assert main(["run", "loop.yaml"]) == 0
    progress = capsys.readouterr().err.splitlines()
    items = [line.strip() for line in progress if line.startswith("  ")]
    assert items == [
        "\u21bb each item 1/3", "\u21bb each item 2/3", "\u21bb each item 3/3",
        "\u21bb again iteration 1", "\u21bb again iteration 2",
    ]  # fmt: skip


def test_run_resume_continues_after_the_last_completed_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resumable.yaml").write_text(CHECKPOINTED)
    assert main(["run", "resumable.yaml", "-q"]) == 1
    assert "ready.flag" in capsys.readouterr().out
    assert (tmp_path / "checkpoints" / "resumable_latest.json").exists()
    (tmp_path / "workspace" / "ready.flag").write_text("go")
    assert main(["run", "resumable.yaml", "--resume", "--json", "-q"]) == 0
    out = capsys.readouterr().out
    assert '"from_checkpoint": true' in out and "first then all_valid" in out
    assert not (tmp_path / "checkpoints" / "resumable_latest.json").exists()
    plain = tmp_path / "plain.yaml"
    plain.write_text(CHECKPOINTED.replace("checkpoint_enabled: true", "checkpoint_enabled: false"))
    assert main(["run", str(plain), "--resume"]) == 2
    assert "has no checkpoint_enabled: true" in capsys.readouterr().err
