"""``data_transform``: filter, map, aggregate, join, group, sort structured data (pipeline_ex's).

::

    - name: high_value
      type: data_transform
      input_source: "previous_response:generate.orders"   # or steps.x.y, a variable, {{ }}
      operations:
        - {operation: filter, field: total, condition: "total > 100 and status == 'done'"}
        - {operation: map, field: category, mapping: {electronics: tech}}
        - {operation: map, field: score, expression: "score * 100"}   # or uppercase/lowercase
        - {operation: sort, field: total, order: desc}
        - {operation: join, left_field: user_id, right_source: "steps.users.output", join_key: id}
        - {operation: group_by, field: tier}
        - {operation: aggregate, field: total, function: average}      # sum, count, min, max,
                                                                        # first, last, unique
      output_field: orders          # the key of the output (default: the step's name)

Operations run in order, each on the previous one's result. Field paths are dotted
(``user.address.city``). A ``condition`` or ``expression`` is the expression language of
:mod:`otpy.expr`, with the item's fields as names (``value`` is the operation's ``field``,
``item`` or ``@`` the item itself). Output: ``{<output_field>: result, metadata: {...}}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final

from otpy.errors import ConfigurationError, ExpressionError, StepValidationError
from otpy.expr import MISSING, Node, as_number, compile_expression, dig, equal, evaluate, truthy
from otpy.steps._base import Step, StepContext, StepMetadata, StepResult, check_choice

__all__ = ["AGGREGATES", "OPERATIONS", "DataTransformStep", "apply_operations"]

AGGREGATES: Final = ("sum", "average", "count", "count_distinct", "max", "min", "first",
                     "last", "unique")  # fmt: skip
OPERATIONS: Final = ("filter", "map", "aggregate", "join", "group_by", "sort", "unique", "flatten")
_OUTPUT_FORMATS: Final = ("json", "string", "count")
_Op = Mapping[str, Any]


def _field(op: _Op) -> str | None:
    value = op.get("field") or op.get("by") or op.get("key")
    return value if isinstance(value, str) and value else None


def _get(item: Any, path: str | None) -> Any:
    if path is None:
        return item
    found = dig(item, path.split("."))
    return None if found is MISSING else found


def _set(item: Any, path: str, value: Any) -> Any:
    if not isinstance(item, Mapping):
        return item
    head, _, rest = path.partition(".")
    copy = dict(item)
    copy[head] = _set(copy.get(head) or {}, rest, value) if rest else value
    return copy


def _per_item(node: Node, text: str, field: str | None) -> Callable[[Any], Any]:
    def value_of(item: Any) -> Any:
        def resolve(segments: tuple[str | int, ...]) -> Any:
            root, rest = segments[0], segments[1:]
            if root in ("item", "@"):
                base = item
            elif root == "value" and field is not None:
                base = _get(item, field)
            elif isinstance(item, Mapping) and root in item:
                base, rest = item[root], segments[1:]
            else:
                return None
            found = dig(base, rest)
            return None if found is MISSING else found

        return evaluate(node, resolve, text=text)

    return value_of


def _sort_key(value: Any) -> tuple[int, Any]:
    number = as_number(value) if not isinstance(value, str) else None
    if number is not None:
        return (0, number)
    if isinstance(value, str):
        return (1, value)
    return (2, json.dumps(value, sort_keys=True, default=str)) if value is not None else (3, 0)


def _aggregate(values: list[Any], function: str) -> Any:
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if function == "sum":
        return sum(numbers)
    if function == "average":
        return sum(numbers) / len(numbers) if numbers else 0
    if function == "count":
        return len(values)
    if function in ("max", "min"):
        return (max if function == "max" else min)(numbers) if numbers else 0
    if function == "first":
        return values[0] if values else None
    if function == "last":
        return values[-1] if values else None
    unique: list[Any] = []
    for value in values:
        if not any(equal(value, seen) for seen in unique):
            unique.append(value)
    return unique if function == "unique" else len(unique)


def _items(data: Any, op: _Op) -> list[Any]:
    if isinstance(data, list | tuple):
        return list(data)
    if data is None:
        return []
    raise ConfigurationError(
        f"operation {op['operation']!r} needs a list, got {type(data).__name__}"
    )


def _apply(data: Any, op: _Op, resolve: Callable[[str], Any]) -> Any:
    kind = op["operation"]
    field = _field(op)
    if kind == "filter":
        test = _per_item(compile_expression(op["condition"]), op["condition"], field)
        if not isinstance(data, list | tuple):
            return data if truthy(test(data)) else None
        return [item for item in data if truthy(test(item))]
    if kind == "map":
        return (
            [_map(item, op, field) for item in _items(data, op)]
            if isinstance(data, list | tuple)
            else _map(data, op, field)
        )
    if kind == "aggregate":
        values = [_get(item, op.get("value_field") or field) for item in _items(data, op)]
        group = op.get("group_by")
        function = op.get("function", "sum")
        if isinstance(group, str):
            groups: dict[str, list[Any]] = {}
            for item, value in zip(_items(data, op), values, strict=True):
                groups.setdefault(str(_get(item, group)), []).append(value)
            return {
                key: _aggregate([v for v in vs if v is not None], function)
                for key, vs in groups.items()
            }
        return _aggregate([v for v in values if v is not None], function)
    if kind == "join":
        right = resolve(op["right_source"])
        right_items = right if isinstance(right, list | tuple) else [right]
        key, left_key = op["join_key"], op.get("left_field") or op["join_key"]
        joined = []
        for item in _items(data, op):
            match = next(
                (r for r in right_items if equal(_get(r, key), _get(item, left_key))), None
            )
            if match is not None and isinstance(item, Mapping) and isinstance(match, Mapping):
                joined.append({**item, **match})
            elif match is not None or op.get("join_type", "left") == "left":
                joined.append(item)
        return joined
    if kind == "group_by":
        grouped: dict[str, list[Any]] = {}
        for item in _items(data, op):
            value = _get(item, field)
            grouped.setdefault(value if isinstance(value, str) else json.dumps(value), []).append(
                item
            )
        return grouped
    if kind == "sort":
        items = _items(data, op)
        known = [item for item in items if _get(item, field) is not None]
        ordered = sorted(
            known, key=lambda item: _sort_key(_get(item, field)), reverse=op.get("order") == "desc"
        )
        return ordered + [item for item in items if _get(item, field) is None]  # None last
    if kind == "unique":
        seen: list[Any] = []
        kept = []
        for item in _items(data, op):
            value = _get(item, field)
            if not any(equal(value, other) for other in seen):
                seen.append(value)
                kept.append(item)
        return kept
    return [
        x for item in _items(data, op) for x in (item if isinstance(item, list | tuple) else [item])
    ]


def _map(item: Any, op: _Op, field: str | None) -> Any:
    mapping = op.get("mapping")
    if isinstance(mapping, Mapping):
        if field is None:
            return {**item, **mapping} if isinstance(item, Mapping) else item
        current = _get(item, field)
        key = current if isinstance(current, str) else json.dumps(current)
        return _set(item, field, mapping.get(key, current)) if key in mapping else item
    expression = op["expression"]
    if expression in ("uppercase", "lowercase"):
        current = _get(item, field)
        if not isinstance(current, str):
            return item
        changed = current.upper() if expression == "uppercase" else current.lower()
        return _set(item, field, changed) if field else changed
    value = _per_item(compile_expression(expression), expression, field)(item)
    return _set(item, field, value) if field else value


def apply_operations(data: Any, operations: list[_Op], resolve: Callable[[str], Any]) -> Any:
    """``data`` through each operation in turn; ``resolve`` finds a join's right_source.
    ConfigurationError naming the operation (by index and kind) when one cannot apply."""
    for index, op in enumerate(operations):
        try:
            data = _apply(data, op, resolve)
        except (ConfigurationError, ExpressionError) as exc:
            raise ConfigurationError(f"operations[{index}] ({op['operation']}): {exc}") from None
    return data


def _check_operation(op: Any, index: int, label: str) -> None:
    where = f"operations[{index}]"
    if not isinstance(op, Mapping) or op.get("operation") not in OPERATIONS:
        kind = op.get("operation") if isinstance(op, Mapping) else op
        raise StepValidationError(
            f"unknown operation {kind!r} (operations: {', '.join(OPERATIONS)})",
            step=label,
            field=f"{where}.operation",
        )
    kind = op["operation"]
    need = {"filter": ("condition",), "join": ("right_source", "join_key")}.get(kind, ())
    if kind == "map" and not isinstance(op.get("mapping"), Mapping):
        need = ("expression",)
    for key in need:
        if not isinstance(op.get(key), str) or not op[key]:
            raise StepValidationError(
                f"a {kind} operation needs {key}", step=label, field=f"{where}.{key}"
            )
    for key in ("condition", "expression"):
        text = op.get(key)
        if isinstance(text, str) and text not in ("uppercase", "lowercase"):
            try:
                compile_expression(text)
            except ExpressionError as exc:
                raise StepValidationError(
                    f"bad {key}: {exc}", step=label, field=f"{where}.{key}"
                ) from None
    if kind == "aggregate" and op.get("function", "sum") not in AGGREGATES:
        raise StepValidationError(
            f"unknown function {op.get('function')!r} (functions: {', '.join(AGGREGATES)})",
            step=label, field=f"{where}.function",
        )  # fmt: skip
    if kind == "sort" and op.get("order", "asc") not in ("asc", "desc"):
        raise StepValidationError("must be asc or desc", step=label, field=f"{where}.order")
    if kind == "join" and op.get("join_type", "left") not in ("left", "inner"):
        raise StepValidationError("must be left or inner", step=label, field=f"{where}.join_type")


class DataTransformStep(Step):
    """``data_transform`` (see the module docstring): no provider call."""

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Filter, map, aggregate, join, group, sort structured data from an "
        "earlier step or a variable; no provider call.",
        required_fields=("input_source", "operations"),
        optional_fields=("output_field", "output_format"),
    )

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        label = str(checked.get("name") or "data_transform")
        operations = checked["operations"]
        if not isinstance(operations, list):
            raise StepValidationError(
                "must be a list of operations", step=label, field="operations"
            )
        for index, op in enumerate(operations):
            _check_operation(op, index, label)
        fmt = checked.get("output_format")
        check_choice(fmt, _OUTPUT_FORMATS, step=label, field="output_format")
        field = checked.get("output_field")
        if field is not None and (not isinstance(field, str) or not field):
            raise StepValidationError("must be a name", step=label, field="output_field")
        return checked

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        host = context.host
        source = step["input_source"]
        if isinstance(source, str):
            if host is None:
                raise ConfigurationError(
                    "data_transform reads its input_source only inside a pipeline run"
                )
            source = host.resolve(source, field="input_source")

        def right(text: str) -> Any:
            if host is None:
                raise ConfigurationError("a join's right_source needs a pipeline run")
            return host.resolve(text, field="right_source")

        result = apply_operations(source, list(step["operations"]), right)
        fmt = step.get("output_format")
        if fmt == "json":
            result = json.dumps(result, ensure_ascii=False, default=str)
        elif fmt == "string":
            result = result if isinstance(result, str) else json.dumps(result, default=str)
        elif fmt == "count":
            result = len(result) if isinstance(result, list | tuple | Mapping) else 1
        metadata = {
            "operation_count": len(step["operations"]),
            "input_type": type(source).__name__,
            "output_type": type(result).__name__,
        }
        name = step.get("output_field") or step.get("name") or "result"
        return StepResult(output={name: result, "metadata": metadata}, metadata=metadata)
