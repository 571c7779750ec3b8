"""Optimization: the search space, the trials a strategy sees, and the strategies.

Everything here is pure and actor-free; the OptimizationRunner drives it. A job is
described by a :class:`JobSpec` (or a job file, :func:`load_job_file`) and reports a
:class:`JobStatus`; metrics are functions ``(example, result) -> float``, registered by
name (:func:`register_metric`, plugins of group ``otpy.metrics``). Importing the
package registers the built-in strategies: ``random_search``, ``grid``,
``bootstrap_fewshot`` and ``tpe`` (the last needs the extra ``otpy[optuna]``).
"""

from otpy.optimize._bootstrap import BootstrapFewShot
from otpy.optimize._job import (
    METRIC_PLUGIN_GROUP,
    METRICS,
    JobOptions,
    JobSpec,
    JobState,
    JobStatus,
    Metric,
    load_metric_plugins,
    register_metric,
    resolve_metric,
)
from otpy.optimize._jobfile import JobFile, load_job_file, parse_job_file
from otpy.optimize._space import Choice, Demos, FloatRange, IntRange, SearchSpace, Variable
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
from otpy.optimize._trials import ExampleResult, Trial

__all__ = [
    "METRICS",
    "METRIC_PLUGIN_GROUP",
    "STRATEGY_PLUGIN_GROUP",
    "BootstrapFewShot",
    "Choice",
    "Demos",
    "ExampleResult",
    "FloatRange",
    "GridSearch",
    "IntRange",
    "JobFile",
    "JobOptions",
    "JobSpec",
    "JobState",
    "JobStatus",
    "Metric",
    "RandomSearch",
    "SearchSpace",
    "Strategy",
    "TPEStrategy",
    "Trial",
    "Variable",
    "load_job_file",
    "load_metric_plugins",
    "load_strategy_plugins",
    "make_strategy",
    "parse_job_file",
    "register_metric",
    "register_strategy",
    "resolve_metric",
    "strategy_names",
]
