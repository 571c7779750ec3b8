"""Python functions as tools: the JSON Schema from the type hints, arguments validated
before the call, an exception as an error result, the registry and the decorator."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from otpy.agent import ToolContext, ToolRegistry, as_tool, python_tool, tool
from otpy.errors import ConfigurationError, ToolError


class Point(BaseModel):
    x: float
    y: float


def distance(a: Point, b: Point, unit: Literal["m", "km"] = "m") -> str:
    """Distance between two points.

    The points are in metres."""
    d = ((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5
    return f"{d if unit == 'm' else d / 1000} {unit}"


def test_schema_from_type_hints_and_docstring() -> None:
    made = python_tool(distance)
    spec = made.spec()
    assert spec.name == "distance"
    assert spec.description == "Distance between two points.\n\nThe points are in metres."
    schema = spec.parameters
    assert schema["type"] == "object" and schema["required"] == ["a", "b"]
    assert schema["properties"]["unit"] == {"default": "m", "enum": ["m", "km"], "type": "string"}
    assert schema["properties"]["a"] == {"$ref": "#/$defs/Point"}
    assert schema["$defs"]["Point"]["required"] == ["x", "y"]
    assert schema["additionalProperties"] is False
    args = {"a": {"x": 0, "y": 0}, "b": {"x": 3, "y": 4}, "unit": "km"}
    assert made.run(args, ToolContext()) == "0.005 km"


def test_field_descriptions_and_results_that_are_not_text() -> None:
    def lookup(
        order_id: Annotated[str, Field(description="The order number, e.g. A-12.")],
        fields: list[str] | None = None,
    ) -> dict[str, object]:
        return {"id": order_id, "fields": fields or [], "total": 12.5}

    made = python_tool(lookup, name="find_order", description="Find an order.")
    assert made.name == "find_order" and made.description == "Find an order."
    assert made.schema()["properties"]["order_id"]["description"] == "The order number, e.g. A-12."
    out = made.run({"order_id": "A-12"}, ToolContext())
    assert out == '{"id": "A-12", "fields": [], "total": 12.5}'


def test_arguments_are_validated_before_the_call() -> None:
    called: list[object] = []

    def count(n: int) -> int:
        called.append(n)
        return n

    made = python_tool(count)
    with pytest.raises(ToolError, match="invalid arguments for count: n: Input should be a valid"):
        made.run({"n": "many"}, ToolContext())
    with pytest.raises(ToolError, match="extra: Extra inputs are not permitted"):
        made.run({"n": 1, "extra": 2}, ToolContext())
    with pytest.raises(ToolError, match="n: Field required"):
        made.run({}, ToolContext())
    assert called == []
    assert made.run({"n": "7"}, ToolContext()) == "7"  # pydantic's lax mode: "7" is 7


def test_an_exception_becomes_an_error_result() -> None:
    def divide(a: float, b: float) -> float:
        return a / b

    with pytest.raises(ToolError, match="ZeroDivisionError: float division by zero") as info:
        python_tool(divide).run({"a": 1, "b": 0}, ToolContext())
    assert info.value.tool == "divide"
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_the_context_is_passed_not_asked_for() -> None:
    def where(name: str, context: ToolContext) -> str:
        return f"{name} in {context.workspace}"

    made = python_tool(where)
    assert list(made.schema()["properties"]) == ["name"]
    assert made.run({"name": "x"}, ToolContext()) == "x in None"


@pytest.mark.parametrize(
    ("fn", "problem"),
    [
        (lambda x: x, "has no type hint"),
        (print, "cannot be a tool argument"),
    ],
)
def test_functions_that_cannot_be_tools(fn: object, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        python_tool(fn)  # type: ignore[arg-type]


def test_an_async_function_or_a_bad_name_is_refused() -> None:
    async def later(x: int) -> int:
        return x

    with pytest.raises(ConfigurationError, match="an async function cannot be a tool"):
        python_tool(later)
    with pytest.raises(ConfigurationError, match="tool name 'has space'"):
        python_tool(distance, name="has space")


def test_the_registry_and_the_decorator() -> None:
    registry = ToolRegistry()

    @registry.register
    def echo(text: str) -> str:
        """Say it back."""
        return text

    @registry.register(name="shout", description="Upper-case it.")
    def loud(text: str) -> str:
        return text.upper()

    assert echo("x") == "x" and loud("x") == "X"  # the functions stay as they were
    assert {"echo", "shout", "Read", "Write"} <= set(registry.names())
    shout = registry.get("shout")
    assert shout is not None and shout.description == "Upper-case it."
    with pytest.raises(ConfigurationError, match="'echo' is registered already"):
        registry.register(echo)
    registry.register(loud, name="echo", replace=True)
    assert registry.select(["echo"]).tools[0].run({"text": "a"}, ToolContext()) == "A"
    assert registry.unregister("echo") and not registry.unregister("echo")

    @tool(name="greet")
    def hello(who: str) -> str:
        return f"hi {who}"

    assert hello("bob") == "hi bob" and as_tool(hello).name == "greet"
    registry.register(hello)
    assert "greet" in registry
    selection = registry.select(["Read", hello, python_tool(distance)], disallowed=["Read"])
    assert selection.names == ("greet", "distance")
