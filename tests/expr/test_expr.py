"""otpy.expr: pipeline_ex's condition language — every operator true and false, functions,
per-item conditions, malformed expressions with their column, and no Python evaluation."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otpy.errors import ExpressionError, StepValidationError
from otpy.expr import (
    FUNCTIONS,
    MISSING,
    compile_condition,
    compile_expression,
    dig,
    evaluate,
    truthy,
)

DATA: dict[str, Any] = {
    "scan": {
        "score": 85,
        "ratio": 0.5,
        "name": "src/app_test.py",
        "tags": ["a", "critical"],
        "results": [{"status": "passed", "n": 1}, {"status": "failed", "n": 5}],
        "empty": [],
        "nothing": None,
        "answer": '{"verdict": "ok", "items": [3, 4]}',
        "flag": True,
        "zero": 0,
    },
    "state": {"count": 2, "text": "7"},
}


def resolve(segments: tuple[str | int, ...]) -> Any:
    value = dig(DATA, segments)
    return None if value is MISSING else value


def value(text: str) -> Any:
    return evaluate(compile_expression(text), resolve, text=text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("scan.score == 85", True), ("scan.score == 86", False),
        ("scan.score != 86", True), ("scan.score != 85", False),
        ("scan.score > 80", True), ("scan.score > 85", False),
        ("scan.score >= 85", True), ("scan.score >= 86", False),
        ("scan.score < 90", True), ("scan.score < 85", False),
        ("scan.score <= 85", True), ("scan.score <= 84", False),
        ("scan.name contains '_test'", True), ("scan.name contains 'spec'", False),
        ("scan.tags contains 'critical'", True), ("scan.tags contains 'x'", False),
        ("scan.name matches '^src/.*\\.py$'", True), ("scan.name matches '^lib/'", False),
        ("scan.name starts_with 'src'", True), ("scan.name starts_with 'lib'", False),
        ("scan.name ends_with '.py'", True), ("scan.name ends_with '.ex'", False),
        ("'critical' in scan.tags", True), ("'major' in scan.tags", False),
        ("scan.score in [85, 90]", True), ("scan.score in [1, 2]", False),
        ("'x' not_in scan.tags", True), ("'a' not_in scan.tags", False),
        ("'x' not in scan.tags", True), ("'a' not in scan.tags", False),
        ("scan.score between 80 and 90", True), ("scan.score between 90 and 99", False),
        ("scan.score exists", True), ("scan.missing exists", False), ("scan.nothing exists", False),
        ("scan.empty empty", True), ("scan.tags empty", False), ("scan.missing empty", True),
        ("any(scan.results, 'status == \"failed\"')", True),
        ("any(scan.results, 'status == \"skipped\"')", False),
        ("all(scan.results, 'n > 0')", True), ("all(scan.results, 'n > 1')", False),
        ("count(scan.results, 'n > 1') == 1", True), ("count(scan.tags) == 3", False),
        ("any(scan.tags)", True), ("all(scan.empty)", True),
        ("length(scan.tags) == 2", True), ("scan.tags.length > 2", False),
        ("scan.flag and scan.score > 80", True), ("scan.flag and scan.score > 90", False),
        ("scan.nothing or scan.flag", True), ("scan.nothing or scan.empty", False),
        ("not scan.nothing", True), ("not scan.flag", False), ("!scan.flag", False),
        ("not scan.zero", False),  # pipeline_ex: 0 is true, only null/false/empty are false
        ("scan.score * scan.ratio > 40", True), ("(scan.score - 5) / 10 == 8", True),
        ("scan.score % 10 == 5", True), ("-scan.score < 0", True),
        ("state.text > 5", True),  # numeric text beside a number compares as a number
        ("'b' > 'a'", True), ("scan.tags > 1", False),  # no order between a list and a number
        ("scan.answer.verdict == 'ok'", True), ("scan.answer.items.1 == 4", True),
        ("{{scan.score}} > 50", True), ("{{state.count < 1}}", False),
        ("scan.score > 50 ? 'high' : 'low'", "high"),
        ("state.count + 1", 3), ("state.missing + 1", 1), ("'a' + 'b'", "ab"),
        ("10 / 0", 0), ("sum([1, 2, 3]) + average([2, 4])", 9.0), ("max(1, 7, 3)", 7),
        ("round(2.6) + floor(2.6) + ceil(2.1) + abs(-1)", 9), ("pow(2, 3)", 8.0),
        ("toUpperCase('a') + lower('B') + trim('  c ')", "Abc"),
        ("substring('hello', 1, 3)", "ell"), ("concat('a', 1, true)", "a1true"),
        ("append([1], 2)", [1, 2]), ("keys(scan.answer)", []), ("multiply(3, 4)", 12),
        ("startsWith(scan.name, 'src') and endsWith(scan.name, 'py')", True),
        ("isEmpty(scan.empty) and not is_empty(scan.tags)", True),
        ("filter(scan.results, 'n > 2')", [{"status": "failed", "n": 5}]),
        ("any([1, 5, 9], '@ > 8')", True), ("days(1) == hours(24)", True),
        ("true == 1", False), ("null == nil", True), ("1 == 1.0", True),
    ],
)  # fmt: skip
def test_every_operator_true_and_false(text: str, expected: Any) -> None:
    assert value(text) == expected


def test_now_comes_from_the_given_clock() -> None:
    node = compile_expression("now() - days(1)")
    assert evaluate(node, resolve, now=lambda: 100_000.0) == 100_000.0 - 86_400


@pytest.mark.parametrize(
    ("text", "reason", "column"),
    [
        ("scan.score >", "expected a value, a path, a function call or '('", 13),
        ("scan.score == == 1", "expected a value, a path, a function call or '('", 15),
        ("(scan.score > 1", "expected ')' to close the '(' at column 1", 16),
        ("scan.score # 1", "unexpected character '#'", 12),
        ("scan.score between 1", "expected 'and' after the lower bound of 'between'", 21),
        ("scan.score 1", "expected an operator or the end of the expression", 12),
        ("a ? b", "expected ':' between the two branches of '?'", 6),
        ("scan.", "expected a name or an index after '.'", 6),
        ("[1, 2", "expected ',' between list items", 6),
        ("'open", 'unexpected character "\'"', 1),
        ("", "an empty expression", 1),
        ("bogus(1)", "unknown function bogus()", 1),
        ("any(x, 'a ==')", "in the condition of any(): expected a value", 13),
    ],
)
def test_malformed_expressions_name_the_column(text: str, reason: str, column: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text)
    assert reason in caught.value.reason
    assert caught.value.position == column
    assert caught.value.text == text


def test_runtime_errors_name_the_operation() -> None:
    with pytest.raises(ExpressionError, match=r"cannot apply '-' to 'a' and 1 at column 5"):
        value("'a' - 1")
    with pytest.raises(ExpressionError, match=r"takes 1 argument, got 2"):
        value("length(1, 2)")
    with pytest.raises(ExpressionError, match="bad regular expression"):
        value("scan.name matches '('")


def test_conditions_in_mappings_and_lists() -> None:
    condition = compile_condition(
        {"and": ["scan.flag", {"or": ["scan.score > 99", "scan.tags contains 'a'"]},
                 {"not": "scan.empty exists and scan.empty.length > 0"}]},
        step="deploy",
    )  # fmt: skip
    assert condition.holds(resolve)
    assert compile_condition(["scan.flag", "scan.score > 90"], step="s").holds(resolve) is False
    assert compile_condition(True, step="s").holds(resolve)
    assert [field for field, _ in condition.paths()] == [
        "condition.and[0]", "condition.and[1].or[0]", "condition.and[1].or[1]",
        "condition.and[2].not", "condition.and[2].not",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("condition", "field"),
    [
        ({"and": ["ok", "a >"]}, "condition.and[1]"),
        ({"or": [{"not": "(("}]}, "condition.or[0].not"),
        ({"xor": ["a"]}, "condition"),
        ({"and": []}, "condition.and"),
        ([], "condition"),
        (None, "condition"),
    ],
)
def test_malformed_conditions_name_the_step_and_the_nested_field(
    condition: Any, field: str
) -> None:
    with pytest.raises(StepValidationError) as caught:
        compile_condition(condition, step="deploy")
    assert (caught.value.step, caught.value.field) == ("deploy", field)


class Trap:
    touched: list[str] = []  # noqa: RUF012 - shared on purpose

    def __getattribute__(self, name: str) -> Any:
        Trap.touched.append(name)
        return object.__getattribute__(self, name)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcx_.()[]'\"0123456789 +-*/%<>=!&|?:,@{}", max_size=30))
def test_nothing_is_evaluated_by_python_and_objects_are_never_looked_into(text: str) -> None:
    Trap.touched.clear()
    scope = {"x": Trap(), "a": {"b": 1}}

    def lookup(segments: tuple[str | int, ...]) -> Any:
        found = dig(scope, segments)
        return None if found is MISSING else found

    with contextlib.suppress(ExpressionError):
        evaluate(compile_expression(text), lookup, text=text)
    assert [name for name in Trap.touched if name != "__class__"] == []


def test_truthiness_and_the_function_table() -> None:
    assert [truthy(v) for v in (None, False, "", [], {}, 0, "0", [0])] == [
        False, False, False, False, False, True, True, True,
    ]  # fmt: skip
    assert {"length", "any", "all", "between", "contains", "matches"} <= set(FUNCTIONS)
