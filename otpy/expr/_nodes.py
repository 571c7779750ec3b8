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
    "Ternary",
    "Unary",
    "children",
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
    """``not x``, ``-x``, or the postfix ``x exists`` / ``x empty``."""

    op: str
    operand: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Binary:
    """``left op right``: arithmetic, a comparison, ``and``/``or``, ``in``, ``contains``..."""

    op: str
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Between:
    """``value between low and high`` (bounds included)."""

    value: Node
    low: Node
    high: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Lambda:
    body: Node  # a condition evaluated per item (the second argument of any/all...)
    source: str
    pos: int


@dataclass(frozen=True, slots=True)
class Call:
    """``name(args...)``: one of the functions of :data:`otpy.expr.FUNCTIONS`."""

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


Node: TypeAlias = Literal | Path | Unary | Binary | Between | Lambda | Call | Ternary | ListOf


def children(node: Node) -> tuple[Node, ...]:
    """The operands of ``node``, in source order (a per-item condition's body is not one)."""
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Between):
        return (node.value, node.low, node.high)
    if isinstance(node, Ternary):
        return (node.test, node.then, node.otherwise)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, ListOf):
        return node.items
    return ()


def paths(node: Node) -> list[Path]:
    """Every look-up in ``node`` (not those inside a per-item condition), in order."""
    found: list[Path] = []
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Path):
            found.append(current)
        stack += reversed(children(current))
    return found
