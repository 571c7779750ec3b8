"""The variables of a search space: Choice, FloatRange, IntRange and Demos, each checked,
sampled and listed without threads (``SearchSpace`` parses and holds them)."""

from __future__ import annotations

import copy
import json
import math
import random
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from otpy.errors import ConfigurationError

__all__ = ["Choice", "Demos", "FloatRange", "IntRange", "Variable"]


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
