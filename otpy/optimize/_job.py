"""What a job is (:class:`JobSpec`, persisted with the job) and what it reports
(:class:`JobStatus`), and the named metrics a persisted job can refer to."""

from __future__ import annotations

import difflib
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from otpy._plugins import EntryPoints, PluginReport, load_plugins
from otpy.errors import ConfigurationError
from otpy.optimize._dspy_spec import DSPyJob

__all__ = [
    "ENDED",
    "METRICS",
    "METRIC_PLUGIN_GROUP",
    "OPTION_NAMES",
    "JobKind",
    "JobOptions",
    "JobSpec",
    "JobState",
    "JobStatus",
    "Metric",
    "load_metric_plugins",
    "planned_evaluations",
    "register_metric",
    "resolve_metric",
]

JobState: TypeAlias = Literal[
    "running", "paused", "completed", "cancelled", "failed", "interrupted", "taken_over"
]
"""``interrupted``: its runtime stopped (or its process died) before it finished; resume
it with ``rt.jobs.resume(job_id)``. ``taken_over``: another runtime claimed the job (its
lease had expired) and runs it now; this handle's runner stopped without writing again
(``owner`` names the new holder). Neither is ever stored: the store says ``running`` or
``paused`` with a lease that is live, expired or released."""

JobKind: TypeAlias = Literal["pipeline", "dspy"]
"""What a job runs: a YAML pipeline's tuned variables (``rt.jobs.start``), or a DSPy
optimizer's compile (``rt.jobs.start_dspy``)."""

ENDED: tuple[JobState, ...] = ("completed", "cancelled", "failed", "interrupted", "taken_over")
"""The states after which nothing more happens to a job in this runtime."""

Metric: TypeAlias = Callable[[Mapping[str, Any], Any], float]
"""``metric(example, result) -> score``: ``example`` the trainset item (``inputs``,
``expected``), ``result`` the PipelineResult of the program on it."""


def _text(result: Any) -> str:
    return str(getattr(result, "text", "") or "").strip()


def _exact_match(example: Mapping[str, Any], result: Any) -> float:
    return float(_text(result).lower() == str(example.get("expected", "")).strip().lower())


def _contains(example: Mapping[str, Any], result: Any) -> float:
    expected = str(example.get("expected", "")).strip().lower()
    return float(bool(expected) and expected in _text(result).lower())


METRICS: dict[str, Metric] = {"exact_match": _exact_match, "contains": _contains}
"""Metrics by name: a job that names its metric can be resumed without passing it again
(and a job file, or ``otpy optimize``, can only name one)."""
METRIC_PLUGIN_GROUP = "otpy.metrics"
"""The entry-point group of metric plugins, loaded when a runtime starts (``plugins``)."""
_METRICS_LOCK = threading.Lock()


def register_metric(name: str, metric: Metric, *, replace: bool = False) -> None:
    """Register ``metric`` under ``name`` (ConfigurationError if the name is taken by
    another function, unless ``replace``)."""
    if not isinstance(name, str) or not name or not callable(metric):
        raise ConfigurationError(f"register_metric needs a name and a callable, got {name!r}")
    with _METRICS_LOCK:
        known = METRICS.get(name)
        if known is not None and known is not metric and not replace:
            raise ConfigurationError(f"metric {name!r} is already registered")
        METRICS[name] = metric


def load_metric_plugins(entry_points: EntryPoints | None = None) -> list[PluginReport]:
    """Register every ``otpy.metrics`` plugin (a function ``(example, result) -> float``,
    under the entry point's name); one report per entry point. A plugin that fails to
    import, is not callable or whose name is taken is logged and skipped."""

    def accept(name: str, obj: Any) -> None:
        if isinstance(obj, type) or not callable(obj):
            raise ConfigurationError(
                f"metric plugin {name!r}: {obj!r} is not a function (example, result) -> float"
            )
        register_metric(name, obj)

    return load_plugins(METRIC_PLUGIN_GROUP, accept, entry_points=entry_points)


