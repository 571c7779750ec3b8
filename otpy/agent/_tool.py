"""A tool the model may call: its name, description and argument schema, and the Python
that runs it. Arguments are validated (pydantic) before the call; the answer is text.

:func:`python_tool` makes one from a typed Python function: the JSON Schema comes from the
type hints (and ``Annotated[..., Field(description=...)]``), the description from the
docstring. A parameter annotated :class:`ToolContext` is not an argument: the agent loop
passes the context of the call (workspace, limits, the change log).
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from otpy.agent._limits import ToolLimits
from otpy.errors import ConfigurationError, ToolError
from otpy.providers import TOOL_NAME_PATTERN, ToolSpec
from otpy.workspace import Workspace

__all__ = ["ChangeLog", "Handler", "Tool", "ToolContext", "python_tool", "shorten"]

Handler = Callable[[BaseModel, "ToolContext"], Any]
"""What runs a tool: ``(validated arguments, context) -> result`` (text, or any value
JSON can show); raising ToolError (or any exception) makes the result an error."""

_NAME: Final = re.compile(TOOL_NAME_PATTERN)


class ChangeLog:
    """The files an agent changed, relative to its workspace, in the order first changed
    (thread-safe: tools may run in several agents at once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: dict[str, None] = {}

    def record(self, path: str) -> None:
        with self._lock:
            self._paths.setdefault(path, None)

    @property
    def paths(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._paths)


@dataclass(frozen=True)
class ToolContext:
    """What a tool call may use: the ``workspace`` (None: no workspace, the file tools
    refuse), the size ``limits``, and ``changes`` (where file tools record what they
    changed)."""

    workspace: Workspace | None = None
    limits: ToolLimits = field(default_factory=ToolLimits)
    changes: ChangeLog = field(default_factory=ChangeLog)

    def require_workspace(self, tool: str) -> Workspace:
        """The workspace, or ToolError when there is none."""
        if self.workspace is None:
            raise ToolError(f"{tool} needs a workspace and this agent has none", tool=tool)
        return self.workspace


@dataclass(frozen=True)
class Tool:
    """A callable tool: ``name``, ``description``, ``arguments`` (the pydantic model its
    arguments must fit; its JSON Schema is what the model sees) and ``handler``.
    ``kind`` is ``workspace`` (a built-in file tool), ``bash`` or ``python``."""

    name: str
    description: str
    arguments: type[BaseModel]
    handler: Handler
    kind: str = "python"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigurationError(
                f"tool name {self.name!r} must be letters, digits, '_' or '-' (at most 64, "
                "not starting with a digit or '-')"
            )

    def spec(self) -> ToolSpec:
        """What a request offers the model (made once per tool)."""
        return self._spec

    @functools.cached_property
    def _spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=self.schema())

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the arguments (an object schema)."""
        return _schema(self.arguments)

    def run(self, arguments: Mapping[str, Any], context: ToolContext) -> str:
        """Validate ``arguments`` and run the handler in this thread; the result as text,
        cut to ``context.limits.max_output_chars``. Raises ToolError for arguments that do
        not fit (naming each problem) and for a handler that raised."""
        try:
            validated = self.arguments.model_validate(dict(arguments))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'arguments'}: {err['msg']}"
                for err in exc.errors()[:5]
            )
            raise ToolError(
                f"invalid arguments for {self.name}: {problems}", tool=self.name
            ) from None
        try:
            result = self.handler(validated, context)
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError(f"{type(exc).__name__}: {exc}", tool=self.name) from exc
        return shorten(_as_text(result), context.limits.max_output_chars)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    note = f"\n[... {len(text) - limit} more characters cut]"
    return text[: max(0, limit - len(note))] + note


def _as_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    if result is None:
        return ""
    return json.dumps(result, ensure_ascii=False, default=str)


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    return schema


def python_tool(
    fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> Tool:
    """A :class:`Tool` calling ``fn`` (see the module docstring). ``name`` defaults to the
    function's name, ``description`` to its docstring. ConfigurationError for a function
    that cannot be a tool: a coroutine function, ``*args``/``**kwargs``, an argument
    without a type hint, or a hint pydantic cannot describe."""
    if not callable(fn):
        raise ConfigurationError(f"a tool must be a function, got {fn!r}")
    label = str(name or getattr(fn, "__name__", ""))
    if inspect.iscoroutinefunction(fn):
        raise ConfigurationError(f"tool {label!r}: an async function cannot be a tool")
    try:
        hints = get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise ConfigurationError(f"tool {label!r}: cannot read its type hints: {exc}") from exc
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigurationError(f"tool {label!r}: *{param.name} cannot be a tool argument")
        hint = hints.get(param.name)
        if hint is ToolContext:
            context_param = param.name
            continue
        if hint is None:
            raise ConfigurationError(f"tool {label!r}: argument {param.name!r} has no type hint")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hint, default)
    try:
        model = create_model(f"{label}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
        _schema(model)
    except Exception as exc:
        raise ConfigurationError(
            f"tool {label!r}: its arguments have no JSON Schema: {exc}"
        ) from exc
    names = list(fields)

    def handler(arguments: BaseModel, context: ToolContext) -> Any:
        kwargs = {key: getattr(arguments, key) for key in names}
        if context_param is not None:
            kwargs[context_param] = context
        return fn(**kwargs)

    doc = description if description is not None else inspect.getdoc(fn) or ""
    return Tool(name=label, description=doc.strip(), arguments=model, handler=handler)
