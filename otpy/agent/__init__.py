"""Agents: a model that calls tools in a loop, and the tools it calls.

::

    with otpy.start() as rt:
        @rt.tools.register
        def add(a: int, b: int) -> int:
            '''Add two numbers.'''
            return a + b

        result = rt.agent("What is 2 + 3?", tools=["add"])
        result.text, result.turns, result.usage

- Tools: :class:`Tool` (name, description, argument model, handler), :func:`python_tool`
  and the :func:`tool` decorator (a typed function becomes a tool: JSON Schema from its
  type hints, arguments validated before the call, an exception becomes an error result),
  :class:`ToolRegistry` (``rt.tools``), the built-in tools :data:`BUILTIN_TOOLS` with
  Claude Code's names and arguments (Read, Write, Edit, MultiEdit, Glob, Grep, LS, and
  Bash only where the runtime enables it), confined to a workspace
  (:class:`otpy.workspace.Workspace`), within :class:`ToolLimits`.
- The loop: :func:`run_agent` with :class:`AgentOptions` (max_turns, token budget), and
  :func:`ask_agent` for a prompt on a provider gateway (``rt.agent`` uses it),
  giving an :class:`AgentResult` (final text, :class:`AgentTurn` list with
  :class:`ToolCallRecord` items, the conversation, usage, cost, files changed).

The provider-level types a loop exchanges with a model (``ToolSpec``, ``ToolCall``,
``ToolResult``) are in :mod:`otpy.providers`.
"""

from otpy.agent._ask import ask_agent
from otpy.agent._bash import KEPT_VARIABLES, command_environment
from otpy.agent._limits import ToolLimits
from otpy.agent._loop import DEFAULT_MAX_TURNS, AgentOptions, run_agent
from otpy.agent._registry import BUILTIN_TOOLS, ToolRegistry, ToolSelection, as_tool, tool
from otpy.agent._result import AgentResult, AgentTurn, ToolCallRecord
from otpy.agent._search import glob_regex
from otpy.agent._tool import ChangeLog, Tool, ToolContext, python_tool

__all__ = [
    "BUILTIN_TOOLS",
    "DEFAULT_MAX_TURNS",
    "KEPT_VARIABLES",
    "AgentOptions",
    "AgentResult",
    "AgentTurn",
    "ChangeLog",
    "Tool",
    "ToolCallRecord",
    "ToolContext",
    "ToolLimits",
    "ToolRegistry",
    "ToolSelection",
    "as_tool",
    "ask_agent",
    "command_environment",
    "glob_regex",
    "python_tool",
    "run_agent",
    "tool",
]