def resolve_metric(
    metric: str | Metric | None, *, job: str | None = None
) -> tuple[str | None, Metric]:
    """``(name or None, the callable)`` for a metric given by name or as a callable;
    ConfigurationError (naming ``job`` if given, and the closest registered name) else."""
    if callable(metric):
        for name, known in METRICS.items():
            if known is metric:
                return name, metric
        return None, metric
    prefix = f"job {job!r}: " if job is not None else ""
    if isinstance(metric, str):
        found = METRICS.get(metric)
        if found is None:
            close = difflib.get_close_matches(metric, list(METRICS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(
                f"{prefix}unknown metric {metric!r}{hint} (registered: {', '.join(METRICS)}; "
                f"more come from plugins of the entry-point group {METRIC_PLUGIN_GROUP})"
            )
        return metric, found
    raise ConfigurationError(
        f"{prefix}needs a metric: a registered name ({', '.join(METRICS)}) or a "
        "function (example, result) -> float"
    )


class JobOptions(BaseModel):
    """How a job searches and when it stops: the strategy (with its options) and seed, the
    concurrency, ``batch_size`` candidates proposed at a time (default: the concurrency),
    ``minibatch`` examples per candidate, ``max_errors`` failed examples before a candidate
    is aborted, the budgets (``max_evaluations``, ``max_tokens``, ``max_seconds`` of
    running time), the early stops (``target_score``, ``patience`` rounds without
    improvement), ``prices`` per model (per million input and output tokens), the
    ``executor`` evaluations run on (``"threads"``: the runtime's shared pool; ``"ray"``:
    a Ray cluster; None: the runtime's default, ``jobs.executor`` in its config, itself
    ``"threads"`` unless set; a started job stores the one it runs on), and the
    runner's restart budget: more than ``max_restarts`` crashes within
    ``restart_window`` seconds end the job ``failed``. The one type a job file, the
    command line, ``rt.jobs.start`` and the runner share."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str = "random_search"
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    concurrency: int = Field(default=4, ge=1, le=1024)
    batch_size: int | None = Field(default=None, ge=1)
    minibatch: int | None = Field(default=None, ge=1)
    max_errors: int | None = Field(default=None, ge=0)
    max_evaluations: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_seconds: float | None = Field(default=None, gt=0)
    target_score: float | None = None
    patience: int | None = Field(default=None, ge=1)
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    executor: str | None = Field(default=None, min_length=1)
    max_restarts: int = Field(default=3, ge=0)
    restart_window: float = Field(default=60.0, gt=0)

    @field_validator("target_score")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value!r}")
        return value

    @property
    def round_size(self) -> int:
        """Candidates proposed at a time: ``batch_size``, else the concurrency."""
        return self.batch_size or self.concurrency


OPTION_NAMES: frozenset[str] = frozenset(JobOptions.model_fields)


class JobSpec(BaseModel):
    """Everything that defines a job, stored with it so that another process can resume
    it: the program (a pipeline config, and the folder its sub-pipeline paths are
    relative to), the space, the trainset, the metric's name (None when it was a
    function: resuming then needs it again) and its :class:`JobOptions`. A DSPy job
    (``kind="dspy"``) has ``dspy`` (:class:`DSPyJob`), ``program`` holds only its
    ``name`` and ``space`` is empty. A spec stored by an earlier otpy (the options beside
    the other fields) is read too."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,128}$")
    kind: JobKind = "pipeline"
    dspy: DSPyJob | None = None
    program: dict[str, Any]
    base_dir: str | None = None
    space: dict[str, Any]
    trainset: list[dict[str, Any]] = Field(min_length=1)
    metric: str | None = None
    options: JobOptions = Field(default_factory=JobOptions)

    @model_validator(mode="before")
    @classmethod
    def _flat_options(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and OPTION_NAMES & set(data):
            flat = {key: value for key, value in data.items() if key in OPTION_NAMES}
            rest = {key: value for key, value in data.items() if key not in OPTION_NAMES}
            return {**rest, "options": {**flat, **dict(rest.get("options") or {})}}
        return data

    @field_validator("trainset")
    @classmethod
    def _examples(cls, trainset: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for index, example in enumerate(trainset):
            if not isinstance(example, Mapping) or not isinstance(example.get("inputs"), Mapping):
                raise ValueError(
                    f"trainset[{index}] must be a mapping with 'inputs' (a mapping) and "
                    f"optionally 'expected', got {example!r}"
                )
        return trainset

    @model_validator(mode="after")
    def _kind(self) -> JobSpec:
        if (self.kind == "dspy") != (self.dspy is not None):
            raise ValueError("a job of kind 'dspy' has a dspy part, and only it")
        return self


class JobStatus(BaseModel):
    """A job now: its ``state``, evaluations done of the total (None when the budget does
    not say), examples in flight, the best score, configuration and candidate index so
    far, failed examples (``errors``) and aborted candidates, tokens and cost spent,
    ``elapsed`` seconds of running (across restarts and processes; pauses not counted),
    the ``eta`` in seconds (None when unknown), ``stop_reason`` (why it stopped or is
    stopping: ``max_evaluations``, ``exhausted``, ``max_tokens``, ``max_seconds``,
    ``target_score``, ``patience``, ``cancelled``, ``restarts``, ``taken_over``,
    ``stopped``; a DSPy job's ``max_calls``, ``max_cost``, ``error``, ...), ``error``
    (what went wrong: a failed job's cause, a lost lease), ``restarts`` (crashed runners
    restarted so far in this runtime), and ``owner`` (``runtime NAME, pid N on HOST``)
    for a job that runs in another runtime: read from the store with a live lease, or
    ``taken_over``.

    A DSPy job (``kind="dspy"``) also reports its LLM calls: ``lm_calls`` made live (and
    paid for) over the job's life, ``replayed_calls`` answered from its call journal by
    this run, and ``phase`` (what the compile is doing: the optimizer, an evaluation);
    ``in_flight`` counts LLM calls, ``evaluations_done`` the evaluations DSPy ran (its
    candidates), ``best_score`` the best mean metric among the evaluations on the most
    examples (full evaluations, not minibatches), ``strategy`` names the optimizer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    name: str
    state: JobState
    strategy: str
    kind: JobKind = "pipeline"
    evaluations_done: int = 0
    evaluations_total: int | None = None
    in_flight: int = 0
    best_score: float | None = None
    best_configuration: dict[str, Any] | None = None
    best_index: int | None = None
    errors: int = 0
    aborted: int = 0
    tokens: int = 0
    cost: float = 0.0
    elapsed: float = 0.0
    eta: float | None = None
    error: str | None = None
    owner: str | None = None
    stop_reason: str | None = None
    restarts: int = 0
    lm_calls: int = 0
    replayed_calls: int = 0
    phase: str | None = None

    @property
    def finished(self) -> bool:
        """Completed, cancelled or failed: the job is over, wherever it ran."""
        return self.state in ("completed", "cancelled", "failed")

    @property
    def ended(self) -> bool:
        """Nothing more happens to it in this runtime: finished, interrupted (resumable)
        or taken over by another runtime. ``JobHandle.wait`` returns then."""
        return self.state in ENDED


EXHAUSTIVE = ("grid", "random_search")
"""Strategies that never propose a candidate twice: a finite space bounds their jobs."""


def planned_evaluations(options: JobOptions, space_size: int | None) -> int | None:
    """How many candidates a job with ``options`` evaluates, when its budget or its space
    says: ``max_evaluations``, and for a strategy that never repeats a candidate the size
    of a finite space (``space_size``), whichever is smaller; None when neither says."""
    total = options.max_evaluations
    if space_size is not None and options.strategy in EXHAUSTIVE:
        total = space_size if total is None else min(total, space_size)
    return total
