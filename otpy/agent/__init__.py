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

The routing agent (``rt.chat``: the :class:`~otpy.actors.ChatAgent` GenServer,
``<name>.agent`` in the runtime's tree, ``POST /api/agent/chat``) holds requests and runs
pipelines; what it decides lives here: :class:`AgentConfig` (the runtime config's
``agent:`` section: :class:`AgentRoute` rules, an :class:`AgentClassifier`, a default),
:class:`Router` (which route, and each route's fallback), and what it answers
(:class:`AgentReply`, one :class:`AgentAttempt` per run)::

    router = Router(config.agent)
    router.match("Summarize this: ...")      # RouteChoice('summarize', "keyword 'summarize'", ...)
    router.classified("summarize")           # the classifier's answer, read
    router.fallback("summarize", tried)      # where a failed route degrades to
"""

from otpy.agent._ask import ask_agent
from otpy.agent._bash import KEPT_VARIABLES, command_environment
from otpy.agent._limits import ToolLimits
from otpy.agent._loop import DEFAULT_MAX_TURNS, AgentOptions, run_agent
from otpy.agent._registry import BUILTIN_TOOLS, ToolRegistry, ToolSelection, as_tool, tool
from otpy.agent._reply import (
    AgentAttempt,
    AgentReply,
    AgentState,
    AttemptStatus,
    check_routes,
    response_of,
)
from otpy.agent._result import AgentResult, AgentTurn, ToolCallRecord
from otpy.agent._routes import AgentClassifier, AgentConfig, AgentRoute
from otpy.agent._routing import (
    CHAT_ROUTE,
    CLASSIFIER,
    RouteChoice,
    Router,
    chat_pipeline,
    classifier_pipeline,
)
from otpy.agent._search import glob_regex
from otpy.agent._tool import ChangeLog, Tool, ToolContext, python_tool

__all__ = [
    "BUILTIN_TOOLS",
    "CHAT_ROUTE",
    "CLASSIFIER",
    "DEFAULT_MAX_TURNS",
    "KEPT_VARIABLES",
    "AgentAttempt",
    "AgentClassifier",
    "AgentConfig",
    "AgentOptions",
    "AgentReply",
    "AgentResult",
    "AgentRoute",
    "AgentState",
    "AttemptStatus",
    "AgentTurn",
    "ChangeLog",
    "RouteChoice",
    "Router",
    "Tool",
    "ToolCallRecord",
    "ToolContext",
    "ToolLimits",
    "ToolRegistry",
    "ToolSelection",
    "as_tool",
    "ask_agent",
    "chat_pipeline",
    "check_routes",
    "classifier_pipeline",
    "command_environment",
    "glob_regex",
    "python_tool",
    "response_of",
    "run_agent",
    "tool",
]
