"""Optimization: the search space, the trials a strategy sees, and the strategies.

Everything here is actor-free; the OptimizationRunner drives it. A job is described by
a :class:`JobSpec` (its :class:`JobOptions` from a job file, :func:`load_job_file`, the
command line or ``rt.jobs.start``) and reports a :class:`JobStatus`; its bookkeeping is
a :class:`JobLedger`; it checkpoints to a :class:`JobStore` (``SQLiteJobStore``) under a
:class:`Lease`; its evaluations run on an :class:`Executor` (``"threads"``:
:class:`ThreadExecutor`). Metrics are functions ``(example, result) -> float``,
registered by name (:func:`register_metric`, plugins of group ``otpy.metrics``).
Importing the package registers the built-in strategies: ``random_search``, ``grid``,
``bootstrap_fewshot`` and ``tpe`` (the last needs the extra ``otpy[optuna]``).
"""

from otpy.optimize._bootstrap import BootstrapFewShot
from otpy.optimize._dspy_jobfile import DSPyJobFile
from otpy.optimize._dspy_ledger import (
    BEST_RESULT,
    PROGRAM_RESULT,
    DSPyLedger,
    Evaluation,
    LMCalls,
    beats,
    ranked_evaluations,
    score_of,
)
from otpy.optimize._dspy_spec import DSPyJob, DSPyTarget
from otpy.optimize._evaluate import evaluate_example
from otpy.optimize._executor import (
    EXECUTORS,
    Executor,
    ExecutorSession,
    JobWork,
    Outcome,
    Task,
    ThreadExecutor,
    make_executor,
    register_executor,
)
from otpy.optimize._executor_config import ExecutorConfig
from otpy.optimize._job import (
    ENDED,
    METRIC_PLUGIN_GROUP,
    METRICS,
    JobKind,
    JobOptions,
    JobSpec,
    JobState,
    JobStatus,
    Metric,
    load_metric_plugins,
    planned_evaluations,
    register_metric,
    resolve_metric,
)
from otpy.optimize._jobfile import JobFile, load_job_file, parse_job_file
from otpy.optimize._ledger import JobLedger
from otpy.optimize._owner import Owner
from otpy.optimize._space import Choice, Demos, FloatRange, IntRange, SearchSpace, Variable
from otpy.optimize._sqlite_store import SQLiteJobStore
from otpy.optimize._store import (
    Checkpoint,
    CheckpointBatch,
    Holder,
    JobStore,
    Lease,
    default_store_path,
)
from otpy.optimize._strategies import GridSearch, RandomSearch
from otpy.optimize._strategy import (
    STRATEGY_PLUGIN_GROUP,
    Strategy,
    load_strategy_plugins,
    make_strategy,
    register_strategy,
    strategy_names,
)
from otpy.optimize._tpe import TPEStrategy
from otpy.optimize._trials import ExampleResult, Trial, is_better, ranked

__all__ = [
    "BEST_RESULT",
    "ENDED",
    "EXECUTORS",
    "METRICS",
    "METRIC_PLUGIN_GROUP",
    "PROGRAM_RESULT",
    "STRATEGY_PLUGIN_GROUP",
    "BootstrapFewShot",
    "Checkpoint",
    "CheckpointBatch",
    "Choice",
    "DSPyJob",
    "DSPyJobFile",
    "DSPyLedger",
    "DSPyTarget",
    "Demos",
    "Evaluation",
    "ExampleResult",
    "Executor",
    "ExecutorConfig",
    "ExecutorSession",
    "FloatRange",
    "GridSearch",
    "Holder",
    "IntRange",
    "JobFile",
    "JobKind",
    "JobLedger",
    "JobOptions",
    "JobSpec",
    "JobState",
    "JobStatus",
    "JobStore",
    "JobWork",
    "LMCalls",
    "Lease",
    "Metric",
    "Outcome",
    "Owner",
    "RandomSearch",
    "SQLiteJobStore",
    "SearchSpace",
    "Strategy",
    "TPEStrategy",
    "Task",
    "ThreadExecutor",
    "Trial",
    "Variable",
    "beats",
    "default_store_path",
    "evaluate_example",
    "is_better",
    "load_job_file",
    "load_metric_plugins",
    "make_executor",
    "load_strategy_plugins",
    "make_strategy",
    "parse_job_file",
    "planned_evaluations",
    "ranked",
    "ranked_evaluations",
    "register_executor",
    "register_metric",
    "register_strategy",
    "resolve_metric",
    "score_of",
    "strategy_names",
]
