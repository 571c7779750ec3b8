"""Bootstrap few-shot: demos taken from the traces that pass the metric (as DSPy's
BootstrapFewShot with random search)."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from otpy.errors import ConfigurationError
from otpy.optimize._space import Demos, SearchSpace
from otpy.optimize._strategy import Strategy, register_strategy
from otpy.optimize._trials import Trial

__all__ = ["BootstrapFewShot"]


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


class BootstrapFewShot(Strategy):
    """Fills a Demos variable with demos that worked.

    Round 0 samples configurations from the space (demos drawn from the labeled pool, up
    to ``max_demos``; none if the pool is empty). Each later round takes as demo source the
    passing traces of the history — ``{"inputs", "output"}`` of every example scoring
    ``>= threshold``, in (trial, example) order, de-duplicated by inputs — then the pool
    entries whose inputs are not among them; each candidate gets a seeded random subset of
    ``min(max_demos, len(source))`` of them (in source order) and the other variables of
    the best completed trial (highest score, lowest index on ties; sampled if none).
    Configurations already in the history or the same round are not proposed again: a
    round may return fewer than ``n``, or ``[]`` when nothing new is left.

    Options: ``demos`` (the Demos variable; default the only one in the space),
    ``max_demos`` (default the variable's ``k``), ``threshold`` (default 1.0).
    """

    name = "bootstrap_fewshot"
    adaptive = True
    option_defaults = MappingProxyType({"demos": None, "max_demos": None, "threshold": 1.0})

    def __init__(
        self, space: SearchSpace | Mapping[str, Any], *, seed: int = 0, **options: Any
    ) -> None:
        super().__init__(space, seed=seed, **options)
        self.demos_variable = self._find_demos(self.options["demos"])
        variable = self.space.variables[self.demos_variable]
        assert isinstance(variable, Demos)
        self._pool = variable.pool
        if self.options["max_demos"] is None:
            self.max_demos = variable.k
        else:
            self.max_demos = self._int_option("max_demos")
            if self.max_demos > variable.k:
                raise self._option_error(
                    "max_demos", f"at most k {variable.k} of space variable {self.demos_variable!r}"
                )
        threshold = self.options["threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise self._option_error("threshold", "a number")
        self.threshold = float(threshold)

    def _find_demos(self, wanted: Any) -> str:
        names = [n for n, v in self.space.variables.items() if isinstance(v, Demos)]
        if wanted is None:
            if len(names) != 1:
                found = ", ".join(map(repr, names)) or "none"
                raise ConfigurationError(
                    f"strategy {self.label!r}: the space needs exactly one Demos variable, "
                    f"found {found}; name it with the option demos"
                )
            return names[0]
        if wanted not in names:
            raise self._option_error(
                "demos", f"a Demos variable of the space (those: {', '.join(names) or 'none'})"
            )
        return str(wanted)

    def demo_source(self, history: Sequence[Trial]) -> list[dict[str, Any]]:
        """The passing traces of ``history`` then the pool, de-duplicated by inputs."""
        source: list[dict[str, Any]] = []
        seen: set[str] = set()
        for trial in sorted(history, key=lambda t: t.index):
            for example in sorted(trial.examples, key=lambda e: e.example):
                if example.score is None or example.score < self.threshold:
                    continue
                key = _key(example.inputs)
                if key not in seen:
                    seen.add(key)
                    source.append({"inputs": example.inputs, "output": example.output})
        for demo in self._pool:
            key = _key(demo.get("inputs", demo))
            if key not in seen:
                seen.add(key)
                source.append(demo)
        return source

    def propose(
        self, history: Sequence[Trial], n: int, *, start: int, round: int
    ) -> list[dict[str, Any]]:
        self._check_call(n, start, round)
        rng = random.Random(f"{self.seed}:{round}")
        source = list(self._pool) if round == 0 else self.demo_source(history)
        best = None
        if round > 0:
            completed = [t for t in history if t.status == "completed" and t.score is not None]
            best = max(completed, key=lambda t: (t.score, -t.index), default=None)
        seen = {_key(trial.configuration) for trial in history}
        proposals: list[dict[str, Any]] = []
        for _ in range(20 * n + 20):
            if len(proposals) >= n:
                break
            configuration = self.space.sample(rng)
            if best is not None:
                for name in self.space.names:
                    if name != self.demos_variable and name in best.configuration:
                        configuration[name] = copy.deepcopy(best.configuration[name])
            size = min(self.max_demos, len(source))
            chosen = sorted(rng.sample(range(len(source)), size))
            configuration[self.demos_variable] = [copy.deepcopy(source[i]) for i in chosen]
            key = _key(configuration)
            if key not in seen:
                seen.add(key)
                proposals.append(configuration)
        return proposals


register_strategy(BootstrapFewShot.name, BootstrapFewShot)
