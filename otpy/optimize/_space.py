"""The variable space of an optimization job: what each tuned variable may be.

A variable is a :class:`Choice`, a :class:`FloatRange`, an :class:`IntRange` or a
:class:`Demos` pool; a :class:`SearchSpace` names them. Everything here is immutable, pure
and JSON round-trippable (``to_dict`` / ``SearchSpace.from_dict``, used in checkpoints).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import random
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from otpy.errors import ConfigurationError

__all__ = ["Choice", "Demos", "FloatRange", "IntRange", "SearchSpace", "Variable"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RANGE_KEYS = ("low", "high", "step", "log", "type")


class _Invalid(ConfigurationError):
    """A variable's field is wrong; ``detail`` says how (the space adds the variable name)."""

    def __init__(self, detail: str, kind: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if kind else detail)
        self.detail = detail


def _json(value: Any, where: str) -> Any:
    """A JSON copy of ``value`` (tuples become lists); ``_Invalid`` naming ``where`` if not."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Invalid(f"{where} {value!r} is not finite")
        return value
    if isinstance(value, list | tuple):
        return [_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Invalid(f"{where} has a key {key!r} that is not a string")
            out[key] = _json(item, f"{where}[{key!r}]")
        return out
    raise _Invalid(f"{where} {value!r} is not JSON (str, int, float, bool, None, lists, dicts)")


def _key(value: Any) -> str:
    """A canonical text of a JSON value (so 1, 1.0 and True stay distinct)."""
    return json.dumps(value, sort_keys=True, default=repr)


def _number(kind: str, name: str, value: Any, *, integer: bool = False) -> Any:
    wanted = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, wanted):
        raise _Invalid(f"{name} {value!r} is not {'an int' if integer else 'a number'}", kind)
    if not integer and not math.isfinite(value):
        raise _Invalid(f"{name} {value!r} is not finite", kind)
    return value if integer else float(value)


def _decimals(x: float) -> int:
    exponent = Decimal(repr(x)).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


class Variable(ABC):
    """What one tuned variable may be: sample it, enumerate it, test a value."""

    @abstractmethod
    def sample(self, rng: random.Random) -> Any:
        """A value drawn with ``rng`` (a fresh copy: mutate it freely)."""

    @abstractmethod
    def grid(self) -> tuple[Any, ...] | None:
        """Every value in order, or ``None`` when the variable is not enumerable."""

    @abstractmethod
    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this variable may take."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON form that ``SearchSpace.parse`` reads back."""

    @abstractmethod
    def describe(self) -> str:
        """A short text for messages: ``float in [0.0, 1.0]``."""


@dataclass(frozen=True)
class Choice(Variable):
    """One of ``values`` (JSON values, at least one, no repeats)."""

    values: tuple[Any, ...]
    _keys: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.values, list | tuple):
            raise _Invalid(f"choices must be a list, got {self.values!r}", "Choice")
        if not self.values:
            raise _Invalid("choices is empty: give at least one value", "Choice")
        values = tuple(_json(v, f"choices[{i}]") for i, v in enumerate(self.values))
        seen: dict[str, int] = {}
        for i, value in enumerate(values):
            first = seen.setdefault(_key(value), i)
            if first != i:
                raise _Invalid(f"choices[{i}] {value!r} repeats choices[{first}]", "Choice")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "_keys", frozenset(seen))

    def sample(self, rng: random.Random) -> Any:
        return copy.deepcopy(rng.choice(self.values))

    def grid(self) -> tuple[Any, ...]:
        return copy.deepcopy(self.values)

    def contains(self, value: Any) -> bool:
        try:
            return _key(_json(value, "value")) in self._keys
        except _Invalid:
            return False

    def index(self, value: Any) -> int:
        """The position of ``value`` in ``values`` (ValueError if absent)."""
        wanted = _key(_json(value, "value"))
        for i, candidate in enumerate(self.values):
            if _key(candidate) == wanted:
                return i
        raise ValueError(f"{value!r} is not one of the choices")

    def to_dict(self) -> dict[str, Any]:
        return {"choices": copy.deepcopy(list(self.values))}

    def describe(self) -> str:
        text = repr(list(self.values))
        return f"one of {text if len(text) <= 80 else text[:76] + ' ...]'}"


