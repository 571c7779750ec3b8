"""What a pipeline reads and writes stays in its directories: ``file`` prompt parts read
from the workspace, else the working directory as pipeline_ex reads them (a size cap;
``..``, absolute paths and symlinks leading out refused),
``output_to_file`` writes under the output directory, likewise confined."""

from __future__ import annotations

from pathlib import Path

import pytest
from provider_plugins import ScriptedProvider

from otpy import Runtime
from otpy.workspace import MAX_READ_BYTES


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    (workspace / "docs").mkdir(parents=True)
    (workspace / "docs" / "brief.md").write_text("the brief", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("s3cret", encoding="utf-8")
    (workspace / "leak.md").symlink_to(tmp_path / "secret.txt")
    (workspace / "outside").symlink_to(tmp_path)
    (workspace / "inner.md").symlink_to(workspace / "docs" / "brief.md")
    return tmp_path


def file_doc(base: Path, path: str, output: str = "out.txt") -> str:
    return f"""\
workflow:
  name: files
  workspace_dir: "{base / "ws"}"
  output_dir: "{base / "out"}"
  steps:
    - name: ask
      type: claude
      output_to_file: "{output}"
      prompt:
        - {{type: static, content: "Read:"}}
        - {{type: file, path: "{path}"}}
"""


def test_a_file_part_is_read_at_run_time_from_the_workspace(
    rt: Runtime, p: ScriptedProvider, layout: Path
) -> None:
    plan = rt.compile_pipeline(file_doc(layout, "docs/brief.md"))
    (layout / "ws" / "docs" / "brief.md").write_text("changed after compiling", encoding="utf-8")
    result = rt.run_pipeline(plan)
    assert result.ok
    assert p.requests[0].prompt == "Read:\nchanged after compiling"
    assert (layout / "out" / "out.txt").read_text() == "p: Read:\nchanged after compiling"
    assert rt.run_pipeline(file_doc(layout, "inner.md")).ok  # a symlink that stays inside


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../secret.txt", "'..' leads out of it"),
        ("docs/../../secret.txt", "'..' leads out of it"),
        ("/etc/hostname", "an absolute path outside it"),
        ("leak.md", "a symlink leads out of it"),
        ("outside/secret.txt", "a symlink leads out of it"),
    ],
)
def test_a_file_part_outside_the_workspace_is_refused(
    rt: Runtime, p: ScriptedProvider, layout: Path, path: str, why: str
) -> None:
    result = rt.run_pipeline(file_doc(layout, path))
    assert result.failed_step == "ask" and result.error is not None
    assert result.error.type == "OutsideWorkspaceError"
    assert why in result.error.message and "step 'ask', prompt[1]: file" in result.error.message
    assert p.calls == 0 and "s3cret" not in result.error.message


def test_missing_directories_and_big_files_are_clear_errors(
    rt: Runtime, p: ScriptedProvider, layout: Path
) -> None:
    (layout / "ws" / "big.log").write_bytes(b"x" * (MAX_READ_BYTES + 1))
    cases = {
        "nope.md": "does not exist in",
        "docs": "is a directory, not a file",
        "big.log": "larger than the 1,000,000-byte limit",
    }
    for path, message in cases.items():
        result = rt.run_pipeline(file_doc(layout, path))
        assert result.error is not None and message in result.error.message, path
    assert p.calls == 0


@pytest.mark.parametrize("output", ["../escape.txt", "/tmp/escape.txt"])
def test_output_to_file_outside_the_output_directory_is_refused(
    rt: Runtime, p: ScriptedProvider, layout: Path, output: str
) -> None:
    result = rt.run_pipeline(file_doc(layout, "docs/brief.md", output))
    assert result.error is not None and result.error.type == "OutsideWorkspaceError"
    assert "output_to_file" in result.error.message
    assert not (layout / "escape.txt").exists()


def test_output_to_file_creates_directories_and_takes_templates(
    rt: Runtime, p: ScriptedProvider, layout: Path
) -> None:
    text = file_doc(layout, "docs/brief.md", "runs/{{timestamp}}/{{workflow.name}}.md")
    result = rt.run_pipeline(text)
    assert result.ok
    written = list((layout / "out" / "runs").glob("*/files.md"))
    assert len(written) == 1 and written[0].read_text().startswith("p: Read:")


def project_doc(path: str) -> str:
    return f"""\
workflow:
  name: project
  workspace_dir: ./workspace
  steps:
    - name: ask
      type: claude
      prompt:
        - {{type: file, path: "{path}"}}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pipeline_ex project: files beside the pipeline, the agent's ``./workspace`` apart."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "config.ex").write_text("defmodule Config", encoding="utf-8")
    (tmp_path / "workspace").mkdir()
    (tmp_path / "workspace" / "notes.md").write_text("in the workspace", encoding="utf-8")
    (tmp_path / "notes.md").write_text("beside the pipeline", encoding="utf-8")
    (tmp_path.parent / f"{tmp_path.name}-secret.txt").write_text("s3cret", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # otpy run starts where the project is, as mix does
    return tmp_path


def test_a_file_part_the_workspace_lacks_is_read_from_the_working_directory(
    rt: Runtime, p: ScriptedProvider, project: Path
) -> None:
    assert rt.run_pipeline(project_doc("./lib/config.ex")).ok
    assert rt.run_pipeline(project_doc(str(project / "lib" / "config.ex"))).ok
    assert rt.run_pipeline(project_doc("notes.md")).ok  # the workspace's copy comes first
    assert [r.prompt for r in p.requests] == [
        "defmodule Config", "defmodule Config", "in the workspace",
    ]  # fmt: skip


def test_a_file_part_in_neither_place_or_outside_both_is_refused(
    rt: Runtime, p: ScriptedProvider, project: Path
) -> None:
    missing = rt.run_pipeline(project_doc("lib/nope.ex"))
    assert missing.error is not None and missing.error.type == "ConfigurationError"
    assert f"does not exist in the workspace {project / 'workspace'}" in missing.error.message
    assert f"nor in the working directory {project}" in missing.error.message
    escape = rt.run_pipeline(project_doc(f"../{project.name}-secret.txt"))
    assert escape.error is not None and escape.error.type == "OutsideWorkspaceError"
    assert "'..' leads out of it" in escape.error.message
    assert p.calls == 0


def test_a_workspace_given_by_the_caller_is_the_only_place_file_parts_come_from(
    rt: Runtime, p: ScriptedProvider, project: Path
) -> None:
    result = rt.run_pipeline(project_doc("lib/config.ex"), workspace=project / "workspace")
    assert result.error is not None and "does not exist in" in result.error.message
    assert "working directory" not in result.error.message and p.calls == 0
