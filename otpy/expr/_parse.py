"""The expression grammar: text to a small syntax tree (never Python's ``eval``).

::

    expr       := or ('?' expr ':' expr)?
    or         := and (('or' | '||') and)*
    and        := not (('and' | '&&') not)*
    not        := ('not' | '!') not | comparison
    comparison := sum [ ('==' | '!=' | '>' | '<' | '>=' | '<=' | 'contains' | 'matches'
                        | 'starts_with' | 'ends_with' | 'in' | 'not_in' | 'not' 'in') sum
                      | 'between' sum 'and' sum | 'exists' | 'empty' ]
    sum        := product (('+' | '-') product)*
    product    := unary (('*' | '/' | '%') unary)*
    unary      := '-' unary | primary
    primary    := number | string | true | false | null | nil | '[' (expr (',' expr)*)? ']'
                | name '(' (expr (',' expr)*)? ')' | path | '(' expr ')' | '{{' expr '}}'
    path       := (name | '@') ('.' (name | digits) | '[' (digits | string) ']')*

``{{ }}`` groups like parentheses, so pipeline_ex's ``"{{steps.a.score}} > 7"`` and
``"{{state.n < 5}}"`` both parse. A name holds letters, digits, ``_`` and inner ``-``
(``my-step``); ``a - b`` with spaces is a subtraction. The condition-string argument of
``any``, ``all``, ``count`` and ``filter`` (``any(items, 'severity == "high"')``) is parsed
here too, so its errors surface before anything runs. Trees are cached by text.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final, TypeAlias

from otpy.errors import ExpressionError
from otpy.expr._nodes import (
    Between,
    Binary,
    Call,
    Lambda,
    ListOf,
    Literal,
    Node,
    Path,
    Ternary,
    Unary,
)

__all__ = ["parse_expression"]

ITEM_FUNCTIONS: Final = frozenset({"any", "all", "count", "filter"})
"""Functions whose second argument is a condition evaluated per item of a list."""
_COMPARE: Final = ("==", "!=", ">=", "<=", ">", "<")
_WORD_OPS: Final = ("contains", "matches", "starts_with", "ends_with", "in", "not_in")
_TOKEN: Final = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>\d+\.\d+|\d+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_$][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)
  | (?P<op>\{\{|\}\}|==|!=|>=|<=|&&|\|\||[-+*/%<>!?:.,()\[\]@])
    """,
    re.VERBOSE,
)
_ESCAPES: Final = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


_Token: TypeAlias = tuple[str, str, int]  # kind, text, 1-based column


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while index < len(text):
        match = _TOKEN.match(text, index)
        if match is None:
            raise ExpressionError(
                f"unexpected character {text[index]!r}", text=text, position=index + 1
            )
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group(), index + 1))
        index = match.end()
    tokens.append(("end", "", len(text) + 1))
    return tokens


