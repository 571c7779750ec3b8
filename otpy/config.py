"""Runtime configuration: pydantic models, from a dict, a YAML file or the environment.

The defaults are the embedded runtime: one ``simulated`` provider, no server, no key::

    RuntimeConfig()                                   # the embedded defaults
    RuntimeConfig.load({"providers": {"sim": {"options": {"latency": 0.02}}}})
    RuntimeConfig.load("otpy.yaml")                   # safe-loaded YAML
    RuntimeConfig.from_env()                          # OTPY_CONFIG=file.yaml, OTPY_NAME=...,
                                                      # OTPY_HEALTH__INTERVAL=5 (``__`` nests)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from otpy.agent import AgentClassifier, AgentConfig, AgentRoute, ToolLimits
from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.documents import validation_problems
from otpy.errors import ConfigurationError
from otpy.optimize import ExecutorConfig
from otpy.providers import PROVIDER_TYPES, ProviderLimits

if TYPE_CHECKING:
    from otpy.state import StateProvider

__all__ = [
    "ENV_PREFIX",
    "AgentClassifier",
    "AgentConfig",
    "AgentRoute",
    "ExecutorConfig",
    "HealthConfig",
    "JobsConfig",
    "ModelConfig",
    "ProviderConfig",
    "RuntimeConfig",
    "StateConfig",
    "SupervisionConfig",
    "WebConfig",
]

ENV_PREFIX = "OTPY_"

logger = logging.getLogger("otpy.config")


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

    def variants(self, name: str) -> list[tuple[str, dict[str, Any], ProviderLimits | None, int]]:
        """The providers this entry makes, as ``(name, options, limits, priority)``: one
        for ``name`` and one per model (``<name>/<model>``); the key goes into the options,
        the limits default to the type's."""
        kind = PROVIDER_TYPES.get(self.type)
        limits = self.limits or (kind.default_limits if kind is not None else None)
        options = dict(self.options)
        if self.api_key is not None:
            options["api_key"] = self.api_key.get_secret_value()
        variants = [(name, options, limits, self.priority)]
        for model, model_config in self.models.items():
            priority = self.priority if model_config.priority is None else model_config.priority
            model_limits = model_config.limits or limits
            variants.append(
                (f"{name}/{model}", {**options, "model": model}, model_limits, priority)
            )
        return variants


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


class JobsConfig(_Config):
    """How a runtime runs optimization jobs: a job's lease in the store lasts
    ``lease_seconds`` unless renewed (the runtime renews all its leases every third of
    that; a job whose runtime died can be resumed elsewhere once it has expired, or at
    once on the same host); an evaluation thread with no work for ``idle_seconds`` exits
    (a paused job holds none); ``max_threads`` caps the evaluation threads of the
    runtime (None: as many as the running jobs' concurrency asks for); ``executor``: what
    jobs that name no executor run on, and the Ray cluster's settings
    (:class:`~otpy.optimize.ExecutorConfig`)."""

    lease_seconds: float = Field(default=30.0, gt=0)
    idle_seconds: float = Field(default=10.0, gt=0)
    max_threads: int | None = Field(default=None, ge=1)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)


_STATE_FIELDS = {"memory": (), "sqlite": ("path", "timeout"), "redis": ("url", "prefix", "timeout")}


class StateConfig(_Config):
    """Where the runtime keeps state (``rt.open_state``, and the ``claude_session`` steps'
    conversations): ``backend`` ``memory`` (the default: this process only), ``sqlite``
    (the file ``path``) or ``redis`` (``url``, kept secret: every process on that Redis
    shares the sessions; ``prefix`` starts its keys). ``timeout``: seconds a Redis command
    may take, or a SQLite write waits for another connection's lock. A field the backend
    does not use is named in a warning on the ``otpy.config`` logger."""

    backend: Literal["memory", "sqlite", "redis"] = "memory"
    path: str | None = None
    url: SecretStr | None = None
    prefix: str = "otpy:state"
    timeout: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _fields_of_the_backend(self) -> Self:
        needed = {"sqlite": "path", "redis": "url"}.get(self.backend)
        if needed is not None and getattr(self, needed) is None:
            raise ValueError(f"backend {self.backend!r} needs the field {needed!r}")
        unused = sorted(
            name
            for name in self.model_fields_set - {"backend"}
            if name not in _STATE_FIELDS[self.backend]
        )
        if unused:
            logger.warning(
                "state config: field(s) %s not used by backend %r; ignored",
                ", ".join(map(repr, unused)),
                self.backend,
            )
        return self

    def open(self, session_id: str | None = None, *, clock: Clock = SYSTEM_CLOCK) -> StateProvider:
        """A new, open store of this backend on ``session_id`` (None: a fresh session); the
        caller closes it (``cleanup()`` or a ``with`` block). StateError if the store cannot
        be opened (a Redis that cannot be reached, a file that is not a state store)."""
        from otpy.state import LocalState, RedisState, SQLiteState

        if self.backend == "sqlite":
            assert self.path is not None
            return SQLiteState(self.path, session_id, clock=clock, timeout=self.timeout)
        if self.backend == "redis":
            assert self.url is not None
            url, prefix, timeout = self.url.get_secret_value(), self.prefix, self.timeout
            return RedisState(url, session_id, clock=clock, prefix=prefix, timeout=timeout)
        return LocalState(session_id, clock=clock)


class WebConfig(_Config):
    """The web server: ``otpy serve`` binds ``host``:``port``; the bearer ``token``
    mutating requests need (kept secret; None: a random one is made; required on an
    address other than loopback) and ``max_body``, the cap on a request body in bytes,
    apply to ``rt.serve()`` too (its own host and port default to 127.0.0.1 and a free
    port)."""

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
    state: StateConfig = Field(default_factory=StateConfig)
    plugins: bool = True
    call_timeout: float = Field(default=5.0, gt=0)
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    tools: ToolLimits = Field(
        default_factory=ToolLimits,
        description="What agent steps' tools may do: the workspace folder, size caps, and "
        "whether Bash exists (bash: true; off by default).",
    )
    state_dir: str | None = Field(
        default=None,
        description="The folder otpy keeps its state in: the jobs store's default "
        "jobs.sqlite (None: $XDG_STATE_HOME/otpy, else ~/.local/state/otpy; from the "
        "environment: OTPY_STATE_DIR).",
    )
    jobs_store: str | None = Field(
        default=None,
        description="The SQLite file optimization jobs checkpoint to (None: "
        "<state_dir>/jobs.sqlite; ':memory:' keeps them in this process only).",
    )
    agent: AgentConfig = Field(
        default_factory=AgentConfig,
        description="The routing agent (rt.chat): routes by keyword or pattern to pipeline "
        "files, an optional LLM classifier, a default route, fallbacks, a timeout.",
    )
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
        level down; values are read as YAML scalars or flow collections: ``5``, ``true``,
        ``[a, b]``, ``{rpm: 5}``; anything else is text, e.g. ``:memory:``)."""
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
            value = _env_value(key, raw)
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


def _env_value(key: str, raw: str) -> Any:
    """An environment variable's value as YAML: a scalar (``5``, ``true``, ``:memory:``) or
    a flow collection (``[a, b]``, ``{rpm: 5}``); text YAML would read as a block mapping
    or list (``:memory:``, ``- a``) stays the text it is."""
    if not raw:
        return raw
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        if raw.lstrip()[:1] in ("[", "{"):
            raise ConfigurationError(f"environment variable {key}: not a value: {exc}") from exc
        return raw
    if isinstance(value, dict | list) and raw.lstrip()[:1] not in ("[", "{"):
        return raw
    return value


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
