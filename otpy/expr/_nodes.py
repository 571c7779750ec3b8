"""The syntax tree of an expression (what :mod:`otpy.expr._parse` builds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = [
    "Between",
    "Binary",
    "Call",
    "Lambda",
    "ListOf",
    "Literal",
    "Node",
    "Path",
    "Postfix",
    "Ternary",
    "Unary",
    "paths",
]


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any
    pos: int


@dataclass(frozen=True, slots=True)
class Path:
    """A look-up: ``segments`` (names and list indexes) from a root name or ``@``."""

    segments: tuple[str | int, ...]
    pos: int

    @property
    def text(self) -> str:
        return "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in self.segments)[1:]


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Between:
    value: Node
    low: Node
    high: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Postfix:
    op: str
    operand: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Lambda:
    """A condition evaluated per item (the second argument of ``any``/``all``...)."""

    body: Node
    source: str
    pos: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Ternary:
    test: Node
    then: Node
    otherwise: Node
    pos: int


@dataclass(frozen=True, slots=True)
class ListOf:
    items: tuple[Node, ...]
    pos: int


Node: TypeAlias = (
    Literal | Path | Unary | Binary | Between | Postfix | Lambda | Call | Ternary | ListOf
)


def paths(node: Node) -> list[Path]:
    """Every look-up in ``node`` (not those inside a per-item condition), in order."""
    found: list[Path] = []
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Path):
            found.append(current)
        elif isinstance(current, Unary | Postfix):
            stack.append(current.operand)
        elif isinstance(current, Binary):
            stack += [current.right, current.left]
        elif isinstance(current, Between):
            stack += [current.high, current.low, current.value]
        elif isinstance(current, Ternary):
            stack += [current.otherwise, current.then, current.test]
        elif isinstance(current, Call | ListOf):
            stack += list(reversed(current.args if isinstance(current, Call) else current.items))
    return found
