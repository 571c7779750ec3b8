"""Runtime configuration: pydantic models, from a dict, a YAML file or the environment.

The defaults are the embedded runtime: one ``simulated`` provider, no server, no key::

    RuntimeConfig()                                   # the embedded defaults
    RuntimeConfig.load({"providers": {"sim": {"options": {"latency": 0.02}}}})
    RuntimeConfig.load("otpy.yaml")                   # safe-loaded YAML
    RuntimeConfig.from_env()                          # OTPY_CONFIG=file.yaml, OTPY_NAME=...,
                                                      # OTPY_HEALTH__INTERVAL=5 (``__`` nests)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from otpy.documents import validation_problems
from otpy.errors import ConfigurationError
from otpy.providers import ProviderLimits

__all__ = [
    "ENV_PREFIX",
    "AgentClassifier",
    "AgentConfig",
    "AgentRoute",
    "HealthConfig",
    "ModelConfig",
    "ProviderConfig",
    "RuntimeConfig",
    "SupervisionConfig",
    "WebConfig",
]

ENV_PREFIX = "OTPY_"


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelConfig(_Config):
    """One model of a provider with limits of its own (providers limit per model)."""

    limits: ProviderLimits | None = None
    priority: int | None = None


class ProviderConfig(_Config):
    """One provider: its ``type`` (``simulated``, ``anthropic``, ``gemini``, or a type a
    plugin adds), the ``capabilities`` it serves (default: the provider's own), its
    selection ``priority`` and ``weight``, its rate limits and breaker settings (default:
    the type's, see the README), its ``api_key`` (default: the type's environment
    variable; kept secret: never shown in a repr or a log), and ``options`` passed to the
    provider itself (``model``, ``base_url``, ``timeout``; for ``simulated``: seed,
    latency, failure_rate, ...).

    Each entry of ``models`` becomes a provider of its own, ``<name>/<model>``, using that
    model with its own limits and breaker (``limits`` ``None``: the provider's)."""

    type: str = "simulated"
    capabilities: tuple[str, ...] | None = None
    priority: int = 0
    weight: float = Field(default=1.0, gt=0)
    limits: ProviderLimits | None = None
    api_key: SecretStr | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)


class HealthConfig(_Config):
    """How the HealthMonitor judges providers: every ``interval`` seconds; unhealthy at an
    error rate of ``error_rate`` over at least ``min_calls`` calls, or a p99 latency above
    ``latency_p99`` seconds (if set), or an open breaker. A provider taken out comes back
    on probation after ``recover_after`` seconds (its breaker then decides); a provider's
    own ``health_check()`` may take ``check_timeout`` seconds."""

    interval: float = Field(default=10.0, gt=0)
    error_rate: float = Field(default=0.5, gt=0, le=1)
    min_calls: int = Field(default=10, ge=1)
    latency_p99: float | None = Field(default=None, gt=0)
    recover_after: float = Field(default=30.0, ge=0)
    check_timeout: float = Field(default=10.0, gt=0)


class SupervisionConfig(_Config):
    """The root supervisor's restart intensity: more than ``max_restarts`` restarts within
    ``max_seconds`` is a fatal escalation (reported, never killing the host process)."""

    max_restarts: int = Field(default=3, ge=0)
    max_seconds: float = Field(default=5.0, gt=0)


class AgentRoute(_Config):
    """One route of the agent: a request whose text holds one of ``keywords`` (whole
    words, case-insensitive) or matches ``pattern`` (a regular expression, searched) runs
    the pipeline file ``pipeline`` (relative to the config file when loaded from one);
    ``name`` is what replies call it, ``description`` what the classifier is told, and
    ``fallback`` the name of the route whose pipeline runs if this one fails or times out."""

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
    pipeline: str = Field(min_length=1)
    keywords: tuple[str, ...] = ()
    pattern: str | None = None
    description: str = ""
    fallback: str | None = None


class AgentClassifier(_Config):
    """The LLM classifier the agent asks when no route's rule matches: one step of type
    ``step`` (an LLM step such as ``claude``), on ``provider`` if set, told each route's
    name and description and asked to answer with a name; an answer naming no route
    sends the request to the default route."""

    step: str = "claude"
    provider: str | None = None
    max_tokens: int = Field(default=20, ge=1)


class AgentConfig(_Config):
    """The agent (``rt.agent``, ``POST /api/agent/chat``): ``routes`` tried in order (the
    first whose rule matches wins), then the ``classifier`` if configured, then the route
    named ``default``. A request's text goes to each pipeline as the input named
    ``input``. A run (each attempt: the classifier, the pipeline, a fallback) gets
    ``timeout`` seconds; ``max_message`` caps a request's text (characters) and ``keep``
    how many finished requests are remembered. With no routes, every request runs a
    built-in one-step chat pipeline on the default provider."""

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


class WebConfig(_Config):
    """``otpy serve``: the address (``host``, ``port``), the bearer ``token`` mutating
    requests need (kept secret; None: ``rt.serve`` makes a random one; required on an
    address other than loopback) and ``max_body``, the cap on a request body in bytes.
    ``rt.serve()`` takes the token from here when it is given none."""

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    token: SecretStr | None = None
    max_body: int = Field(default=1 << 20, ge=1)


def _default_providers() -> dict[str, ProviderConfig]:
    return {"simulated": ProviderConfig()}


class RuntimeConfig(_Config):
    """Everything ``otpy.start`` needs. ``name`` prefixes the registered names of the
    runtime's actors, so several runtimes can live in one process under different names."""

    name: str = Field(default="otpy", pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
    providers: dict[str, ProviderConfig] = Field(default_factory=_default_providers)
    health: HealthConfig = Field(default_factory=HealthConfig)
    supervision: SupervisionConfig = Field(default_factory=SupervisionConfig)
    plugins: bool = True
    call_timeout: float = Field(default=5.0, gt=0)
    jobs_store: str | None = Field(
        default=None,
        description="The SQLite file optimization jobs checkpoint to (None: "
        "$OTPY_STATE_DIR/jobs.sqlite, else ~/.local/state/otpy/jobs.sqlite; ':memory:' "
        "keeps them in this process only).",
    )
    agent: AgentConfig = Field(default_factory=AgentConfig)
    web: WebConfig = Field(default_factory=WebConfig)

    @classmethod
    def load(cls, source: RuntimeConfig | Mapping[str, Any] | str | Path | None) -> RuntimeConfig:
        """A config from an instance, a mapping, a YAML file path, or (``None``) the
        environment over the defaults."""
        if isinstance(source, RuntimeConfig):
            return source
        if source is None:
            return cls.from_env()
        if isinstance(source, str | Path):
            return cls.from_yaml(source)
        if isinstance(source, Mapping):
            return _validated(cls, source, "the config dict")
        raise ConfigurationError(
            f"config must be a RuntimeConfig, a dict, a YAML file path or None, got {source!r}"
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> RuntimeConfig:
        """Read a YAML file (safe-loaded: plain data only)."""
        data = _read_yaml(Path(path))
        return _validated(cls, data, str(path))

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, prefix: str = ENV_PREFIX
    ) -> RuntimeConfig:
        """The defaults, then the YAML file ``OTPY_CONFIG`` names (if set), then every other
        ``OTPY_*`` variable: ``OTPY_NAME=x``, ``OTPY_HEALTH__INTERVAL=5`` (``__`` goes one
        level down; values are read as YAML scalars: ``5``, ``true``, ``[a, b]``)."""
        env = os.environ if environ is None else environ
        data: dict[str, Any] = {}
        config_file = env.get(prefix + "CONFIG")
        if config_file:
            data = _read_yaml(Path(config_file))
        for key, raw in sorted(env.items()):
            if not key.startswith(prefix) or key == prefix + "CONFIG":
                continue
            path = [part.lower() for part in key[len(prefix) :].split("__")]
            if not all(path):
                raise ConfigurationError(f"environment variable {key}: empty name part")
            try:
                value = yaml.safe_load(raw) if raw else raw
            except yaml.YAMLError as exc:
                raise ConfigurationError(f"environment variable {key}: not a value: {exc}") from exc
            target = data
            for part in path[:-1]:
                nested = target.setdefault(part, {})
                if not isinstance(nested, dict):
                    raise ConfigurationError(
                        f"environment variable {key}: {part!r} is not a section"
                    )
                target = nested
            target[path[-1]] = value
        return _validated(
            cls, data, "the environment" + (f" and {config_file}" if config_file else "")
        )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {str(path)!r}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigurationError(f"config file {str(path)!r}{where}: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"config file {str(path)!r}: the top level must be a mapping, got {type(data).__name__}"
        )
    _anchor_pipelines(data, path.parent)
    return data


def _anchor_pipelines(data: dict[str, Any], base: Path) -> None:
    """Make the agent routes' relative pipeline paths relative to the config file's folder
    (``base``); anything malformed is left for validation to report."""
    agent = data.get("agent")
    routes = agent.get("routes") if isinstance(agent, dict) else None
    for route in routes if isinstance(routes, list) else ():
        pipeline = route.get("pipeline") if isinstance(route, dict) else None
        if isinstance(pipeline, str) and pipeline and not Path(pipeline).is_absolute():
            route["pipeline"] = str(base / pipeline)


def _validated(cls: type[RuntimeConfig], data: Mapping[str, Any], source: str) -> RuntimeConfig:
    try:
        return cls.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        problems = validation_problems(exc)
        raise ConfigurationError(f"invalid runtime config from {source}: {problems}") from exc
