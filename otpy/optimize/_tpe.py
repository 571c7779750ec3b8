"""TPE through Optuna's ask/tell (the optional extra ``otpy[optuna]``)."""

from __future__ import annotations

import copy
import hashlib
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from otpy.errors import ConfigurationError
from otpy.optimize._space import Choice, Demos, FloatRange, IntRange, SearchSpace, Variable
from otpy.optimize._strategy import Strategy, register_strategy
from otpy.optimize._trials import Trial

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = ["TPEStrategy"]


@dataclass(frozen=True)
class _Param:
    """One variable as an Optuna parameter: its distribution and the value mappings."""

    distribution: BaseDistribution
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


def _param(variable: Variable) -> _Param:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if isinstance(variable, Choice):
        values = variable.values
        scalar = all(v is None or isinstance(v, str | int | float) for v in values)
        if scalar and len(set(values)) == len(values):  # 1, 1.0 and True would collide
            return _Param(CategoricalDistribution(values), lambda v: v, copy.deepcopy)
        return _Param(
            CategoricalDistribution(tuple(range(len(values)))),
            variable.index,
            lambda i: copy.deepcopy(values[i]),
        )
    if isinstance(variable, FloatRange):
        grid = variable.grid()
        step, low = variable.step, variable.low
        high = grid[-1] if grid else variable.high  # Optuna warns when high is off the grid
        floats = FloatDistribution(low, high, log=variable.log, step=step)
        if step is None:
            return _Param(floats, float, lambda v: min(max(float(v), low), high))
        return _Param(floats, float, lambda v: variable._point(round((v - low) / step)))
    if isinstance(variable, IntRange):
        top = variable.grid()[-1]
        ints = IntDistribution(variable.low, top, log=variable.log, step=variable.step)
        return _Param(ints, int, int)
    raise TypeError(f"no Optuna distribution for {variable!r}")


def _sampler_seed(seed: int, round_: int) -> int:
    digest = hashlib.sha256(f"tpe:{seed}:{round_}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


class TPEStrategy(Strategy):
    """Tree-structured Parzen Estimator (Optuna's ``TPESampler``), maximizing the score.

    Each call builds a fresh in-memory study seeded from (seed, round), adds the completed
    trials of the history in index order (aborted ones, and those outside the space, are
    skipped), and asks it ``n`` times. Option ``startup`` (default 10): how many trials
    are drawn at random before TPE models them. Needs optuna; Demos variables are refused
    (use ``bootstrap_fewshot``).
    """

    name = "tpe"
    adaptive = True
    option_defaults = MappingProxyType({"startup": 10})

    def __init__(
        self, space: SearchSpace | Mapping[str, Any], *, seed: int = 0, **options: Any
    ) -> None:
        super().__init__(space, seed=seed, **options)
        self.startup = self._int_option("startup")
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                "strategy 'tpe' needs optuna: pip install 'otpy[optuna]'"
            ) from None
        for name, variable in self.space.variables.items():
            if isinstance(variable, Demos):
                raise ConfigurationError(
                    f"strategy 'tpe': space variable {name!r} is a Demos variable, which TPE "
                    "cannot tune; use bootstrap_fewshot"
                )
        self._params = {name: _param(v) for name, v in self.space.variables.items()}

    def propose(
        self, history: Sequence[Trial], n: int, *, start: int, round: int
    ) -> list[dict[str, Any]]:
        self._check_call(n, start, round)
        import optuna

        optuna.logging.set_verbosity(logging.WARNING)
        distributions = {name: p.distribution for name, p in self._params.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=_sampler_seed(self.seed, round), n_startup_trials=self.startup
            )
            study = optuna.create_study(direction="maximize", sampler=sampler)
            for trial in sorted(history, key=lambda t: t.index):
                if trial.status != "completed" or trial.score is None:
                    continue
                if not self.space.contains(trial.configuration):
                    continue
                params = {
                    name: p.encode(trial.configuration[name]) for name, p in self._params.items()
                }
                study.add_trial(
                    optuna.trial.create_trial(
                        params=params, distributions=distributions, value=trial.score
                    )
                )
            asked = [study.ask(distributions) for _ in range(n)]
        return [
            {name: p.decode(trial.params[name]) for name, p in self._params.items()}
            for trial in asked
        ]


register_strategy(TPEStrategy.name, TPEStrategy)
