"""The routing agent's configuration (the runtime config's ``agent:`` section): its routes,
the optional LLM classifier, the default route and the limits of a request."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["AgentClassifier", "AgentConfig", "AgentRoute"]


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AgentRoute(_Config):
    """One route: a request whose text holds one of ``keywords`` (whole words,
    case-insensitive) or matches ``pattern`` (a regular expression, searched) runs the
    pipeline file ``pipeline`` (relative to the config file when loaded from one);
    ``name`` is what replies call it, ``description`` what the classifier is told, and
    ``fallback`` the name of the route whose pipeline runs if this one fails or times out."""

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
    pipeline: str = Field(min_length=1)
    keywords: tuple[str, ...] = ()
    pattern: str | None = None
    description: str = ""
    fallback: str | None = None


class AgentClassifier(_Config):
    """The LLM classifier asked when no route's rule matches: one step of type ``step``
    (an LLM step such as ``claude``), on ``provider`` if set, told each route's name and
    description and asked to answer with a name; an answer naming no route sends the
    request to the default route."""

    step: str = "claude"
    provider: str | None = None
    max_tokens: int = Field(default=20, ge=1)


class AgentConfig(_Config):
    """The routing agent (``rt.chat``, ``POST /api/agent/chat``): ``routes`` tried in
    order (the first whose rule matches wins), then the ``classifier`` if configured, then
    the route named ``default``. A request's text goes to each pipeline as the input named
    ``input``. Each run (the classifier, the pipeline, a fallback) gets ``timeout``
    seconds; ``max_message`` caps a request's text (characters) and ``keep`` how many
    finished requests are remembered. With no routes, every request runs a built-in
    one-step chat pipeline on the default provider."""

    routes: tuple[AgentRoute, ...] = ()
    default: str | None = None
    classifier: AgentClassifier | None = None
    input: str = Field(default="message", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout: float = Field(default=120.0, gt=0)
    max_message: int = Field(default=20_000, ge=1)
    keep: int = Field(default=1000, ge=1)

    @model_validator(mode="after")
    def _references(self) -> AgentConfig:
        names = [route.name for route in self.routes]
        for index, route in enumerate(self.routes):
            if names.index(route.name) != index:
                raise ValueError(f"routes[{index}]: a second route named {route.name!r}")
            if route.pattern is not None:
                try:
                    re.compile(route.pattern)
                except re.error as exc:
                    raise ValueError(
                        f"routes[{index}] ({route.name}): pattern {route.pattern!r} is not a "
                        f"regular expression: {exc}"
                    ) from None
            if route.fallback is not None and route.fallback not in names:
                raise ValueError(
                    f"routes[{index}] ({route.name}): fallback {route.fallback!r} names no "
                    f"route (routes: {', '.join(names)})"
                )
        if self.default is not None and self.default not in names:
            known = ", ".join(names) or "none"
            raise ValueError(f"default {self.default!r} names no route (routes: {known})")
        return self
