"""The agent layer's logic: routing a request to a pipeline and what the agent answers.

The :class:`~otpy.actors.Agent` GenServer (``rt.agent``, ``<name>.agent`` in the
runtime's tree) holds the requests and runs the pipelines; this package decides::

    router = Router(config.agent)
    router.match("Summarize this: ...")      # RouteChoice('summarize', "keyword 'summarize'", ...)
    router.classified("summarize")           # the classifier's answer, read
    router.fallback("summarize", tried)      # where a failed route degrades to

The routes are configured in the runtime config's ``agent:`` section
(:class:`~otpy.config.AgentConfig`).
"""

from otpy.agent._reply import (
    AgentAttempt,
    AgentReply,
    AgentState,
    AttemptStatus,
    check_routes,
    response_of,
)
from otpy.agent._routing import (
    CHAT_ROUTE,
    CLASSIFIER,
    RouteChoice,
    Router,
    chat_pipeline,
    classifier_pipeline,
)

__all__ = [
    "CHAT_ROUTE",
    "CLASSIFIER",
    "AgentAttempt",
    "AgentReply",
    "AgentState",
    "AttemptStatus",
    "RouteChoice",
    "Router",
    "chat_pipeline",
    "check_routes",
    "classifier_pipeline",
    "response_of",
]