def _unquote(raw: str, text: str, pos: int) -> str:
    body = raw[1:-1]
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            nxt = body[index + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    # -- token helpers ---------------------------------------------------------------------

    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.at + offset, len(self.tokens) - 1)]

    def is_op(self, *texts: str) -> bool:
        kind, value, _ = self.peek()
        return kind == "op" and value in texts

    def is_word(self, *words: str) -> bool:
        kind, value, _ = self.peek()
        return kind == "name" and value in words

    def take(self) -> _Token:
        token = self.peek()
        self.at += 1
        return token

    def fail(self, reason: str, token: _Token | None = None) -> ExpressionError:
        kind, value, pos = token if token is not None else self.peek()
        got = "the end" if kind == "end" else repr(value)
        return ExpressionError(f"{reason}, got {got}", text=self.text, position=pos)

    def expect(self, text: str, why: str) -> None:
        if not self.is_op(text):
            raise self.fail(f"expected {text!r} {why}")
        self.take()

    # -- grammar ---------------------------------------------------------------------------

    def parse(self) -> Node:
        if self.peek()[0] == "end":
            raise self.fail("an empty expression: expected a value, a path or a comparison")
        node = self.expr()
        if self.peek()[0] != "end":
            raise self.fail("expected an operator or the end of the expression")
        return node

    def expr(self) -> Node:
        node = self.disjunction()
        if self.is_op("?"):
            pos = self.take()[2]
            then = self.expr()
            self.expect(":", "between the two branches of '?'")
            return Ternary(node, then, self.expr(), pos)
        return node

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.is_word("or") or self.is_op("||"):
            pos = self.take()[2]
            node = Binary("or", node, self.conjunction(), pos)
        return node

    def conjunction(self) -> Node:
        node = self.negation()
        while self.is_word("and") or self.is_op("&&"):
            pos = self.take()[2]
            node = Binary("and", node, self.negation(), pos)
        return node

    def negation(self) -> Node:
        if (self.is_word("not") and not self._not_in()) or self.is_op("!"):
            pos = self.take()[2]
            return Unary("not", self.negation(), pos)
        return self.comparison()

    def _not_in(self) -> bool:
        kind, value, _ = self.peek(1)
        return kind == "name" and value == "in"

    def comparison(self) -> Node:
        node = self.sum()
        kind, value, pos = self.peek()
        if kind == "op" and value in _COMPARE:
            self.take()
            return Binary(value, node, self.sum(), pos)
        if kind != "name":
            return node
        if value in _WORD_OPS:
            self.take()
            return Binary(value, node, self.sum(), pos)
        if value == "not" and self._not_in():
            self.take()
            self.take()
            return Binary("not_in", node, self.sum(), pos)
        if value == "between":
            self.take()
            low = self.sum()
            if not self.is_word("and"):
                raise self.fail("expected 'and' after the lower bound of 'between'")
            self.take()
            return Between(node, low, self.sum(), pos)
        if value in ("exists", "empty"):
            self.take()
            return Unary(value, node, pos)
        return node

    def sum(self) -> Node:
        node = self.product()
        while self.is_op("+", "-"):
            _, op, pos = self.take()
            node = Binary(op, node, self.product(), pos)
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.is_op("*", "/", "%"):
            _, op, pos = self.take()
            node = Binary(op, node, self.unary(), pos)
        return node

    def unary(self) -> Node:
        if self.is_op("-"):
            pos = self.take()[2]
            return Unary("-", self.unary(), pos)
        return self.primary()

    def primary(self) -> Node:
        token = self.peek()
        kind, value, pos = token
        if kind == "number":
            self.take()
            return Literal(float(value) if "." in value else int(value), pos)
        if kind == "string":
            self.take()
            return Literal(_unquote(value, self.text, pos), pos)
        if kind == "op" and value in ("(", "{{"):
            self.take()
            node = self.expr()
            closer = ")" if value == "(" else "}}"
            self.expect(closer, f"to close the {value!r} at column {pos}")
            return node
        if kind == "op" and value == "[":
            return self.list_of()
        if kind == "op" and value == "@":
            self.take()
            return self.path(["@"], pos)
        if kind != "name":
            raise self.fail("expected a value, a path, a function call or '('")
        self.take()
        lowered = value.lower()
        if lowered in ("true", "false") and not self.is_op(".", "("):
            return Literal(lowered == "true", pos)
        if lowered in ("null", "nil", "none") and not self.is_op(".", "("):
            return Literal(None, pos)
        if self.is_op("("):
            return self.call(value, pos)
        return self.path([value], pos)

    def list_of(self) -> Node:
        pos = self.take()[2]
        items: list[Node] = []
        while not self.is_op("]"):
            items.append(self.expr())
            if not self.is_op("]"):
                self.expect(",", "between list items")
        self.take()
        return ListOf(tuple(items), pos)

    def call(self, name: str, pos: int) -> Node:
        self.take()  # (
        args: list[Node] = []
        while not self.is_op(")"):
            index = len(args)
            token = self.peek()
            if name in ITEM_FUNCTIONS and index == 1 and token[0] == "string":
                self.take()
                source = _unquote(token[1], self.text, token[2])
                try:
                    body = parse_expression(source)
                except ExpressionError as exc:
                    raise ExpressionError(
                        f"in the condition of {name}(): {exc.reason}",
                        text=self.text,
                        position=token[2] + exc.position,
                    ) from None
                args.append(Lambda(body, source, token[2]))
            else:
                args.append(self.expr())
            if not self.is_op(")"):
                self.expect(",", f"between the arguments of {name}()")
        self.take()
        return Call(name, tuple(args), pos)

    def path(self, segments: list[str | int], pos: int) -> Node:
        while True:
            if self.is_op("."):
                self.take()
                kind, value, _ = self.peek()
                if kind == "name":
                    segments.append(value)
                elif kind == "number" and value.isdigit():
                    segments.append(int(value))
                else:
                    raise self.fail("expected a name or an index after '.'")
                self.take()
            elif self.is_op("["):
                self.take()
                kind, value, vpos = self.take()
                if kind == "number" and value.isdigit():
                    segments.append(int(value))
                elif kind == "string":
                    segments.append(_unquote(value, self.text, vpos))
                else:
                    raise self.fail(
                        "expected an index or a quoted key inside '[ ]'", (kind, value, vpos)
                    )
                self.expect("]", "to close the index")
            else:
                return Path(tuple(segments), pos)


@lru_cache(maxsize=4096)
def parse_expression(text: str) -> Node:
    """The syntax tree of ``text`` (cached); ExpressionError with the column of the
    first problem (an unknown character, a missing operand or bracket, junk at the end)."""
    if not isinstance(text, str):
        raise ExpressionError(
            f"an expression must be text, got {type(text).__name__}", text=repr(text)
        )
    return _Parser(text).parse()
