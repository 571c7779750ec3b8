"""The non-adaptive built-in strategies: random search and grid search."""

from __future__ import annotations

import copy
import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from otpy.optimize._space import SearchSpace
from otpy.optimize._strategy import Strategy, register_strategy
from otpy.optimize._trials import Trial

__all__ = ["GridSearch", "RandomSearch"]


def _mix(key: str, round_: int, value: int) -> int:
    digest = hashlib.blake2b(f"{key}:{round_}:{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def permute(index: int, size: int, key: str) -> int:
    """Where ``index`` goes in a seeded permutation of ``range(size)``: a 4-round Feistel
    network on the smallest even-bit domain holding ``size``, cycle-walked back into range
    (O(1) per index: no list of the whole grid)."""
    half = max(1, ((size - 1).bit_length() + 1) // 2)
    mask = (1 << half) - 1
    x = index
    while True:
        left, right = x >> half, x & mask
        for r in range(4):
            left, right = right, left ^ (_mix(key, r, right) & mask)
        x = (left << half) | right
        if x < size:
            return x


class Grid:
    """The space's grid, indexed without enumerating it (the first variable slowest)."""

    def __init__(self, space: SearchSpace) -> None:
        self.names = space.names
        self.axes = space.axes()
        self.size = math.prod(len(axis) for axis in self.axes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        values = []
        for axis in reversed(self.axes):
            index, position = divmod(index, len(axis))
            values.append(copy.deepcopy(axis[position]))
        return dict(zip(self.names, reversed(values), strict=True))


class RandomSearch(Strategy):
    """Random search. Candidate ``i`` draws with ``random.Random(f"{seed}:{i}")``, however
    the runner chunks its calls. A finite space (``size`` not None) is instead visited as a
    seeded permutation of its grid: no repeats, exhausted after ``size`` candidates, unless
    ``unique=False`` (plain sampling, repeats possible)."""

    name = "random_search"
    option_defaults = MappingProxyType({"unique": True})

    def __init__(
        self, space: SearchSpace | Mapping[str, Any], *, seed: int = 0, **options: Any
    ) -> None:
        super().__init__(space, seed=seed, **options)
        unique = self._bool_option("unique")
        self._grid = Grid(self.space) if unique and self.space.size is not None else None

    def propose(
        self, history: Sequence[Trial], n: int, *, start: int, round: int
    ) -> list[dict[str, Any]]:
        self._check_call(n, start, round)
        if self._grid is None:
            indexes = range(start, start + n)
            return [self.space.sample(random.Random(f"{self.seed}:{i}")) for i in indexes]
        grid, key = self._grid, f"random_search:{self.seed}"
        return [grid[permute(i, grid.size, key)] for i in range(start, min(start + n, grid.size))]


class GridSearch(Strategy):
    """Every configuration of the grid once, in grid order (first variable slowest), or in
    a seeded order with ``shuffle=True``; then ``[]``. A space with a variable that has no
    grid (a float range without step, a demos pool) is a ConfigurationError."""

    name = "grid"
    option_defaults = MappingProxyType({"shuffle": False})

    def __init__(
        self, space: SearchSpace | Mapping[str, Any], *, seed: int = 0, **options: Any
    ) -> None:
        super().__init__(space, seed=seed, **options)
        self._shuffle = self._bool_option("shuffle")
        self._grid = Grid(self.space)

    def propose(
        self, history: Sequence[Trial], n: int, *, start: int, round: int
    ) -> list[dict[str, Any]]:
        self._check_call(n, start, round)
        grid, key = self._grid, f"grid:{self.seed}"
        indexes = range(start, min(start + n, grid.size))
        if self._shuffle:
            return [grid[permute(i, grid.size, key)] for i in indexes]
        return [grid[i] for i in indexes]


register_strategy(RandomSearch.name, RandomSearch)
register_strategy(GridSearch.name, GridSearch)
