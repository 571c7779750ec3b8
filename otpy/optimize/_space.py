"""The variable space of an optimization job: what each tuned variable may be.

A variable is a :class:`Choice`, a :class:`FloatRange`, an :class:`IntRange` or a
:class:`Demos` pool; a :class:`SearchSpace` names them. Everything here is immutable, pure
and JSON round-trippable (``to_dict`` / ``SearchSpace.from_dict``, used in checkpoints).
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from otpy.errors import ConfigurationError
from otpy.optimize._variables import (
    _NAME,
    _RANGE_KEYS,
    Choice,
    Demos,
    FloatRange,
    IntRange,
    Variable,
    _Invalid,
)

__all__ = ["Choice", "Demos", "FloatRange", "IntRange", "SearchSpace", "Variable"]


def _parse_variable(spec: Any) -> Variable:
    """A Variable from one spec (``_Invalid`` with the detail when it is wrong)."""
    if isinstance(spec, Variable):
        return spec
    if isinstance(spec, list | tuple):
        return Choice(tuple(spec))
    if not isinstance(spec, Mapping):
        raise _Invalid(
            f"{spec!r} is not a variable: give a list of choices, a mapping with 'choices', "
            "'low' and 'high', or 'demos', or a Variable"
        )
    if "choices" in spec:
        allowed: tuple[str, ...] = ("choices",)
    elif "demos" in spec:
        allowed = ("demos", "k")
    elif "low" in spec or "high" in spec:
        allowed = _RANGE_KEYS
    else:
        raise _Invalid(
            f"unknown key(s) {', '.join(map(repr, spec))}; allowed: choices | demos, k | "
            + ", ".join(_RANGE_KEYS)
        )
    unknown = [key for key in spec if key not in allowed]
    if unknown:
        raise _Invalid(f"unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")
    if "choices" in spec:
        return Choice(spec["choices"])
    if "demos" in spec:
        return Demos(spec["demos"], spec.get("k", 3))
    for key in ("low", "high"):
        if key not in spec:
            raise _Invalid(f"field {key!r} is missing")
    low, high, step = spec["low"], spec["high"], spec.get("step")
    kind = spec.get("type")
    if kind not in (None, "float", "int"):
        raise _Invalid(f"type {kind!r} is not 'float' or 'int'")
    integral = all(
        isinstance(v, int) and not isinstance(v, bool) for v in (low, high, step) if v is not None
    )
    if kind == "int" and not integral:
        raise _Invalid(f"type 'int' needs int low, high and step, got {low!r}, {high!r}, {step!r}")
    log = spec.get("log", False)
    if integral and kind != "float":
        return IntRange(low, high, 1 if step is None else step, log)
    return FloatRange(low, high, step, log)


@dataclass(frozen=True)
class SearchSpace:
    """Named variables (names like pipeline vars: ``[A-Za-z_][A-Za-z0-9_]*``), in order."""

    variables: Mapping[str, Variable]

    def __post_init__(self) -> None:
        if not isinstance(self.variables, Mapping):
            raise ConfigurationError(
                f"a search space maps names to variables, got {self.variables!r}"
            )
        if not self.variables:
            raise ConfigurationError("the search space is empty: give at least one variable")
        for name, variable in self.variables.items():
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise ConfigurationError(
                    f"space variable {name!r}: the name must match [A-Za-z_][A-Za-z0-9_]*"
                )
            if not isinstance(variable, Variable):
                raise ConfigurationError(
                    f"space variable {name!r}: {variable!r} is not a Variable (Choice, "
                    "FloatRange, IntRange, Demos); SearchSpace.parse reads specs"
                )
        object.__setattr__(self, "variables", MappingProxyType(dict(self.variables)))

    @classmethod
    def parse(cls, spec: SearchSpace | Mapping[str, Any]) -> SearchSpace:
        """A space from ``{name: spec}``; each spec a list of choices, ``{"choices": [...]}``,
        ``{"low", "high", "step"?, "log"?, "type"?}``, ``{"demos": [...], "k"?}`` or a
        Variable. A SearchSpace passes through. ConfigurationError names what is wrong."""
        if isinstance(spec, SearchSpace):
            return spec
        if not isinstance(spec, Mapping):
            raise ConfigurationError(f"a search space is a mapping name -> variable, got {spec!r}")
        variables = {}
        for name, item in spec.items():
            try:
                variables[name] = _parse_variable(item)
            except _Invalid as exc:
                raise ConfigurationError(f"space variable {name!r}: {exc.detail}") from None
        return cls(variables)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        """The space ``to_dict`` wrote (after a JSON round trip)."""
        return cls.parse(data)

    def to_dict(self) -> dict[str, Any]:
        """A JSON form of the space (each variable's ``to_dict``)."""
        return {name: variable.to_dict() for name, variable in self.variables.items()}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.variables)

    @property
    def size(self) -> int | None:
        """How many configurations the grid has; ``None`` if a variable is not enumerable."""
        grids = [variable.grid() for variable in self.variables.values()]
        return None if any(g is None for g in grids) else math.prod(len(g or ()) for g in grids)

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """One configuration, each variable drawn with ``rng`` in variable order."""
        return {name: variable.sample(rng) for name, variable in self.variables.items()}

    def axes(self) -> list[tuple[Any, ...]]:
        """Each variable's grid, in order; ConfigurationError naming those that have none."""
        grids = [variable.grid() for variable in self.variables.values()]
        missing = [
            f"space variable {name!r} ({variable.describe()})"
            for (name, variable), g in zip(self.variables.items(), grids, strict=True)
            if g is None
        ]
        if missing:
            raise ConfigurationError(
                f"the search space has no grid: {'; '.join(missing)} is not enumerable "
                "(give a float range a step; a demos pool has no grid)"
            )
        return [g for g in grids if g is not None]

    def grid(self) -> Iterator[dict[str, Any]]:
        """Every configuration, the first variable varying slowest (checked at the call)."""
        axes, names = self.axes(), self.names
        return (
            {name: copy.deepcopy(value) for name, value in zip(names, combo, strict=True)}
            for combo in itertools.product(*axes)
        )

    def check(self, configuration: Mapping[str, Any]) -> None:
        """ConfigurationError naming the variable that is missing, unknown or out of range."""
        if not isinstance(configuration, Mapping):
            raise ConfigurationError(f"a configuration is a mapping, got {configuration!r}")
        for name in configuration:
            if name not in self.variables:
                raise ConfigurationError(
                    f"space variable {name!r}: unknown (the space has {', '.join(self.names)})"
                )
        for name, variable in self.variables.items():
            if name not in configuration:
                raise ConfigurationError(f"space variable {name!r}: missing from the configuration")
            if not variable.contains(configuration[name]):
                raise ConfigurationError(
                    f"space variable {name!r}: value {configuration[name]!r} is not in "
                    f"{variable.describe()}"
                )

    def contains(self, configuration: Mapping[str, Any]) -> bool:
        """Whether ``check`` would pass."""
        try:
            self.check(configuration)
        except ConfigurationError:
            return False
        return True
