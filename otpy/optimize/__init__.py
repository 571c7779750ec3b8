"""Optimization: the search space, the trials a strategy sees, and the strategies.

Everything here is pure and actor-free; the OptimizationRunner drives it. Importing the
package registers the built-in strategies: ``random_search``, ``grid``,
``bootstrap_fewshot`` and ``tpe`` (the last needs the extra ``otpy[optuna]``).
"""

from otpy.optimize._bootstrap import BootstrapFewShot
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
    "STRATEGY_PLUGIN_GROUP",
    "BootstrapFewShot",
    "Choice",
    "Demos",
    "ExampleResult",
    "FloatRange",
    "GridSearch",
    "IntRange",
    "RandomSearch",
    "SearchSpace",
    "Strategy",
    "TPEStrategy",
    "Trial",
    "Variable",
    "load_strategy_plugins",
    "make_strategy",
    "register_strategy",
    "strategy_names",
]
