"""The strategy behaviour (what proposes candidates) and the registry of strategies by name.

Plugins declare strategies under the ``otpy.strategies`` entry points::

    [project.entry-points."otpy.strategies"]
    evolution = "my_pkg.search:Evolution"     # a Strategy subclass, registered as "evolution"
    my_pkg = "my_pkg.search:register"          # a callable (no arguments) that registers
"""

from __future__ import annotations

import difflib
import inspect
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

from otpy._plugins import EntryPoints, PluginReport, load_plugins
from otpy.errors import ConfigurationError
from otpy.optimize._space import SearchSpace
from otpy.optimize._trials import Trial

__all__ = [
    "STRATEGY_PLUGIN_GROUP",
    "Strategy",
    "load_strategy_plugins",
    "make_strategy",
    "register_strategy",
    "strategy_names",
]

STRATEGY_PLUGIN_GROUP = "otpy.strategies"


class Strategy(ABC):
    """Proposes configurations to evaluate.

    **Determinism contract** (the runner relies on it to resume): ``propose`` is a pure
    function of (space, seed, options, history as given, n, start, round) — no state
    carried between calls, no global random, no clock. A new object given the same
    arguments returns the same list. Methods run in the runner's thread.
    """

    name: ClassVar[str] = ""
    adaptive: ClassVar[bool] = False
    """True when proposals depend on the history: the runner then proposes round r only
    after every candidate of the rounds before it is finished, and passes exactly those
    trials (sorted by index)."""
    option_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    """The options the strategy takes, with their defaults."""

    def __init__(
        self, space: SearchSpace | Mapping[str, Any], *, seed: int = 0, **options: Any
    ) -> None:
        unknown = [key for key in options if key not in self.option_defaults]
        if unknown:
            allowed = ", ".join(sorted(self.option_defaults)) or "none"
            raise ConfigurationError(
                f"strategy {self.label!r}: unknown option {unknown[0]!r}; allowed: {allowed}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigurationError(f"strategy {self.label!r}: seed {seed!r} is not an int")
        self.space = SearchSpace.parse(space)
        self.seed = seed
        self.options: Mapping[str, Any] = MappingProxyType({**self.option_defaults, **options})

    @property
    def label(self) -> str:
        """The registered name, or the class name."""
        return self.name or type(self).__name__

    @abstractmethod
    def propose(
        self, history: Sequence[Trial], n: int, *, start: int, round: int
    ) -> list[dict[str, Any]]:
        """Up to ``n`` new configurations (fewer or ``[]`` when the space is exhausted).

        ``start`` is the index the first one gets (how many were proposed before);
        ``round`` counts propose calls from 0.
        """

    def observe(self, trial: Trial) -> None:
        """Called with each finished trial; a hook, by default nothing (keep no state that
        ``propose`` depends on: see the determinism contract)."""
        return None

    def _check_call(self, n: int, start: int, round: int) -> None:
        for name, value in (("n", n), ("start", start), ("round", round)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(
                    f"strategy {self.label!r}: propose {name} {value!r} is not an int >= 0"
                )

    def _option_error(self, option: str, expected: str) -> ConfigurationError:
        value = self.options[option]
        return ConfigurationError(
            f"strategy {self.label!r}: option {option} {value!r} is not {expected}"
        )

    def _bool_option(self, option: str) -> bool:
        value = self.options[option]
        if not isinstance(value, bool):
            raise self._option_error(option, "a bool")
        return value

    def _int_option(self, option: str, minimum: int = 0) -> int:
        value = self.options[option]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self._option_error(option, f"an int >= {minimum}")
        return value


_LOCK = threading.Lock()
_REGISTRY: dict[str, type[Strategy]] = {}


def register_strategy(name: str, cls: type[Strategy], *, replace: bool = False) -> None:
    """Register ``cls`` under ``name``. A name taken by another class is a
    ConfigurationError unless ``replace``; registering the same class again is a no-op."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a strategy name is a non-empty string, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigurationError(
            f"strategy {name!r}: {cls!r} is not a subclass of otpy.optimize.Strategy"
        )
    if inspect.isabstract(cls):
        raise ConfigurationError(f"strategy {name!r}: {cls.__qualname__} is abstract")
    with _LOCK:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls and not replace:
            raise ConfigurationError(
                f"strategy {name!r} is already registered ({existing.__qualname__}); "
                "pass replace=True to replace it"
            )
        _REGISTRY[name] = cls


def strategy_names() -> list[str]:
    """The registered strategy names, sorted."""
    with _LOCK:
        return sorted(_REGISTRY)


def make_strategy(
    spec: str | type[Strategy] | Strategy,
    space: SearchSpace | Mapping[str, Any],
    *,
    seed: int = 0,
    **options: Any,
) -> Strategy:
    """A strategy from a registered name or a Strategy subclass (built with ``space``,
    ``seed`` and ``options``); an instance passes through (it must be for ``space``)."""
    if isinstance(spec, Strategy):
        if options:
            raise ConfigurationError(
                f"strategy {spec.label!r}: options {sorted(options)} cannot be given with a "
                "Strategy instance; give its name or class instead"
            )
        if spec.space != SearchSpace.parse(space):
            raise ConfigurationError(
                f"strategy {spec.label!r}: the instance was built for another search space"
            )
        return spec
    if isinstance(spec, type) and issubclass(spec, Strategy):
        return spec(space, seed=seed, **options)
    if not isinstance(spec, str):
        raise ConfigurationError(
            f"a strategy is a registered name, a Strategy subclass or instance, got {spec!r}"
        )
    with _LOCK:
        cls = _REGISTRY.get(spec)
        known = sorted(_REGISTRY)
    if cls is None:
        close = difflib.get_close_matches(spec, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigurationError(
            f"unknown strategy {spec!r}{hint} (registered: {', '.join(known) or 'none'})"
        )
    return cls(space, seed=seed, **options)


def load_strategy_plugins(entry_points: EntryPoints | None = None) -> list[PluginReport]:
    """Register every ``otpy.strategies`` plugin; one report per entry point.

    A plugin's object is a Strategy subclass, registered under the entry point's name (a
    name taken by another class is an error, not replaced), or a callable called with no
    arguments that registers what it likes. A plugin that fails to import, is of another
    kind or fails to register is logged (logger ``otpy.plugins``) and skipped.
    """

    def accept(name: str, obj: Any) -> None:
        if isinstance(obj, type):
            if not issubclass(obj, Strategy):
                raise ConfigurationError(
                    f"strategy plugin {name!r}: {obj.__qualname__} is a class but not a "
                    "subclass of otpy.optimize.Strategy"
                )
            register_strategy(name, obj)
        elif callable(obj):
            obj()
        else:
            raise ConfigurationError(
                f"strategy plugin {name!r}: {obj!r} is neither a Strategy subclass nor a "
                "callable that registers strategies"
            )

    return load_plugins(STRATEGY_PLUGIN_GROUP, accept, entry_points=entry_points)
