"""What travels to Ray workers, and what is checked before a job goes there.

Nothing live travels, and no key. A worker is made once, with a :class:`WorkerSetup`: the
runtime config's providers (their ``api_key`` and any secret-named option left out: a
worker reads keys from its own environment or otpy config) and the provider types that
are not built in, by importable reference. A job goes once per runner incarnation, as a
:class:`JobPayload`: its program as stored, the folder its sub-pipelines are relative to,
its prices, the step types beyond the built-in ones and its metric, by importable
reference (``module:qualname``). An evaluation sends the task: the candidate's
configuration and the example itself.

A reference exists only for what a worker can import: a module-level function or class
of a module other than ``__main__``. What has none is refused at start
(:func:`job_payload`: ConfigurationError naming it), before the job is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from otpy._plugins import resolve
from otpy.config import RuntimeConfig
from otpy.errors import ConfigurationError, UnknownStepError
from otpy.optimize import JobWork
from otpy.pipelines import compile_pipeline
from otpy.providers import PROVIDER_TYPES
from otpy.redaction import is_secret_key
from otpy.steps import Step, StepEntry, StepTable
from otpy.steps.data import DATA_STEPS
from otpy.steps.flow import FLOW_STEPS
from otpy.steps.llm import BUILTIN_STEPS

__all__ = [
    "BUILTIN_PROVIDER_TYPES",
    "JobPayload",
    "WorkerSetup",
    "job_payload",
    "reference_of",
    "standard_steps",
    "step_table",
    "travel_warnings",
    "worker_setup",
]

BUILTIN_PROVIDER_TYPES = frozenset({"simulated", "anthropic", "gemini"})
"""Provider types every worker has (otpy's own)."""


def standard_steps() -> dict[str, type[Step]]:
    """The step types every worker has: the built-in LLM steps, flow and data steps."""
    return {**BUILTIN_STEPS, **FLOW_STEPS, **DATA_STEPS}


def reference_of(obj: Any) -> str | None:
    """``"module:qualname"`` by which a worker imports ``obj``, or None when it has none
    (``__main__``, a lambda, defined inside a function, or not found at that name)."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module == "__main__":
        return None
    if "<" in qualname:  # <lambda>, <locals>
        return None
    reference = f"{module}:{qualname}"
    try:
        found = resolve(reference)
    except (ImportError, AttributeError):
        return None
    return reference if found is obj else None


@dataclass(frozen=True)
class WorkerSetup:
    """What each Ray worker is made with: ``providers`` (name -> the ProviderConfig's
    fields without ``api_key`` and secret-named options), ``provider_types`` (type name
    -> (factory reference, default limits) for the types not built in), and ``dropped``
    (what was left out, for the start warning)."""

    providers: dict[str, dict[str, Any]]
    provider_types: dict[str, tuple[str, dict[str, Any]]]
    dropped: tuple[str, ...] = ()


def worker_setup(config: RuntimeConfig | None) -> WorkerSetup:
    """The :class:`WorkerSetup` of a runtime with ``config`` (None: no providers)."""
    providers: dict[str, dict[str, Any]] = {}
    types: dict[str, tuple[str, dict[str, Any]]] = {}
    dropped: list[str] = []
    for name, provider in (config.providers if config is not None else {}).items():
        fields = provider.model_dump(mode="json", exclude={"api_key"}, exclude_unset=True)
        options = dict(fields.get("options") or {})
        secret = sorted(key for key in options if is_secret_key(key))
        if secret:
            dropped.append(f"{name}: option {', '.join(secret)} not sent")
        fields["options"] = {k: v for k, v in options.items() if k not in secret}
        kind = PROVIDER_TYPES.get(provider.type)
        if provider.type not in BUILTIN_PROVIDER_TYPES and kind is not None:
            reference = reference_of(kind.factory)
            if reference is None:
                dropped.append(f"{name}: its type {provider.type!r} has no importable factory")
                continue
            limits = kind.default_limits.model_dump(mode="json")
            types[provider.type] = (reference, limits)
        providers[name] = fields
    return WorkerSetup(providers, types, tuple(dropped))


@dataclass(frozen=True)
class JobPayload:
    """What a worker needs of a job (see the module docstring)."""

    job_id: str
    program: dict[str, Any]
    base_dir: str | None
    steps: dict[str, tuple[str, str | None]]
    metric: str
    prices: dict[str, tuple[float, float]]


def step_table(steps: Mapping[str, tuple[type[Step], Any]]) -> StepTable:
    """A table of ``steps`` (name -> (class, validator)) over the standard step types."""
    chosen: dict[str, tuple[type[Step], Any]] = {n: (c, None) for n, c in standard_steps().items()}
    chosen.update(steps)
    return StepTable(
        {
            name: StepEntry(name, cls, validator, cls.metadata, 0.0)
            for name, (cls, validator) in chosen.items()
        }
    )


def _custom_steps(table: StepTable | None) -> dict[str, StepEntry]:
    """The driver's step types a worker lacks (a built-in one bound to a store, e.g.
    ``claude_session``, is the worker's own)."""
    standard, custom = standard_steps(), {}
    for name, entry in table.entries.items() if table is not None else ():
        own = standard.get(name)
        if own is None or not issubclass(entry.step_cls, own) or entry.validator is not None:
            custom[name] = entry
    return custom


def job_payload(work: JobWork) -> JobPayload:
    """The payload of the job ``work`` describes; ConfigurationError if its metric or a
    step type its program uses cannot reach a worker (nothing importable to send)."""
    spec = work.spec
    metric = reference_of(work.metric)
    if metric is None:
        shown = spec.metric or getattr(work.metric, "__qualname__", repr(work.metric))
        raise ConfigurationError(
            f"job {spec.job_id!r}: its metric {shown!r} cannot reach Ray workers: executor "
            "'ray' sends a metric by reference (module:name), and a function defined in "
            "__main__, inside another function or as a lambda has none. Define it at the "
            "top level of a module the workers can import (or make it an otpy.metrics "
            "plugin), or run the job on executor 'threads'"
        )
    travels: dict[str, tuple[str, str | None]] = {}
    reachable: dict[str, tuple[type[Step], Any]] = {}
    for name, entry in _custom_steps(work.table).items():
        cls_ref = reference_of(entry.step_cls)
        check = entry.validator
        validator_ref = reference_of(check) if check is not None else None
        if cls_ref is not None and (check is None or validator_ref is not None):
            travels[name] = (cls_ref, validator_ref)
            reachable[name] = (entry.step_cls, check)
    try:
        compile_pipeline(dict(spec.program), step_table(reachable), base_dir=spec.base_dir)
    except UnknownStepError as exc:
        raise ConfigurationError(
            f"job {spec.job_id!r}: its program uses the step type {exc.name!r}, which cannot "
            "reach Ray workers: a step type goes by reference (module:class, and its "
            "validator too), and one defined in __main__ or inside a function has none"
        ) from None
    prices = dict(spec.options.prices)
    return JobPayload(spec.job_id, dict(spec.program), spec.base_dir, travels, metric, prices)


def travel_warnings(config: RuntimeConfig | None, setup: WorkerSetup, live: Iterable[str]) -> str:
    """What a job on Ray should hear at start, in one sentence per kind (empty: nothing):
    providers limited in memory (each worker limits alone), providers the workers do not
    have (``live``: the driver's provider names), keys and options left behind."""
    parts: list[str] = []
    alone, keyed, made = [], [], set()
    for name, provider in (config.providers if config is not None else {}).items():
        if provider.api_key is not None:
            keyed.append(name)
        for entry, _, limits, _ in provider.variants(name):
            made.add(entry)
            limited = limits is not None and (limits.rpm or limits.rps or limits.tpm)
            if limited and limits is not None and limits.storage.startswith("memory"):
                alone.append(entry)
    if alone:
        parts.append(
            f"providers limited in memory ({', '.join(sorted(alone))}): each Ray worker "
            "limits its own calls alone, so the cluster may exceed their RPM/TPM and each "
            "worker has its own breaker; set providers.<name>.limits.storage: redis://... "
            "to share one limit and one breaker"
        )
    missing = sorted(set(live) - made)
    if missing:
        parts.append(
            f"providers not made from the runtime config are not on Ray workers "
            f"({', '.join(missing)})"
        )
    if keyed:
        parts.append(
            f"the api_key of {', '.join(sorted(keyed))} is not sent to Ray workers: they read "
            "it from their own environment (e.g. ANTHROPIC_API_KEY) or otpy config"
        )
    parts.extend(setup.dropped)
    return "; ".join(parts)
