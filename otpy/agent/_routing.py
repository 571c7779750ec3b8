"""Which pipeline answers a request: the configured rules (keywords, a regular expression),
the LLM classifier's answer, the default route, and each route's fallback.

Pure and thread-free: the :class:`~otpy.actors.Agent` asks, runs what it is told.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from otpy.agent._routes import AgentConfig, AgentRoute

__all__ = [
    "CHAT_ROUTE",
    "CLASSIFIER",
    "RouteChoice",
    "Router",
    "chat_pipeline",
    "classifier_pipeline",
]

CHAT_ROUTE: Final = "chat"
"""The name of the built-in route an agent without routes answers with."""
CLASSIFIER: Final = "classifier"
"""What a reply's attempts call the classifier's run."""


@dataclass(frozen=True)
class RouteChoice:
    """The route a request goes to and why (``keyword 'x'``, ``pattern``, ``classifier``,
    ``default``, ``built-in chat``); ``source`` is what to run: the pipeline file, or for
    the built-in chat route the pipeline itself."""

    name: str
    reason: str
    source: str | dict[str, Any]


def _keyword(word: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(word) + r"(?!\w)", re.IGNORECASE)


class Router:
    """The routing rules of one :class:`AgentConfig` (see :meth:`match`)."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.routes = {route.name: route for route in config.routes}
        self._rules = [
            (
                route,
                [(word, _keyword(word)) for word in route.keywords if word.strip()],
                re.compile(route.pattern) if route.pattern is not None else None,
            )
            for route in config.routes
        ]

    @property
    def classifies(self) -> bool:
        """Whether a request no rule matches goes to the classifier first."""
        return self.config.classifier is not None and bool(self.routes)

    def match(self, message: str) -> RouteChoice | None:
        """The first route (in configured order) one of whose keywords is a word of
        ``message`` or whose pattern is found in it; None if no rule matches. An agent
        without routes answers every request with the built-in chat route."""
        if not self.routes:
            return RouteChoice(CHAT_ROUTE, "built-in chat", chat_pipeline(self.config))
        for route, keywords, pattern in self._rules:
            for word, regex in keywords:
                if regex.search(message):
                    return self._choice(route, f"keyword {word!r}")
            if pattern is not None and pattern.search(message):
                return self._choice(route, f"pattern {route.pattern!r}")
        return None

    def default(self) -> RouteChoice | None:
        """The default route, or None if ``default`` is not set."""
        name = self.config.default
        return None if name is None else self._choice(self.routes[name], "default")

    def classified(self, answer: Any) -> RouteChoice | None:
        """The route the classifier's ``answer`` names: the whole answer (case, quotes and
        punctuation aside) or else the route name found first in it; None if it names none."""
        text = str(answer or "").strip().lower()
        bare = text.strip(" \t\n\"'`.,:;!*")
        for name, route in self.routes.items():
            if bare == name.lower():
                return self._choice(route, "classifier")
        found = [
            (hit.start(), name)
            for name in self.routes
            if (hit := _keyword(name).search(text)) is not None
        ]
        if not found:
            return None
        return self._choice(self.routes[min(found)[1]], "classifier")

    def fallback(self, name: str, tried: set[str]) -> RouteChoice | None:
        """The fallback of route ``name`` unless it was ``tried`` already (a chain of
        fallbacks ends where it would loop)."""
        route = self.routes.get(name)
        if route is None or route.fallback is None or route.fallback in tried:
            return None
        return self._choice(self.routes[route.fallback], f"fallback of {name!r}")

    def _choice(self, route: AgentRoute, reason: str) -> RouteChoice:
        return RouteChoice(route.name, reason, route.pipeline)


def _plain(text: str) -> str:
    """``text`` safe inside a pipeline template (no ``{{``)."""
    return text.replace("{{", "{ {").replace("}}", "} }")


def chat_pipeline(config: AgentConfig) -> dict[str, Any]:
    """The built-in chat route: one ``claude`` step answering the request."""
    field = config.input
    return {
        "name": CHAT_ROUTE,
        "inputs": {field: {"type": "string"}},
        "steps": [{"name": "reply", "type": "claude", "prompt": f"{{{{ inputs.{field} }}}}"}],
        "outputs": {"response": "{{ steps.reply.text }}"},
    }


def classifier_pipeline(config: AgentConfig) -> dict[str, Any]:
    """The classifier's pipeline: one step of the configured type, told the routes and
    the request, whose output ``route`` is its answer."""
    classifier = config.classifier
    if classifier is None:
        raise ValueError("the agent has no classifier configured")
    listing = "\n".join(
        f"- {route.name}" + (f": {_plain(route.description)}" if route.description else "")
        for route in config.routes
    )
    step: dict[str, Any] = {
        "name": "classify",
        "type": classifier.step,
        "system": "You route requests to pipelines. Answer with one route name only.",
        "prompt": f"Routes:\n{listing}\n\nRequest: {{{{ inputs.{config.input} }}}}\n\nRoute:",
        "max_tokens": classifier.max_tokens,
        "temperature": 0,
    }
    if classifier.provider is not None:
        step["provider"] = classifier.provider
    return {
        "name": "agent-classifier",
        "inputs": {config.input: {"type": "string"}},
        "steps": [step],
        "outputs": {"route": "{{ steps.classify.text }}"},
    }
