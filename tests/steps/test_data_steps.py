"""The data and file step types: data_transform's operations, file_ops and codebase_query
confined to the workspace (symlinks included), test_echo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from otpy.errors import (
    ConfigurationError,
    OutsideWorkspaceError,
    PipelineError,
    StepValidationError,
)
from otpy.steps import StepContext
from otpy.steps.data import (
    CodebaseQueryStep,
    DataTransformStep,
    FileOpsStep,
    TestEchoStep,
    apply_operations,
)
from otpy.workspace import Workspace

ROWS = [
    {"id": 1, "team": "a", "score": 90, "meta": {"level": "high"}},
    {"id": 2, "team": "b", "score": 40, "meta": {"level": "low"}},
    {"id": 3, "team": "a", "score": 70, "meta": {"level": "mid"}},
    {"id": 4, "team": "c", "score": None, "meta": {"level": "low"}},
]


def ops(*operations: dict[str, Any], data: Any = ROWS, right: Any = None) -> Any:
    return apply_operations(data, list(operations), lambda source: right)


def test_filter_map_sort_and_field_paths() -> None:
    high = ops({"operation": "filter", "field": "score", "condition": "value >= 70"})
    assert [r["id"] for r in high] == [1, 3]
    nested = ops({"operation": "filter", "condition": "meta.level == 'low' and score exists"})
    assert [r["id"] for r in nested] == [2]
    mapped = ops({"operation": "map", "field": "team", "mapping": {"a": "alpha"}})
    assert [r["team"] for r in mapped] == ["alpha", "b", "alpha", "c"]
    scaled = ops({"operation": "map", "field": "score", "expression": "score * 2"})
    assert [r["score"] for r in scaled] == [180, 80, 140, 0]
    upper = ops({"operation": "map", "field": "meta.level", "expression": "uppercase"})
    assert upper[0]["meta"] == {"level": "HIGH"} and ROWS[0]["meta"] == {"level": "high"}
    ordered = ops({"operation": "sort", "field": "score", "order": "desc"})
    assert [r["id"] for r in ordered] == [1, 3, 2, 4]  # None last, whatever the order
    assert [r["id"] for r in ops({"operation": "sort", "field": "score"})] == [2, 3, 1, 4]


def test_aggregate_group_join_unique_flatten() -> None:
    assert ops({"operation": "aggregate", "field": "score", "function": "average"}) == 200 / 3
    assert ops({"operation": "aggregate", "field": "score", "function": "count"}) == 3
    assert ops({"operation": "aggregate", "field": "team", "function": "unique"}) == ["a", "b", "c"]
    grouped = ops(
        {"operation": "aggregate", "field": "score", "function": "sum", "group_by": "team"}
    )
    assert grouped == {"a": 160, "b": 40, "c": 0}
    groups = ops({"operation": "group_by", "field": "team"})
    assert {key: [r["id"] for r in rows] for key, rows in groups.items()} == {
        "a": [1, 3], "b": [2], "c": [4],
    }  # fmt: skip
    teams = [{"id": "a", "lead": "Ada"}, {"id": "b", "lead": "Bob"}]
    joined = ops({"operation": "join", "left_field": "team", "right_source": "teams",
                  "join_key": "id"}, right=teams)  # fmt: skip
    assert [r.get("lead") for r in joined] == ["Ada", "Bob", "Ada", None]
    inner = ops({"operation": "join", "left_field": "team", "right_source": "t", "join_key": "id",
                 "join_type": "inner"}, right=teams)  # fmt: skip
    assert len(inner) == 3
    assert [r["id"] for r in ops({"operation": "unique", "field": "team"})] == [1, 2, 4]
    assert ops({"operation": "flatten"}, data=[[1, 2], 3, [4]]) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("operation", "field", "message"),
    [
        ({"operation": "pivot"}, "operations[0].operation", "unknown operation 'pivot'"),
        ({"operation": "filter"}, "operations[0].condition", "a filter operation needs condition"),
        ({"operation": "filter", "condition": "score >"}, "operations[0].condition", "column 8"),
        (
            {"operation": "map", "expression": "{'a': 1}"},
            "operations[0].expression",
            "bad expression",
        ),
        ({"operation": "aggregate", "function": "median"}, "operations[0].function", "median"),
        ({"operation": "sort", "order": "up"}, "operations[0].order", "asc or desc"),
        ({"operation": "join", "right_source": "x"}, "operations[0].join_key", "needs join_key"),
    ],
)
def test_bad_operations_are_refused_naming_the_operation(
    operation: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(StepValidationError) as caught:
        DataTransformStep.validate(
            {"name": "t", "type": "data_transform", "input_source": "x", "operations": [operation]}
        )
    assert (caught.value.step, caught.value.field) == ("t", field)
    assert message in str(caught.value)
    with pytest.raises(ConfigurationError, match=r"operations\[0\] \(sort\): .*needs a list"):
        ops({"operation": "sort", "field": "x"}, data={"not": "a list"})


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.txt").write_text("hello\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.py").write_text("def leaked():\n    pass\n")
    (root / "link").symlink_to(tmp_path / "outside")
    (root / "leak.txt").symlink_to(tmp_path / "outside" / "secret.py")
    return Workspace(root)


def file_op(ws: Workspace, **config: Any) -> Any:
    checked = FileOpsStep.validate({"name": "f", "type": "file_ops", **config})
    return FileOpsStep().execute(checked, StepContext(workspace=ws)).output


def test_file_ops_work_inside_and_refuse_outside(ws: Workspace) -> None:
    assert file_op(ws, operation="copy", source="src/a.txt", destination="b.txt")["files"] == [
        "b.txt"
    ]
    assert file_op(ws, operation="list", path=".", pattern="*.txt")["files"] == ["b.txt"]
    assert file_op(ws, operation="list", path=".", pattern="a", recursive=True)["files"] == [
        "src/a.txt",
    ]  # a name pattern (a regular expression), pipeline_ex's
    file_op(ws, operation="stream_process", source="b.txt", processor="uppercase")
    assert (ws.root / "b.txt").read_text() == "HELLO\n"
    (ws.root / "d.yaml").write_text("a: [1, 2]\n")
    file_op(ws, operation="convert", source="d.yaml", destination="d.json", format="yaml_to_json")
    assert (ws.root / "d.json").read_text() == '{"a": [1, 2]}'
    file_op(ws, operation="move", source="b.txt", destination="moved/")
    assert (ws.root / "moved" / "b.txt").exists() and not (ws.root / "b.txt").exists()
    for config in (
        {"operation": "copy", "source": "leak.txt", "destination": "x.txt"},
        {"operation": "copy", "source": "link/secret.py", "destination": "x.txt"},
        {"operation": "copy", "source": "src/a.txt", "destination": "../x.txt"},
        {"operation": "delete", "path": "/etc/hostname"},
        {"operation": "list", "path": "link"},
    ):
        with pytest.raises(OutsideWorkspaceError):
            file_op(ws, **config)
    with pytest.raises(ConfigurationError, match="refusing to delete the workspace itself"):
        file_op(ws, operation="delete", path=".")
    with pytest.raises(
        ConfigurationError, match=r"validation failed for 1 file\(s\): nope does not exist"
    ):
        file_op(ws, operation="validate", files=[{"path": "src/a.txt"}, {"path": "nope"}])
    assert (ws.root.parent / "outside" / "secret.py").exists()


def test_codebase_query_scans_only_the_workspace(ws: Workspace) -> None:
    (ws.root / "src" / "tool.py").write_text("import json\n\ndef run():\n    pass\n")
    config = {"name": "q", "type": "codebase_query", "codebase_context": True, "queries": {
        "all": {"find_files": [{"pattern": "**/*"}]},
        "fns": {"find_functions": [{"in_file": "src/tool.py"}]},
        "bad": {"find_functions": [{"in_file": "link/secret.py"}]},
    }}  # fmt: skip
    checked = CodebaseQueryStep.validate(config)
    result = CodebaseQueryStep().execute(checked, StepContext(workspace=ws))
    assert result.output["all"]["files"] == ["src/a.txt", "src/tool.py"]  # no link followed
    assert [f["name"] for f in result.output["fns"]["functions"]] == ["run"]
    assert "outside" in result.output["bad"]["error"] and result.metadata["failed"] == ["bad"]
    with pytest.raises(StepValidationError, match="a query needs one of"):
        CodebaseQueryStep.validate({"name": "q", "type": "codebase_query", "queries": {"x": {}}})


def test_test_echo() -> None:
    echo = TestEchoStep()
    assert echo.execute({"value": {"a": [1]}}, StepContext()).output == {"a": [1]}
    assert echo.execute({}, StepContext()).output == "default_echo"
    with pytest.raises(PipelineError, match="nope"):
        echo.execute({"name": "e", "fail": True, "error_message": "nope"}, StepContext())
