"""The embedded runtime: ``otpy.start()`` builds the supervision tree in this process.

::

    with otpy.start() as rt:                 # embedded defaults: a simulated provider
        rt.steps.list_steps()                # the built-in step types, and any plugin's
        rt.providers.select(["text"])        # the simulated provider
        rt.compat.migrate_pipeline(old)
        rt.run_pipeline("examples/analysis.yaml", {"text": "..."})   # a PipelineResult
        rt.tools.register(my_function)       # a Python tool agent steps may call by name
        rt.agent("Fix the typo in README.md", tools=["Read", "Edit"], workspace="repo")
        rt.chat.ask("Summarize: ...")        # routed (agent: rules) to a pipeline run
        rt.serve()                           # the HTTP API and dashboard (otpy[web])

The tree: a root supervisor (one_for_one) over the StepRegistry, ProviderRegistry,
CompatibilityManager, HealthMonitor, the routing agent, the JobSupervisor and the runs
supervisor (one temporary worker per pipeline run), each registered as ``<name>.<role>``.
The handles (``rt.steps``, ``rt.providers``, ``rt.compat``, ``rt.chat``) resolve the names
on every write and read the registries' snapshots without a message, so they keep working
while a registry restarts. A fatal escalation at the root (restart intensity exceeded) is
logged and handed to ``on_fatal``; it never kills the host process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from otpy._snapshot import Snapshot
from otpy.actors import (
    CompatibilityHandle,
    CompatibilityManager,
    HealthMonitor,
    JobsHandle,
    PipelineRun,
    ProviderRegistry,
    ProviderRegistryHandle,
    StepRegistry,
    StepRegistryHandle,
    chat_child,
    start_run,
)
from otpy.agent import AgentResult, Tool, ToolRegistry, ask_agent, check_routes
from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.config import ProviderConfig, RuntimeConfig
from otpy.errors import ConfigurationError, NameTakenError
from otpy.optimize import load_metric_plugins, load_strategy_plugins
from otpy.pipelines import (
    PipelineResult,
    PipelineSource,
    Plan,
    StepEvent,
    check_providers,
    check_tools,
    compile_pipeline,
)
from otpy.providers import Provider, ProviderTable, make_provider
from otpy.state import StateProvider
from otpy.steps import StepTable
from otpy.steps.data import DATA_STEPS
from otpy.steps.flow import FLOW_STEPS
from otpy.supervision import ChildSpec, Down, DynamicSupervisor, Supervisor, SupervisorRef
from otpy.telemetry import Telemetry, get_telemetry
from otpy.workspace import Workspace

if TYPE_CHECKING:
    from otpy.web import Server

__all__ = ["Runtime", "start"]

logger = logging.getLogger("otpy.runtime")


RuntimeState = Literal["running", "stopped", "failed"]


class Runtime:
    """A running otpy runtime; make one with :func:`start`.

    ``steps``, ``providers`` and ``compat`` are the registry handles, ``jobs`` starts and
    steers optimization jobs (:class:`JobsHandle`), ``tools`` holds the tools agent steps
    and :meth:`agent` may call (:class:`~otpy.agent.ToolRegistry`); ``supervisor`` is the
    root supervisor's ref; ``jobs_supervisor`` the DynamicSupervisor jobs run under.
    ``state`` is ``running``, ``stopped`` (after ``stop``) or ``failed`` (the root gave up;
    ``failure`` says why).
    """

    def __init__(
        self,
        config: RuntimeConfig,
        *,
        clock: Clock = SYSTEM_CLOCK,
        on_fatal: Callable[[Runtime, object], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.name = config.name
        self.telemetry: Telemetry = get_telemetry()
        self._on_fatal = on_fatal
        self._lock = threading.Lock()
        self._stopping = False
        self.state: RuntimeState = "running"
        self._built: list[Provider] = []  # the providers made from config: ours to close
        self._servers: list[Server] = []  # started by serve(), stopped by stop()
        self.failure: object = None
        prefix = config.name
        step_snapshot: Snapshot[StepTable] = Snapshot(StepTable())
        provider_snapshot: Snapshot[ProviderTable] = Snapshot(ProviderTable())
        timeout = config.call_timeout
        self.steps = StepRegistryHandle(f"{prefix}.steps", step_snapshot, timeout=timeout)
        self.providers = ProviderRegistryHandle(
            f"{prefix}.providers", provider_snapshot, clock=clock, timeout=timeout
        )
        self.compat = CompatibilityHandle(f"{prefix}.compat", self.steps)
        self.tools = ToolRegistry(config.tools)
        agent, self.chat = chat_child(f"{prefix}.agent", config.agent, self.start_pipeline, clock,
                                      timeout)  # fmt: skip
        # claude_session's conversations: in the configured state backend, else the
        # process-wide in-memory store (opened before anything starts: a Redis that cannot
        # be reached fails the start with a StateError).
        self._sessions = (
            None if config.state.backend == "memory" else self.open_state(f"{prefix}.llm.sessions")
        )
        health = config.health
        children = [
            StepRegistry.child_spec(f"{prefix}.steps", step_snapshot, clock=clock),
            replace(
                ProviderRegistry.child_spec(f"{prefix}.providers", provider_snapshot, clock=clock),
                id="providers",
            ),
            CompatibilityManager.child_spec(
                f"{prefix}.compat", self.steps, clock=clock, session_store=self._sessions
            ),
            replace(
                HealthMonitor.child_spec(
                    f"{prefix}.health",
                    self.providers,
                    interval=health.interval,
                    clock=clock,
                    error_rate=health.error_rate,
                    min_calls=health.min_calls,
                    latency_p99=health.latency_p99,
                    recover_after=health.recover_after,
                    check_timeout=health.check_timeout,
                ),
                id="health",
            ),
            agent,  # stopped after the runs it started (a stop kills runs first)
            ChildSpec(
                id="jobs",
                start=lambda: DynamicSupervisor.start(name=f"{prefix}.jobs", clock=clock),
                type="supervisor",
            ),
            ChildSpec(
                id="runs",
                start=lambda: DynamicSupervisor.start(name=f"{prefix}.runs", clock=clock),
                type="supervisor",
            ),
        ]
        try:
            self.supervisor: SupervisorRef = Supervisor.start(
                children,
                strategy="one_for_one",
                max_restarts=config.supervision.max_restarts,
                max_seconds=config.supervision.max_seconds,
                name=f"{prefix}.root",
                clock=clock,
            )
        except NameTakenError as exc:
            self._close_sessions()
            raise ConfigurationError(
                f"a runtime named {prefix!r} is already running in this process; "
                "stop it or start this one with another name"
            ) from exc
        except BaseException:
            self._close_sessions()
            raise
        self.jobs_supervisor = f"{prefix}.jobs"
        self.runs_supervisor = f"{prefix}.runs"
        self.supervisor.monitor(self._root_down)
        try:
            self.jobs = JobsHandle.open(  # a store that cannot be read stops the runtime
                config, self.jobs_supervisor, lambda: self.steps.table, self.providers, clock
            )
            for name, step_type in {**FLOW_STEPS, **DATA_STEPS}.items():
                self.steps.register_step(name, step_type, replace=True)
            for name, provider_config in config.providers.items():
                self._register_provider(name, provider_config)
            if config.plugins:
                self.steps.load_plugins()
                self.providers.load_plugins()
                load_strategy_plugins()
                load_metric_plugins()
            check_routes(config.agent, lambda source: compile_pipeline(source, self.steps.table))
        except BaseException:
            self.stop()
            raise

    def __otpy_ref__(self) -> SupervisorRef:
        """For ``otpy.sys`` and ``otpy.observer``: the root supervisor."""
        return self.supervisor

    def open_state(self, session_id: str | None = None) -> StateProvider:
        """A new store of the configured state backend (``state`` in the config: memory,
        sqlite or redis) on ``session_id`` (None: a fresh session), on the runtime's clock.
        The caller closes it (``cleanup()`` or a ``with`` block); two stores on one session
        share its variables when the backend is sqlite or redis."""
        return self.config.state.open(session_id, clock=self.clock)

    def _close_sessions(self) -> None:
        if self._sessions is not None:
            self._sessions.cleanup()

    def compile_pipeline(self, source: PipelineSource) -> Plan:
        """Load ``source`` (a path, YAML text, a dict or a Pipeline) and check it against
        the registered step types, providers and tools, before anything runs:
        UnknownStepError (closest match), StepValidationError (step, field, position in the
        file; a provider or a tool that is not registered), ConfigurationError."""
        plan = compile_pipeline(source, self.steps.table)
        check_providers(plan, self.providers.table)
        check_tools(plan, self.tools, self.providers.table)
        return plan

    def start_pipeline(
        self,
        source: PipelineSource | Plan,
        inputs: Mapping[str, Any] | None = None,
        *,
        variables: Mapping[str, Any] | None = None,
        on_step: Callable[[StepEvent], None] | None = None,
        workspace: str | os.PathLike[str] | None = None,
        resume: bool = False,
    ) -> PipelineRun:
        """Check the pipeline, then run it in a supervised worker of its own and return
        the :class:`PipelineRun` handle at once (``wait()`` gives the result). ``on_step``
        hears each step start and finish and each loop item (in the worker's thread);
        ``resume`` continues from the pipeline's checkpoint (``checkpoint_enabled``). The
        steps' files (agent tools, file_ops, file prompt parts) are in ``workspace``
        (default: the document's ``workspace_dir``, else ``tools.workspace``, ``./workspace``,
        relative to the current directory, where file parts it lacks are then read)."""
        plan = source if isinstance(source, Plan) else self.compile_pipeline(source)
        return start_run(
            self.runs_supervisor,
            plan,
            inputs,
            variables=variables,
            providers=self.providers,
            clock=self.clock,
            on_step=on_step,
            resume=resume,
            tools=self.tools,
            workspace=Workspace(workspace) if workspace is not None else None,
        )

    def run_pipeline(
        self,
        source: PipelineSource | Plan,
        inputs: Mapping[str, Any] | None = None,
        *,
        variables: Mapping[str, Any] | None = None,
        on_step: Callable[[StepEvent], None] | None = None,
        timeout: float | None = None,
        workspace: str | os.PathLike[str] | None = None,
        resume: bool = False,
    ) -> PipelineResult:
        """Run a pipeline (see :meth:`start_pipeline`) and wait for its result: every
        step's output, timing, tokens, provider, retries and errors. A failed run is a
        result with ``status="failed"`` (``result.raise_for_status()`` raises it); bad
        input raises before any step runs."""
        run = self.start_pipeline(
            source, inputs, variables=variables, on_step=on_step, workspace=workspace,
            resume=resume,
        )  # fmt: skip
        return run.wait(timeout)

    def agent(
        self,
        prompt: str,
        *,
        tools: Sequence[str | Tool | Callable[..., Any]] = (),
        workspace: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> AgentResult:
        """Run an agent on this runtime's providers, in the calling thread: ``prompt`` with
        ``tools`` (names in :attr:`tools`, :class:`~otpy.agent.Tool` objects, or typed
        functions), its file tools confined to ``workspace`` (default as for pipelines).
        ``options``: see :func:`otpy.agent.ask_agent` (system, provider, model,
        max_turns, token_budget, ...). Every turn goes through the provider's guard.
        Raises AgentLimitError, ConfigurationError (an unknown tool), ProviderError."""
        return ask_agent(
            self.providers,
            prompt,
            self.tools.select(tools),
            limits=self.tools.limits,
            workspace=self._workspace(workspace).root,
            clock=self.clock,
            **options,
        )

    def _workspace(self, workspace: str | os.PathLike[str] | None) -> Workspace:
        return Workspace(workspace if workspace is not None else self.config.tools.workspace)

    def _register_provider(self, name: str, config: ProviderConfig) -> None:
        """Register the provider ``name`` and one more per configured model."""
        for entry_name, options, limits, priority in config.variants(name):
            provider = make_provider(config.type, entry_name, options, self.clock)
            self._built.append(provider)
            self.providers.register_provider(
                entry_name, provider, capabilities=config.capabilities, priority=priority,
                limits=limits, weight=config.weight, replace=True,
            )  # fmt: skip

    def _root_down(self, down: Down) -> None:
        with self._lock:
            if self._stopping:
                return
            self.state = "failed"
            self.failure = down.reason
        logger.error(
            "otpy runtime %r: the root supervisor exited (%r); the runtime is down, "
            "the host process goes on",
            self.name,
            down.reason,
        )
        self.telemetry.emit(
            "runtime.failed", metadata={"runtime": self.name, "reason": repr(down.reason)}
        )
        if self._on_fatal is not None:
            try:
                self._on_fatal(self, down.reason)
            except Exception:
                logger.exception("otpy runtime %r: the on_fatal callback raised", self.name)

    def serve(
        self, host: str = "127.0.0.1", port: int = 0, token: str | None = None, **options: Any
    ) -> Server:
        """Serve the JSON API, the event stream and the dashboard from a thread of this
        process (``otpy[web]``): see :class:`otpy.web.Server` (``url``, ``token``,
        ``dashboard_url``, ``stop()``, ``options``); ``stop()`` stops it too."""
        from otpy.web import serve

        server = serve(self, host=host, port=port, token=token, **options)
        with self._lock:
            self._servers.append(server)
        return server

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the tree (children in reverse start order) and wait, then close the
        providers made from the config; idempotent."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            if self.state == "running":
                self.state = "stopped"
            servers, self._servers = self._servers, []
        for server in servers:
            server.stop()
        jobs = getattr(self, "jobs", None)
        if jobs is not None:
            jobs.stopping()  # a runner that goes now leaves its job interrupted
        if self.supervisor.is_alive():
            self.supervisor.shutdown(timeout)
        if jobs is not None:
            jobs.close()
        self._close_sessions()
        for provider in self._built:
            try:
                provider.close()
            except Exception:
                logger.exception("otpy runtime %r: closing provider %r failed", self.name, provider)

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Runtime {self.name!r} {self.state}>"


def start(
    config: RuntimeConfig | Mapping[str, Any] | str | Path | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    on_fatal: Callable[[Runtime, object], None] | None = None,
) -> Runtime:
    """Start the runtime in this process and return it (also a context manager).

    ``config``: a :class:`RuntimeConfig`, a dict, a YAML file path, or ``None`` for the
    environment (``OTPY_*``) over the embedded defaults. ``on_fatal(runtime, reason)`` runs
    if the root supervisor gives up (in the supervisor's thread; keep it short).
    """
    return Runtime(RuntimeConfig.load(config), clock=clock, on_fatal=on_fatal)