@dataclass(frozen=True)
class FloatRange(Variable):
    """A float in ``[low, high]``: uniform, log-uniform (``log``, low > 0) or on a grid of
    ``step`` (``low, low + step, ... <= high``; the only enumerable form)."""

    low: float
    high: float
    step: float | None = None
    log: bool = False

    def __post_init__(self) -> None:
        low = _number("FloatRange", "low", self.low)
        high = _number("FloatRange", "high", self.high)
        if low > high:
            raise _Invalid(f"low {low} is above high {high}", "FloatRange")
        if self.step is not None:
            step = _number("FloatRange", "step", self.step)
            if step <= 0:
                raise _Invalid(f"step {step} is not positive", "FloatRange")
            object.__setattr__(self, "step", step)
        if not isinstance(self.log, bool):
            raise _Invalid(f"log {self.log!r} is not a bool", "FloatRange")
        if self.log and low <= 0:
            raise _Invalid(f"log needs low > 0, got low {low}", "FloatRange")
        if self.log and self.step is not None:
            raise _Invalid("step and log cannot be combined", "FloatRange")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def _count(self, step: float) -> int:
        return math.floor((self.high - self.low) / step + 1e-9) + 1

    def _point(self, k: int) -> float:
        """The k-th grid value, rounded to the decimals of low and step (0.3, not 0.30...04)."""
        assert self.step is not None
        digits = max(_decimals(self.low), _decimals(self.step))
        return min(max(round(self.low + k * self.step, digits), self.low), self.high)

    def sample(self, rng: random.Random) -> float:
        if self.step is not None:
            return self._point(rng.randrange(self._count(self.step)))
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
            return min(max(value, self.low), self.high)
        return rng.uniform(self.low, self.high)

    def grid(self) -> tuple[float, ...] | None:
        if self.step is None:
            return None
        return tuple(self._point(k) for k in range(self._count(self.step)))

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not math.isfinite(value) or not self.low <= value <= self.high:
            return False
        if self.step is None:
            return True
        k = (value - self.low) / self.step
        return abs(k - round(k)) <= 1e-9 * max(1.0, abs(k))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "float", "low": self.low, "high": self.high}
        if self.step is not None:
            out["step"] = self.step
        return {**out, "log": self.log}

    def describe(self) -> str:
        step = f" step {self.step}" if self.step is not None else ""
        return f"float in [{self.low}, {self.high}]{step}{' (log)' if self.log else ''}"


@dataclass(frozen=True)
class IntRange(Variable):
    """An int in ``[low, high]`` on a grid of ``step``; ``log`` (low > 0, step 1) draws
    log-uniformly."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self) -> None:
        low = _number("IntRange", "low", self.low, integer=True)
        high = _number("IntRange", "high", self.high, integer=True)
        step = _number("IntRange", "step", self.step, integer=True)
        if low > high:
            raise _Invalid(f"low {low} is above high {high}", "IntRange")
        if step <= 0:
            raise _Invalid(f"step {step} is not positive", "IntRange")
        if not isinstance(self.log, bool):
            raise _Invalid(f"log {self.log!r} is not a bool", "IntRange")
        if self.log and low <= 0:
            raise _Invalid(f"log needs low > 0, got low {low}", "IntRange")
        if self.log and step != 1:
            raise _Invalid(f"log needs step 1, got step {step}", "IntRange")

    def sample(self, rng: random.Random) -> int:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low - 0.5), math.log(self.high + 0.5)))
            return min(max(round(value), self.low), self.high)
        return self.low + self.step * rng.randrange((self.high - self.low) // self.step + 1)

    def grid(self) -> tuple[int, ...]:
        return tuple(range(self.low, self.high + 1, self.step))

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        return self.low <= value <= self.high and (value - self.low) % self.step == 0

    def to_dict(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high, "step": self.step,
                "log": self.log}  # fmt: skip

    def describe(self) -> str:
        step = f" step {self.step}" if self.step != 1 else ""
        return f"int in [{self.low}, {self.high}]{step}{' (log)' if self.log else ''}"


@dataclass(frozen=True)
class Demos(Variable):
    """Few-shot demos: a value is a list of at most ``k`` JSON mappings (say ``{"inputs":
    {...}, "output": ...}``); ``sample`` draws ``min(k, len(pool))`` of ``pool`` without
    replacement, in pool order."""

    pool: tuple[dict[str, Any], ...] = ()
    k: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.pool, list | tuple):
            raise _Invalid(f"demos must be a list of mappings, got {self.pool!r}", "Demos")
        for i, demo in enumerate(self.pool):
            if not isinstance(demo, Mapping):
                raise _Invalid(f"demos[{i}] {demo!r} is not a mapping", "Demos")
        pool = tuple(_json(demo, f"demos[{i}]") for i, demo in enumerate(self.pool))
        k = _number("Demos", "k", self.k, integer=True)
        if k < 0:
            raise _Invalid(f"k {k} is negative", "Demos")
        object.__setattr__(self, "pool", pool)

    def sample(self, rng: random.Random) -> list[dict[str, Any]]:
        chosen = sorted(rng.sample(range(len(self.pool)), min(self.k, len(self.pool))))
        return [copy.deepcopy(self.pool[i]) for i in chosen]

    def grid(self) -> tuple[Any, ...] | None:
        return ([],) if not self.pool or self.k == 0 else None

    def contains(self, value: Any) -> bool:
        if not isinstance(value, list | tuple) or len(value) > self.k:
            return False
        try:
            return all(isinstance(d, Mapping) and _json(d, "demo") is not None for d in value)
        except _Invalid:
            return False

    def to_dict(self) -> dict[str, Any]:
        return {"demos": copy.deepcopy(list(self.pool)), "k": self.k}

    def describe(self) -> str:
        return f"up to {self.k} demos from a pool of {len(self.pool)}"


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
