"""Evaluating a parsed expression against a look-up function (no ``eval``, no attributes).

Operators behave as pipeline_ex's condition engine: comparisons of numbers (numeric text
counts as a number next to a number) or of strings, anything else compares false;
``contains``/``in`` test substrings, list members and mapping keys; ``matches`` searches a
regular expression; ``+`` adds numbers or joins strings and lists; a missing value counts
as 0 in arithmetic (pipeline_ex's ``{{state.count + 1}}`` before ``count`` is set);
division by zero gives 0. Functions are a fixed table (:data:`FUNCTIONS`).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Final, TypeAlias

from otpy.errors import ExpressionError
from otpy.expr import _nodes as nodes
from otpy.expr._parse import parse_expression
from otpy.expr._values import MISSING, as_number, dig, equal, size, text_of, truthy

__all__ = ["FUNCTIONS", "Resolver", "compile_expression", "evaluate"]

Resolver: TypeAlias = Callable[[tuple[str | int, ...]], Any]
"""Looks a path up: the value, or None when there is none (or raises a precise error)."""


class _Eval:
    def __init__(self, text: str, resolve: Resolver, now: Callable[[], float]) -> None:
        self.text = text
        self.resolve = resolve
        self.now = now

    def fail(self, reason: str, node: nodes.Node) -> ExpressionError:
        return ExpressionError(reason, text=self.text, position=node.pos)

    def run(self, node: nodes.Node) -> Any:
        if isinstance(node, nodes.Literal):
            return node.value
        if isinstance(node, nodes.Path):
            value = self.resolve(node.segments)
            return None if value is MISSING else value
        if isinstance(node, nodes.Binary):
            return self.binary(node)
        if isinstance(node, nodes.Unary):
            value = self.run(node.operand)
            if node.op == "not":
                return not truthy(value)
            if node.op == "exists":
                return value is not None
            if node.op == "empty":
                return value is None or (size(value) == 0)
            return self.arithmetic("-", 0, value, node)
        if isinstance(node, nodes.Between):
            value, low, high = (as_number(self.run(n)) for n in (node.value, node.low, node.high))
            return (
                value is not None and low is not None and high is not None and low <= value <= high
            )
        if isinstance(node, nodes.Ternary):
            return self.run(node.then if truthy(self.run(node.test)) else node.otherwise)
        if isinstance(node, nodes.ListOf):
            return [self.run(item) for item in node.items]
        if isinstance(node, nodes.Call):
            return self.call(node)
        raise self.fail("a per-item condition is only an argument of any/all/count/filter", node)

    def binary(self, node: nodes.Binary) -> Any:
        op = node.op
        if op == "and":
            return truthy(self.run(node.left)) and truthy(self.run(node.right))
        if op == "or":
            return truthy(self.run(node.left)) or truthy(self.run(node.right))
        left, right = self.run(node.left), self.run(node.right)
        if op in ("+", "-", "*", "/", "%"):
            return self.arithmetic(op, left, right, node)
        if op == "==":
            return equal(left, right)
        if op == "!=":
            return not equal(left, right)
        if op in (">", "<", ">=", "<="):
            return _compare(op, left, right)
        if op == "contains":
            return _contains(left, right)
        if op == "in":
            return _contains(right, left)
        if op == "not_in":
            return not _contains(right, left)
        if op == "matches":
            return self.matches(left, right, node)
        if op == "starts_with":
            return isinstance(left, str) and isinstance(right, str) and left.startswith(right)
        return isinstance(left, str) and isinstance(right, str) and left.endswith(right)

    def matches(self, value: Any, pattern: Any, node: nodes.Node) -> bool:
        if not isinstance(value, str) or not isinstance(pattern, str):
            return False
        try:
            return _regex(pattern).search(value) is not None
        except re.error as exc:
            raise self.fail(f"bad regular expression {pattern!r}: {exc}", node) from None

    def arithmetic(self, op: str, left: Any, right: Any, node: nodes.Node) -> Any:
        if op == "+" and isinstance(left, list | tuple) and isinstance(right, list | tuple):
            return [*left, *right]
        a = 0 if left is None else as_number(left)
        b = 0 if right is None else as_number(right)
        if a is None or b is None:
            if op == "+" and (isinstance(left, str) or isinstance(right, str)):
                return text_of(left) + text_of(right)
            raise self.fail(f"cannot apply {op!r} to {_shown(left)} and {_shown(right)}", node)
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if b == 0:
            return 0  # pipeline_ex: division (and remainder) by zero is 0
        if op == "/":
            return a / b
        return math.trunc(a) % math.trunc(b)

    def call(self, node: nodes.Call) -> Any:
        spec = FUNCTIONS.get(node.name)
        if spec is None:
            raise self.fail(_unknown(node.name), node)
        low, high, function = spec
        if not low <= len(node.args) <= high:
            wanted = str(low) if low == high else f"{low} to {high}"
            raise self.fail(
                f"{node.name}() takes {wanted} argument{'s' if high != 1 else ''}, "
                f"got {len(node.args)}",
                node,
            )
        args = [a if isinstance(a, nodes.Lambda) else self.run(a) for a in node.args]
        try:
            return function(self, args)
        except (TypeError, ValueError, OverflowError) as exc:
            raise self.fail(f"{node.name}() failed: {exc}", node) from None

    def each(self, items: Any, condition: Any) -> list[bool] | None:
        """The per-item truth of ``condition`` (a nodes.Lambda, or None: the item itself)."""
        if not isinstance(items, list | tuple):
            return None
        if condition is None:
            return [truthy(item) for item in items]
        if not isinstance(condition, nodes.Lambda):
            raise ExpressionError(
                "the condition of any/all/count/filter must be a quoted condition such as "
                "'status == \"failed\"'",
                text=self.text,
            )
        results = []
        for item in items:
            inner = _Eval(condition.source, _item_resolver(item, self.resolve), self.now)
            results.append(truthy(inner.run(condition.body)))
        return results


def _item_resolver(item: Any, outer: Resolver) -> Resolver:
    def resolve(segments: tuple[str | int, ...]) -> Any:
        if segments[0] == "@":
            return dig(item, segments[1:])
        if isinstance(item, Mapping) and segments[0] in item:
            return dig(item, segments)
        return outer(segments)

    return resolve


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _compare(op: str, left: Any, right: Any) -> bool:
    a, b = as_number(left), as_number(right)
    both_text = isinstance(left, str) and isinstance(right, str)
    if a is not None and b is not None and not both_text:
        return _order(op, float(a), float(b))
    return _order(op, left, right) if both_text else False


def _order(op: str, first: Any, second: Any) -> bool:
    if op == ">":
        return bool(first > second)
    if op == "<":
        return bool(first < second)
    if op == ">=":
        return bool(first >= second)
    return bool(first <= second)


def _contains(haystack: Any, needle: Any) -> bool:
    if isinstance(haystack, str):
        return isinstance(needle, str) and needle in haystack
    if isinstance(haystack, Mapping):
        return isinstance(needle, str) and needle in haystack
    if isinstance(haystack, list | tuple):
        return any(equal(item, needle) for item in haystack)
    return False


def _numbers(values: Any) -> list[int | float]:
    if not isinstance(values, list | tuple):
        return []
    return [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def _num(value: Any) -> int | float:
    number = as_number(value)
    if number is None:
        raise ValueError(f"{_shown(value)} is not a number")
    return number


def _string(value: Any) -> str:
    return text_of(value)


def _length(value: Any) -> int:
    measured = size(value)
    return 0 if measured is None else measured


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


_Function: TypeAlias = Callable[[_Eval, list[Any]], Any]


def _min_max(pick: Callable[..., Any]) -> _Function:
    def run(_: _Eval, args: list[Any]) -> Any:
        values = _numbers(args[0]) if len(args) == 1 else [_num(a) for a in args]
        return pick(values) if values else None

    return run


def _any(e: _Eval, args: list[Any]) -> bool:
    results = e.each(args[0], args[1] if len(args) > 1 else None)
    return results is not None and any(results)


def _all(e: _Eval, args: list[Any]) -> bool:
    results = e.each(args[0], args[1] if len(args) > 1 else None)
    return results is not None and all(results)


def _count(e: _Eval, args: list[Any]) -> int:
    if len(args) == 1:
        return len(args[0]) if isinstance(args[0], list | tuple) else 0
    results = e.each(args[0], args[1])
    return sum(results) if results else 0


def _filter(e: _Eval, args: list[Any]) -> list[Any]:
    results = e.each(args[0], args[1])
    return [item for item, keep in zip(args[0], results or [], strict=False) if keep]


def _average(_: _Eval, args: list[Any]) -> float | int:
    numbers = _numbers(args[0])
    return sum(numbers) / len(numbers) if numbers else 0


def _substring(_: _Eval, args: list[Any]) -> str:
    text = _string(args[0])
    start = int(_num(args[1]))
    return text[start : start + int(_num(args[2]))] if len(args) > 2 else text[start:]


FUNCTIONS: Final[dict[str, tuple[int, int, _Function]]] = {
    "length": (1, 1, lambda e, a: _length(a[0])),
    "count": (1, 2, _count),
    "sum": (1, 1, lambda e, a: sum(_numbers(a[0]))),
    "average": (1, 1, _average),
    "min": (1, 20, _min_max(min)),
    "max": (1, 20, _min_max(max)),
    "any": (1, 2, _any),
    "all": (1, 2, _all),
    "filter": (2, 2, _filter),
    "isEmpty": (1, 1, lambda e, a: a[0] is None or _length(a[0]) == 0),
    "contains": (2, 2, lambda e, a: _contains(a[0], a[1])),
    "matches": (2, 2, lambda e, a: e.matches(a[0], a[1], nodes.Literal(None, 0))),
    "startsWith": (2, 2, lambda e, a: _string(a[0]).startswith(_string(a[1]))),
    "endsWith": (2, 2, lambda e, a: _string(a[0]).endswith(_string(a[1]))),
    "toLowerCase": (1, 1, lambda e, a: _string(a[0]).lower()),
    "toUpperCase": (1, 1, lambda e, a: _string(a[0]).upper()),
    "trim": (1, 1, lambda e, a: _string(a[0]).strip()),
    "substring": (2, 3, _substring),
    "concat": (1, 20, lambda e, a: "".join(_string(x) for x in a)),
    "append": (2, 2, lambda e, a: [*_list(a[0]), a[1]]),
    "keys": (1, 1, lambda e, a: list(a[0]) if isinstance(a[0], Mapping) else []),
    "abs": (1, 1, lambda e, a: abs(_num(a[0]))),
    "round": (1, 2, lambda e, a: round(_num(a[0]), *(int(_num(x)) for x in a[1:]))),
    "floor": (1, 1, lambda e, a: math.floor(_num(a[0]))),
    "ceil": (1, 1, lambda e, a: math.ceil(_num(a[0]))),
    "sqrt": (1, 1, lambda e, a: math.sqrt(_num(a[0])) if _num(a[0]) >= 0 else 0),
    "pow": (2, 2, lambda e, a: math.pow(_num(a[0]), _num(a[1]))),
    "between": (3, 3, lambda e, a: _num(a[1]) <= _num(a[0]) <= _num(a[2])),
    "multiply": (2, 2, lambda e, a: _num(a[0]) * _num(a[1])),
    "add": (2, 2, lambda e, a: _num(a[0]) + _num(a[1])),
    "subtract": (2, 2, lambda e, a: _num(a[0]) - _num(a[1])),
    "divide": (2, 2, lambda e, a: _num(a[0]) / _num(a[1]) if _num(a[1]) != 0 else 0),
    "now": (0, 0, lambda e, a: e.now()),
    "seconds": (1, 1, lambda e, a: _num(a[0])),
    "minutes": (1, 1, lambda e, a: _num(a[0]) * 60),
    "hours": (1, 1, lambda e, a: _num(a[0]) * 3600),
    "days": (1, 1, lambda e, a: _num(a[0]) * 86400),
}
"""Function name -> (fewest arguments, most arguments, implementation)."""
_ALIASES: Final = {
    "starts_with": "startsWith",
    "ends_with": "endsWith",
    "lower": "toLowerCase",
    "upper": "toUpperCase",
    "is_empty": "isEmpty",
    "len": "length",
}
FUNCTIONS.update({alias: FUNCTIONS[name] for alias, name in _ALIASES.items()})


def _unknown(name: str) -> str:
    return f"unknown function {name}() (functions: {', '.join(sorted(FUNCTIONS))})"


def _check_calls(node: nodes.Node, text: str) -> None:
    stack: list[nodes.Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, nodes.Call) and current.name not in FUNCTIONS:
            raise ExpressionError(_unknown(current.name), text=text, position=current.pos)
        if isinstance(current, nodes.Lambda):
            _check_calls(current.body, current.source)
        stack += nodes.children(current)


@lru_cache(maxsize=4096)
def compile_expression(text: str) -> nodes.Node:
    """:func:`parse_expression` plus a check that every function called exists."""
    node = parse_expression(text)
    _check_calls(node, text)
    return node


def evaluate(
    node: nodes.Node,
    resolve: Resolver,
    *,
    text: str = "",
    now: Callable[[], float] = time.time,
) -> Any:
    """The value of ``node`` with paths looked up by ``resolve``; ``now()`` answers
    ``now()`` (seconds). ExpressionError (naming ``text`` and the column) for an
    operation its values do not allow, or an unknown function."""
    return _Eval(text, resolve, now).run(node)
