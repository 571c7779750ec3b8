"""A Ray worker's side of evaluations, without Ray in it: :class:`WorkerEnv`.

Made once per evaluation actor from the :class:`~otpy.ray.WorkerSetup`: the providers are
built from the shipped config at once and kept (their clients warm, their limiters and
breakers — shared through Redis when the config says so — alive), with the keys of this
machine: the SDK's environment variable (``ANTHROPIC_API_KEY``, ...) or this machine's
own otpy config (``OTPY_CONFIG``, ``OTPY_PROVIDERS__<NAME>__API_KEY``). A job's plan and
metric are made from its payload the first time one of its evaluations arrives, and kept
for the next ones (the last :data:`KEPT_JOBS` jobs).

An evaluation runs like one on the thread executor (the job's trace context, the same
``evaluate_example``); the telemetry events its thread emits are collected and go back
with its result, for the driver to hand to its own hub. Events of threads the program
starts itself (a fan-out step's pool) stay in the worker.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from otpy._plugins import resolve
from otpy.clock import SYSTEM_CLOCK, Clock
from otpy.config import ENV_PREFIX, ProviderConfig, RuntimeConfig
from otpy.errors import ConfigurationError
from otpy.optimize import ExampleResult, Metric, evaluate_example
from otpy.pipelines import Plan, RunProgress, compile_pipeline
from otpy.providers import (
    PROVIDER_TYPES,
    Provider,
    ProviderEntry,
    ProviderLimits,
    ProviderView,
    make_entry,
    make_provider,
    register_provider_type,
)
from otpy.ray._travel import JobPayload, WorkerSetup, step_table
from otpy.telemetry import Event, TraceContext, get_telemetry, use_context

__all__ = ["KEPT_JOBS", "WorkerEnv", "WorkerJob", "own_keys"]

logger = logging.getLogger("otpy.jobs")

KEPT_JOBS = 64
"""Jobs whose compiled plan a worker keeps (the least recently used goes first)."""


def own_keys(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The provider keys this machine's own otpy config gives (``OTPY_CONFIG`` and the
    ``OTPY_*`` variables), by provider name; none when no ``OTPY_*`` variable is set. A
    config that does not load is logged and gives none."""
    env = os.environ if environ is None else environ
    if not any(key.startswith(ENV_PREFIX) for key in env):
        return {}
    try:
        config = RuntimeConfig.from_env(env)
    except ConfigurationError as exc:
        logger.warning("Ray worker: this machine's otpy config gives no keys: %s", exc)
        return {}
    providers = config.providers.items()
    return {name: p.api_key.get_secret_value() for name, p in providers if p.api_key is not None}


@dataclass(frozen=True)
class WorkerJob:
    """A job as a worker keeps it: its payload, compiled plan and metric."""

    payload: JobPayload
    plan: Plan
    metric: Metric


class WorkerEnv:
    """One worker's providers, step types and jobs (see the module docstring). Thread-safe:
    the actor runs several evaluations at once, each in a thread of its own."""

    def __init__(
        self,
        setup: WorkerSetup,
        *,
        clock: Clock = SYSTEM_CLOCK,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.clock = clock
        self._built: list[Provider] = []
        self.providers = ProviderView.of(self._entries(setup, environ), clock=clock)
        self._jobs: OrderedDict[str, WorkerJob] = OrderedDict()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._hub = get_telemetry()
        self._subscription = self._hub.subscribe(self._capture)

    def _entries(
        self, setup: WorkerSetup, environ: Mapping[str, str] | None
    ) -> list[ProviderEntry]:
        for type_name, (reference, defaults) in setup.provider_types.items():
            if type_name not in PROVIDER_TYPES:
                default = ProviderLimits.model_validate(defaults)
                register_provider_type(type_name, resolve(reference), default)
        keys = own_keys(environ)
        entries = []
        for name, fields in setup.providers.items():
            key = {"api_key": keys[name]} if name in keys else {}
            config = ProviderConfig.model_validate({**fields, **key})
            for entry_name, options, limits, priority in config.variants(name):
                provider = make_provider(config.type, entry_name, options, self.clock)
                self._built.append(provider)
                entry = make_entry(
                    entry_name, provider, capabilities=config.capabilities, priority=priority,
                    weight=config.weight, limits=limits, clock=self.clock,
                )  # fmt: skip
                entries.append(entry)
        return entries

    def job(self, key: str, load: Callable[[], JobPayload]) -> WorkerJob:
        """Job ``key``, made from ``load()`` the first time (its step types and metric
        imported by reference, its program compiled); raises what that raises."""
        with self._lock:
            found = self._jobs.get(key)
            if found is not None:
                self._jobs.move_to_end(key)
                return found
        payload = load()
        steps = {
            name: (resolve(cls), resolve(check) if check else None)
            for name, (cls, check) in payload.steps.items()
        }
        plan = compile_pipeline(dict(payload.program), step_table(steps), base_dir=payload.base_dir)
        made = WorkerJob(payload, plan, resolve(payload.metric))
        with self._lock:
            made = self._jobs.setdefault(key, made)
            while len(self._jobs) > KEPT_JOBS:
                self._jobs.popitem(last=False)
        return made

    def forget(self, key: str) -> None:
        """Drop job ``key`` (its runner closed its session)."""
        with self._lock:
            self._jobs.pop(key, None)

    def evaluate(
        self,
        job: WorkerJob,
        index: int,
        example: Mapping[str, Any],
        configuration: Mapping[str, Any],
        progress: RunProgress | None = None,
    ) -> tuple[ExampleResult, float, list[Event]]:
        """Evaluate trainset item ``index`` (``example``) of ``job`` with
        ``configuration`` in this thread: its result, cost and the telemetry events it
        emitted (never raises: a failure is a failed example)."""
        events: list[Event] = []
        self._local.events = events
        payload = job.payload
        try:
            with use_context(TraceContext(payload.job_id, None)):
                result, cost = evaluate_example(
                    job.plan, index, example, configuration, job.metric,
                    providers=self.providers, clock=self.clock, progress=progress,
                    prices=payload.prices,
                )  # fmt: skip
        except BaseException as exc:  # a bug in evaluate_example: this example fails
            result, cost = ExampleResult(example=index, score=None, error=repr(exc)), 0.0
        finally:
            self._local.events = None
        return result, cost, events

    def _capture(self, event: Event) -> None:
        events = getattr(self._local, "events", None)
        if events is not None:
            events.append(event)

    def close(self) -> None:
        """Stop collecting events and close the providers made here."""
        self._hub.unsubscribe(self._subscription)
        for provider in self._built:
            try:
                provider.close()
            except Exception:
                logger.exception("Ray worker: closing provider %r failed", provider)
